"""A job's code revision, read from its working directory's git working tree where it is
submitted, and checked by the job spec."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from suanli.errors import ValidationError
from suanli.sdk.code import git_revision, with_code
from suanli.spec.common import parse_yaml
from suanli.spec.job_file import parse_jobs


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "code"
    r.mkdir()
    _git(r, "init", "-q")
    (r / "train.py").write_text("print('hi')\n")
    _git(r, "add", "train.py")
    _git(r, "commit", "-q", "-m", "first")
    _git(r, "remote", "add", "origin", "https://alice:ghp_secret@git.example.org/lab/charlm.git")
    return r


def test_a_jobs_code_is_its_working_trees_revision_without_credentials(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    found = git_revision(repo)
    assert found == {
        "revision": head,
        "repository": "https://git.example.org/lab/charlm.git",
        "dirty": False,
    }
    (repo / "train.py").write_text("print('changed')\n")
    assert git_revision(repo) == {**found, "dirty": True}
    assert git_revision(repo.parent) is None  # (not a working tree)


def test_submit_adds_the_code_only_where_a_job_states_none(repo: Path, tmp_path: Path) -> None:
    jobs = {
        "jobs": [
            {"member": "lab", "accelerators": "H800:1", "runtime_env": {"working_dir": "code"}},
            {
                "member": "lab",
                "accelerators": "H800:1",
                "runtime_env": {"working_dir": "code"},
                "code": {"revision": "v1.2"},
            },
            {"member": "lab", "accelerators": "H800:1", "runtime_env": {"working_dir": "."}},
        ]
    }
    out = yaml.safe_load(with_code(yaml.safe_dump(jobs), tmp_path))
    first, stated, elsewhere = out["jobs"]
    assert first["code"]["revision"] == _git(repo, "rev-parse", "HEAD")
    assert stated["code"] == {"revision": "v1.2"} and "code" not in elsewhere
    text = "member: lab\naccelerators: H800:1\n"
    assert with_code(text, tmp_path) == text and with_code("[: bad", tmp_path) == "[: bad"
    (spec,) = parse_jobs(parse_yaml(yaml.safe_dump(first), "t"), "t")
    assert spec.code is not None and spec.code.repository == first["code"]["repository"]


@pytest.mark.parametrize(
    ("code", "field"),
    [
        ({"revision": "abc", "repository": "https://u:tok@host/x.git"}, "code.repository"),
        ({"revision": "../../etc"}, "code.revision"),
        ({"revision": "abc", "branch": "main"}, "code.branch"),
    ],
)
def test_a_stated_code_revision_is_checked(code: dict[str, str], field: str) -> None:
    text = yaml.safe_dump({"member": "lab", "accelerators": "H800:1", "code": code})
    with pytest.raises(ValidationError) as err:
        parse_jobs(parse_yaml(text, "t"), "t")
    assert any(p.field == field for p in err.value.problems), err.value.problems
