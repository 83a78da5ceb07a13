"""The supervisor of one local run: ``python -m suanli.executors.runner [--detach] RUN_DIR``.

It is started detached (its own session) by the local-process executor, so that the service
can die and restart without killing or losing its jobs. It writes ``supervisor.json`` (its pid
and start time) first and ``exit.json`` (atomically) last, then:

1. finds (or, as root, creates) the OS account of the job's member, makes the run's ``work``
   and ``tmp`` directories and its checkpoint directory that account's, and copies the job's
   working directory into ``work`` with that account's permissions;
2. starts the run in its sandbox (:mod:`suanli.executors.sandbox`): the reaper runs the job's
   command once per node of the placement (a multi-node gang on one machine: each copy sees its
   node's devices and rank) with the job's environment only, output to ``output.log`` up to
   the log cap (:mod:`suanli.executors.output`);
3. on SIGTERM asks the job to stop (SIGTERM to every process of it), waits the grace period
   written in ``stop.json``, then kills the sandbox, and with it every process the job left.

The run's exit code is the first non-zero one of its nodes. Its own errors go to
``supervisor.log``; a job it could not start exits 126 with the reason at the end of
``output.log``, so that no failure of the supervisor goes unseen (the executor would only see it
gone: the run lost).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from suanli.errors import SandboxError
from suanli.executors.output import DEFAULT_CAP_BYTES, CappedOutput
from suanli.executors.sandbox import (
    Layout,
    Sandbox,
    SandboxConfig,
    base_env,
    member_account,
    prepare,
    stage,
)


def proc_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell a live process from a reused pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def write_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data))
    os.replace(tmp, path)


#: the exit code of a run whose command could not be started (the shell's "cannot execute")
CANNOT_START = 126


def main(run_dir: str) -> int:
    os.umask(0o077)  # the run's files are the service's alone
    d = Path(run_dir)
    # the supervisor's own errors (a traceback included) are kept beside the run
    errors = os.open(d / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(errors, 2)
    os.close(errors)
    req = json.loads((d / "request.json").read_text())
    write_atomic(
        d / "supervisor.json",
        {"pid": os.getpid(), "start": proc_start_time(os.getpid()), "at": time.time()},
    )
    config = SandboxConfig.from_json(req.get("sandbox") or {})
    layout = Layout(
        work=d / "work",
        checkpoint=Path(req["checkpoint"]),
        tmp=d / "tmp",
        datasets={k: Path(v) for k, v in (req.get("datasets") or {}).items()},
        stack=req.get("stack", "cuda"),
    )
    stopping = threading.Event()
    box: Sandbox | None = None
    lock = threading.Lock()

    def stop_run() -> None:
        grace = 30.0
        with contextlib.suppress(OSError, ValueError, KeyError):
            grace = float(json.loads((d / "stop.json").read_text())["grace_s"])
        with lock:
            started = box
        if started is None:  # not started yet: the main thread sees ``stopping`` and stops
            return
        timer = threading.Timer(grace, started.kill)
        timer.daemon = True
        timer.start()
        started.terminate()

    def on_term(_sig: int, _frame: object) -> None:
        # (a signal handler takes no lock the main thread may hold: a thread does the work)
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=stop_run, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    # a stop asked for before this supervisor was up
    if (d / "stop.json").exists():
        on_term(signal.SIGTERM, None)
    with (d / "output.log").open("ab") as log:
        try:
            account = member_account(req["member"])
            prepare(layout, account)
            if req.get("source"):
                stage(req["source"], layout.work, account, [Path(p) for p in req["forbidden"]])
            env = {**base_env(config, layout, account), **req["env"]}
            with lock:
                if stopping.is_set():  # stopped before it started: nothing to run
                    return _exit(d, 128 + signal.SIGTERM, stopped=True)
                output = CappedOutput(log.fileno(), int(req.get("log_cap", DEFAULT_CAP_BYTES)))
                try:
                    box = Sandbox.start(
                        config,
                        layout,
                        account,
                        env,
                        req["entrypoint"],
                        req["nodes"],
                        output.write_fd,
                    )
                finally:
                    output.start().close_writer()
        except (OSError, ValueError, SandboxError) as e:  # no such directory, no account...
            log.write(f"suanli: could not start the job: {e}\n".encode())
            return _exit(d, CANNOT_START, stopped=False)
        code = box.wait()
        output.finish()
    shutil.rmtree(layout.tmp, ignore_errors=True)
    return _exit(d, code, stopped=stopping.is_set())


def _exit(d: Path, code: int, stopped: bool) -> int:
    write_atomic(d / "exit.json", {"code": code, "at": time.time(), "stopped": stopped})
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
