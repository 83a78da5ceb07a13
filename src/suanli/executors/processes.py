"""What the engines suanli starts on this machine share (a local Ray cluster, a Flower
federation): a free port on loopback, and finding every process that carries a mark in its
environment, wherever it moved (its own session, its own process group)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def marked(mark: bytes) -> dict[int, tuple[int, int]]:
    """The processes whose environment holds ``mark`` (``NAME=VALUE``): pid -> (parent pid,
    session id)."""
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if mark not in (d / "environ").read_bytes().split(b"\0"):
                continue  # (a zombie's environment reads empty: there is nothing to kill)
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone, or not ours
            continue
        found[int(d.name)] = (int(stat[1]), int(stat[3]))
    return found


def stop_all(procs: Sequence[subprocess.Popen[bytes]], mark: bytes, grace_s: float) -> None:
    """SIGTERM to each of ``procs`` (each the leader of its own session), in order; ``grace_s``
    for them to end; SIGKILL to what is left of their process groups; then SIGKILL to every
    process still carrying ``mark``, until none is left (10 s at most)."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        kill_group(p)
    deadline = time.monotonic() + 10
    while (left := marked(mark)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def kill_group(p: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the process group ``p`` leads, and reap ``p``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()
