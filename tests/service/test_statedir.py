"""The state directory is the service's alone: made private, and a looser one refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from suanli.server import ServerConfig, prepare
from suanli.service.statedir import StateDirError
from suanli.spec.alliance_file import load_alliance

from ..conftest import EXAMPLES


def test_a_new_state_directory_and_its_files_are_private(tmp_path: Path) -> None:
    cfg = ServerConfig(tmp_path / "state")
    db, token = prepare(cfg, load_alliance(EXAMPLES / "alliance.yaml"))
    db.close()
    assert token is not None
    for path in [cfg.state_dir, *cfg.state_dir.iterdir()]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {mode:04o}"


@pytest.mark.parametrize("loose", ["", "suanli.db", "admin-token"])
def test_a_loose_state_directory_is_refused_with_the_fix(tmp_path: Path, loose: str) -> None:
    cfg = ServerConfig(tmp_path / "state")
    db, _ = prepare(cfg, load_alliance(EXAMPLES / "alliance.yaml"))
    db.close()
    target = cfg.state_dir / loose if loose else cfg.state_dir
    target.chmod(0o755 if target.is_dir() else 0o644)
    with pytest.raises(StateDirError) as info:
        prepare(cfg, load_alliance(EXAMPLES / "alliance.yaml"))
    assert str(target) in str(info.value) and f"chmod -R go= {cfg.state_dir}" in str(info.value)
    os.system(f"chmod -R go= {cfg.state_dir}")  # the fix it gives works
    db, token = prepare(cfg, load_alliance(EXAMPLES / "alliance.yaml"))
    db.close()
    assert token is None  # the same alliance, its admin made once
