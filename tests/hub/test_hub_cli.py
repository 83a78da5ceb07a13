"""``suanli hub`` against a served stack (the SDK's own HTTP, no Hugging Face client)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from suanli.cli.main import cli

from ..stack import Stack


def _run(stack: Stack, user: str, *args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, [*args, "--url", stack.url, "--token", stack.tokens[user]])
    return r.exit_code, r.stdout, r.stderr


def test_create_upload_list_show_download(stack: Stack, tmp_path: Path) -> None:
    src = tmp_path / "model"
    (src / "weights").mkdir(parents=True)
    (src / "README.md").write_text("---\nlicense: apache-2.0\n---\n# charlm\n")
    blob = bytes(range(256)) * 5000
    (src / "weights" / "w.bin").write_bytes(blob)
    code, out, _ = _run(stack, "lab-user", "hub", "create", "lab/charlm")
    assert code == 0 and "created model lab/charlm (private)" in out
    code, out, _ = _run(stack, "lab-user", "hub", "upload", "lab/charlm", str(src), "-m", "v1")
    assert code == 0 and "2 files" in out, out
    code, out, _ = _run(stack, "lab-user", "hub", "visibility", "lab/charlm", "alliance")
    assert code == 0
    code, out, _ = _run(stack, "corp-user", "hub", "ls")
    assert code == 0 and "lab/charlm" in out and "alliance" in out
    code, out, _ = _run(stack, "corp-user", "hub", "show", "lab/charlm")
    assert code == 0 and "weights/w.bin" in out and "apache-2.0" in out and "v1" in out
    code, out, _ = _run(stack, "corp-user", "hub", "card", "lab/charlm")
    assert code == 0 and out == "---\nlicense: apache-2.0\n---\n# charlm\n"
    code, out, _ = _run(stack, "corp-user", "hub", "show", "lab/charlm", "--json")
    assert json.loads(out)["repo"]["license"] == "apache-2.0"
    dest = tmp_path / "w.bin"
    code, out, _ = _run(
        stack, "corp-user", "hub", "download", "lab/charlm", "weights/w.bin", "-o", str(dest)
    )
    assert code == 0 and dest.read_bytes() == blob


@pytest.mark.parametrize("user", ["corp-user", "viewer"])
def test_refusals_exit_with_the_reason_and_leave_no_file(
    stack: Stack, tmp_path: Path, user: str
) -> None:
    _run(stack, "lab-user", "hub", "create", "lab/private")
    code, _, err = _run(stack, user, "hub", "create", "lab/other")
    assert code != 0 and "403" in err
    out = tmp_path / "downloads"
    out.mkdir()
    code, _, err = _run(stack, user, "hub", "download", "lab/private", "x", "-o", str(out / "x"))
    assert code != 0 and "404" in err and "may not read" in err
    assert list(out.iterdir()) == []
