"""What a hub name may be: repo ids (``MEMBER/NAME``), file paths in a repo, revisions. Every
name reaches a URL, a database row or (for blobs, never by name) the filesystem, so each is
checked here once, with the problem named."""

from __future__ import annotations

import re

from suanli.errors import Problem, ValidationError
from suanli.spec.common import ID_PATTERN, REPO_NAME_PATTERN

KINDS = ("model", "dataset")
_MEMBER = re.compile(ID_PATTERN)
_NAME = re.compile(REPO_NAME_PATTERN)
_REV = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA = re.compile(r"[0-9a-f]{40}")
#: the longest path in a repo, in characters
MAX_PATH = 1024


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError([Problem(field, message)], "hub")


def kind(value: str, field: str = "type") -> str:
    if value not in KINDS:
        raise _bad(field, f"{value!r} is not one of {', '.join(KINDS)}")
    return value


def repo_id(value: str, field: str = "repo") -> tuple[str, str]:
    """``MEMBER/NAME`` split in two: the member that owns the repo and the repo's name."""
    member, slash, name = value.partition("/")
    if not slash or not _MEMBER.fullmatch(member):
        raise _bad(field, f"{value!r} is not MEMBER/NAME (a member id, then the repo's name)")
    if not _NAME.fullmatch(name) or ".." in name or name.endswith((".git", ".")):
        raise _bad(
            field,
            f"{name!r} is not a repo name: letters, digits, '.', '_' and '-', at most 96, "
            "no '..', not ending in '.git'",
        )
    return member, name


def file_path(value: str, field: str = "path") -> str:
    """A file's path in a repo: relative, '/'-separated, no empty, '.' or '..' part, no
    backslash or control character."""
    if not value or len(value) > MAX_PATH:
        raise _bad(field, f"a path has 1 to {MAX_PATH} characters")
    if value.startswith("/") or "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _bad(field, f"{value!r} is not a relative path without control characters")
    parts = value.split("/")
    if any(p in ("", ".", "..") for p in parts) or parts[0] == ".git":
        raise _bad(field, f"{value!r} has an empty, '.', '..' or '.git' part")
    return value


def revision(value: str, field: str = "revision") -> str:
    """A branch or tag name, or a commit's 40-hex id (no '/': a revision is one segment of
    the URLs that name a file)."""
    if not _REV.fullmatch(value) or ".." in value or value.endswith(".lock"):
        raise _bad(field, f"{value!r} is not a branch, tag or commit id")
    return value


def is_commit(value: str) -> bool:
    return _SHA.fullmatch(value) is not None
