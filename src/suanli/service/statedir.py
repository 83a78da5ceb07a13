"""The state directory is the service's alone: mode 0700, every file in it 0600.

It holds the database (SQLite), the runs' requests, outputs and checkpoints, the admin token and
the key that encrypts jobs' secrets. The server makes everything it creates private (umask
0077) and refuses to start on a state directory that another user could read or write, saying
how to fix it.
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from suanli.errors import StateDirError

__all__ = [
    "FileWatch",
    "ServerLock",
    "StateDirError",
    "lock",
    "private_files",
    "refuse_a_new_database_over_old_runs",
    "secure",
]


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


@dataclass
class ServerLock:
    """This process is the server of a state directory (held until the process ends)."""

    path: Path
    fd: int

    def release(self) -> None:
        with suppress(OSError):
            os.close(self.fd)


def lock(state_dir: Path) -> ServerLock:
    """Be the only server of ``state_dir`` (its SQLite database, its runs), or raise with who
    is. Several servers share one state only over PostgreSQL (they then elect one controller:
    :mod:`suanli.service.leader`)."""
    path = state_dir / "server.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateDirError(
            f"another suanli server ({holder}) runs on the state directory {state_dir}: stop "
            "it first (one server per SQLite state; several servers share a PostgreSQL "
            "database, --db, and elect one controller)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
    return ServerLock(path, fd)


def refuse_a_new_database_over_old_runs(state_dir: Path) -> None:
    """A new database (no alliance yet) over a state directory that already has runs means
    the old database was lost: starting would forget every job those runs belong to."""
    runs = state_dir / "runs"
    left = next((p for p in runs.iterdir()), None) if runs.is_dir() else None
    if left is not None or (state_dir / "admin-token").exists():
        where = left or state_dir / "admin-token"
        raise StateDirError(
            f"the database is new, but the state directory {state_dir} holds what an earlier "
            f"one made ({where}): was the database deleted or moved? Restore it, or start "
            "on a new --state-dir"
        )


@dataclass
class FileWatch:
    """The SQLite file the server opened: deleted or replaced under it, it notices."""

    path: Path
    identity: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        st = self.path.stat()
        self.identity = (st.st_dev, st.st_ino)

    def problem(self) -> str | None:
        """Why the database can no longer be trusted, or None."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return f"the database file {self.path} was deleted"
        if (st.st_dev, st.st_ino) != self.identity:
            return f"the database file {self.path} was replaced"
        return None
