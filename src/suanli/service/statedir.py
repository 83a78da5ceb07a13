"""The state directory is the service's alone: mode 0700, every file in it 0600.

It holds the database (SQLite), the runs' requests, outputs and checkpoints, the admin token and
the key that encrypts jobs' secrets. The server makes everything it creates private (umask
0077) and refuses to start on a state directory that another user could read or write, saying
how to fix it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from suanli.errors import StateDirError

__all__ = ["StateDirError", "private_files", "secure"]


#: the entries checked at start (the runs' own files are made private as they are written)
CHECKED = (
    "suanli.db",
    "suanli.db-wal",
    "suanli.db-shm",
    "admin-token",
    "secret.key",
    "runs",
    "checkpoints",
    "data",
    "reports",
)


@contextmanager
def private_files() -> Iterator[None]:
    """Files and directories made meanwhile are the service's alone (umask 0077). The server
    process keeps this for its whole life (:func:`suanli.server.serve`)."""
    before = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(before)


def secure(state_dir: Path) -> None:
    """Create ``state_dir`` private, or check that it is."""
    if not state_dir.exists():
        state_dir.mkdir(parents=True, mode=0o700)
        return
    loose: list[str] = []
    for path in [state_dir, *(state_dir / name for name in CHECKED)]:
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            loose.append(f"{path} is a symbolic link")
        elif st.st_uid != os.geteuid():
            loose.append(f"{path} belongs to uid {st.st_uid}, not to this user ({os.geteuid()})")
        elif st.st_mode & 0o077:
            want = "0700" if stat.S_ISDIR(st.st_mode) else "0600"
            loose.append(f"{path} is {stat.S_IMODE(st.st_mode):04o}, not {want}")
    if loose:
        raise StateDirError(
            "the state directory must be private to the service: "
            + "; ".join(loose)
            + f". Fix: chmod -R go= {state_dir} (and chown it to this user)"
        )
