"""A throwaway PostgreSQL server for the tests: ``initdb`` in a temporary directory, on a free
loopback port, stopped at the end. Uses ``SUANLI_TEST_PG_URL`` instead when it is set. In CI
(``CI=true``) a missing PostgreSQL is an error, elsewhere the PostgreSQL tests are skipped."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(cands[-1]).parent if cands else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str | None]:
    """Yields a SQLAlchemy URL, or None when no PostgreSQL can be had."""
    url = os.environ.get("SUANLI_TEST_PG_URL")
    if url:
        yield url
        return
    bindir = _bindir()
    if bindir is None:
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="suanli-pg-"))
    data = tmp / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(tmp, "postgres")
        os.chmod(tmp, 0o700)
    port = _free_port()
    run = lambda *cmd: subprocess.run(  # noqa: E731
        [*as_user, *cmd], check=True, capture_output=True, text=True
    )
    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "suanli", "--no-sync")
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-w",
        "-l",
        str(tmp / "log"),
        "-o",
        f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    try:
        yield f"postgresql+psycopg://suanli@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(tmp, ignore_errors=True)
