"""The code a job runs, for its lineage: the git revision of its working directory, read
where the job is submitted (as an experiment tracker reads it where a run starts) and sent as
the job's ``code`` field. A job file that states ``code`` keeps it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)


def git_revision(path: Path) -> dict[str, Any] | None:
    """``revision`` (HEAD's commit), ``repository`` (origin's URL, without any user or
    token in it) and ``dirty`` of the git working tree at ``path``; None outside one."""
    git = shutil.which("git")
    if git is None or not path.is_dir():
        return None

    def run(*args: str) -> str | None:
        done = subprocess.run(
            [git, "-C", str(path), *args], capture_output=True, text=True, check=False, timeout=30
        )
        return done.stdout.strip() if done.returncode == 0 else None

    head = run("rev-parse", "--verify", "HEAD")
    if not head:
        return None
    origin = run("remote", "get-url", "origin")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {
        "revision": head,
        "repository": _USERINFO.sub(r"\1", origin) if origin else None,
        "dirty": bool(status),
    }


def with_code(text: str, base: Path) -> str:
    """A job file's text with each job that runs from a git working tree (its
    ``runtime_env.working_dir``, relative to ``base`` when relative) and states no ``code``
    given its revision; the text as it was when there is nothing to add or it is not a
    mapping (the server then names the problem)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if not isinstance(doc, dict):
        return text
    entries = doc.get("jobs") if "jobs" in doc else [doc]
    if not isinstance(entries, list):
        return text
    added = False
    for entry in entries:
        if not isinstance(entry, dict) or "code" in entry:
            continue
        runtime = entry.get("runtime_env")
        wd = runtime.get("working_dir") if isinstance(runtime, dict) else None
        if not isinstance(wd, str) or not wd:
            continue
        code = git_revision(base / wd)
        if code is not None:
            entry["code"] = code
            added = True
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True) if added else text
