"""The supervisor of one local run: ``python -m suanli.executors.runner [--detach] RUN_DIR``.

One child per node of the placement (a multi-node gang on one machine: each child sees its
node's devices and ``SUANLI_NODE_RANK``); the run's exit code is the first non-zero one.

It is started detached (its own session) by the local-process executor, so that the service
can die and restart without killing or losing its jobs. It runs the job's entrypoint with
``/bin/sh -c`` in a process group of its own, with the request's environment, its output in
``output.log``; writes ``supervisor.json`` (its pid and start time) first and ``exit.json``
(atomically) last. Its own errors go to ``supervisor.log``; a job it could not start exits 126
with the reason at the end of ``output.log``, so that no failure of the supervisor goes unseen
(the executor would only see it gone: the run lost). On SIGTERM it forwards SIGTERM to the job's
group, waits the grace period written in ``stop.json``, then kills the group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a live process from a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def write_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


#: the exit code of a run whose command could not be started (the shell's "cannot execute")
CANNOT_START = 126


def main(run_dir: str) -> int:
    d = Path(run_dir)
    # the supervisor's own errors (a traceback included) are kept beside the run
    errors = os.open(d / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(errors, 2)
    os.close(errors)
    req = json.loads((d / "request.json").read_text())
    write_atomic(
        d / "supervisor.json",
        {"pid": os.getpid(), "start": proc_start_time(os.getpid()), "at": time.time()},
    )
    base = dict(os.environ)
    base.update(req["env"])
    children: list[subprocess.Popen[bytes]] = []
    with (d / "output.log").open("ab") as log:
        try:
            for rank, node_env in enumerate(req.get("nodes") or [{}]):
                children.append(
                    subprocess.Popen(
                        ["/bin/sh", "-c", req["entrypoint"]],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env={**base, **node_env, "SUANLI_NODE_RANK": str(rank)},
                        cwd=req.get("cwd") or d,
                        start_new_session=True,
                    )
                )
        except OSError as e:  # (no such directory, no more processes, ...)
            log.write(f"suanli: could not start the job: {e}\n".encode())
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            write_atomic(
                d / "exit.json", {"code": CANNOT_START, "at": time.time(), "stopped": False}
            )
            return 0
    stopping = threading.Event()

    def signal_all(sig: int) -> None:
        for child in children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, sig)

    def on_term(_sig: int, _frame: object) -> None:
        if stopping.is_set():
            return
        stopping.set()
        signal_all(signal.SIGTERM)
        grace = 30.0
        with contextlib.suppress(OSError, ValueError, KeyError):
            grace = float(json.loads((d / "stop.json").read_text())["grace_s"])
        t = threading.Timer(grace, signal_all, args=(signal.SIGKILL,))
        t.daemon = True
        t.start()

    signal.signal(signal.SIGTERM, on_term)
    # a stop asked for before this supervisor was up
    if (d / "stop.json").exists():
        on_term(signal.SIGTERM, None)
    codes = [child.wait() for child in children]
    code = next((c for c in codes if c != 0), 0)
    write_atomic(d / "exit.json", {"code": code, "at": time.time(), "stopped": stopping.is_set()})
    return 0


def detach() -> None:
    """Fork and let the parent return at once: the supervisor is re-parented to init, which
    reaps it, and the service never holds a child it would have to wait for."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--detach":
        detach()
        args = args[1:]
    sys.exit(main(args[0]))
