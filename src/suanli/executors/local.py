"""The local-process executor: each run a sandboxed process on this machine (one per node of a
multi-node gang, all here, meeting on the sandbox's loopback), supervised by a detached
``suanli.executors.runner`` so that it outlives a crash of the service.

State lives in files under ``root/runs/JOB/ATTEMPT/`` (request, supervisor pid, output, stop
request, exit status), so a restarted service learns everything from :meth:`observe`. A run
directory is created by an atomic rename: a second ``start`` of the same key finds it and does
nothing, which is what makes starts idempotent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from suanli.executors.base import (
    CHECKPOINT_DIR_VAR,
    RunPhase,
    RunRequest,
    RunState,
    device_env,
    rendezvous_env,
)
from suanli.executors.output import DEFAULT_CAP_BYTES, log_size, read_log
from suanli.executors.processes import free_port
from suanli.executors.runner import proc_start_time, write_atomic
from suanli.executors.sandbox import SandboxConfig, SandboxMode
from suanli.model.ids import JobId, NodeId

#: a run whose supervisor has not said a word this long after the request is lost
START_TIMEOUT_S = 15.0


def _read(path: Path) -> dict[str, Any] | None:
    """A JSON file the supervisor writes atomically, or None while it is not there."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _alive(sup: dict[str, Any]) -> int | None:
    """The supervisor's pid if that process still runs (not another one given its pid)."""
    pid = int(sup["pid"])
    return pid if proc_start_time(pid) == sup["start"] else None


#: the rendezvous port of a gang whose nodes share a private network (torch's default)
GANG_PORT = 29500


class LocalProcessExecutor:
    """Runs jobs on this machine, each in its sandbox (``sandbox``; see
    :mod:`suanli.executors.sandbox`). ``forbidden``: directories a job's working directory may
    neither be nor lie in (the state directory, always). ``data_root``: where datasets lie
    (``DATA_ROOT/OWNER/PATH``; default ``root/data``). ``log_cap``: the most bytes of a
    run's output its log keeps (then its end; see :mod:`suanli.executors.output`)."""

    def __init__(
        self,
        root: Path,
        sandbox: SandboxConfig | None = None,
        forbidden: tuple[Path, ...] = (),
        data_root: Path | None = None,
        log_cap: int = DEFAULT_CAP_BYTES,
    ) -> None:
        self.root = root.resolve()  # jobs run in their own directory: paths must be absolute
        self.runs = self.root / "runs"
        self.checkpoints = self.root / "checkpoints"
        self.runs.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.checkpoints.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.sandbox = sandbox or SandboxConfig()
        self.sandbox.check_against(self.root)
        self.forbidden = (self.root, *forbidden)
        self.data_root = (data_root or self.root / "data").resolve()
        self.log_cap = log_cap

    def dataset_dir(self, location: str) -> Path | None:
        """Where a dataset's files lie here (None: nowhere, or outside the data root)."""
        path = (self.data_root / location).resolve()
        if self.data_root not in path.parents or not path.is_dir():
            return None
        return path

    def _dir(self, job: JobId, attempt: int) -> Path:
        return self.runs / job / str(attempt)

    def checkpoint_dir(self, job: JobId) -> Path:
        return self.checkpoints / job

    def start(self, run: RunRequest) -> None:
        final = self._dir(run.job, run.attempt)
        if final.exists():
            return
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = final.parent / f".{run.attempt}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700)
        ckpt = self.checkpoint_dir(run.job)
        ckpt.mkdir(parents=True, exist_ok=True, mode=0o700)
        env = {
            **{k: v for k, v in run.env.items() if k != CHECKPOINT_DIR_VAR},
            "SUANLI_JOB_ID": run.job,
            "SUANLI_ATTEMPT": str(run.attempt),
            "SUANLI_NUM_NODES": str(len(run.devices)),
        }
        if run.datasets:
            env["SUANLI_DATASETS"] = ",".join(run.datasets)
        sandbox = self.sandbox
        if run.network == "host" and sandbox.network != "host":
            sandbox = dataclasses.replace(sandbox, network="host")
        # a gang's nodes are all here: they meet on a loopback (the sandbox's own one, where
        # every port is free, or this machine's)
        private = sandbox.mode is SandboxMode.BWRAP and sandbox.network != "host"
        port = GANG_PORT if private else free_port()
        nodes = [
            {
                **device_env(run.stack, devs),
                "SUANLI_NODE": node,
                **rendezvous_env(rank, len(run.devices), "127.0.0.1", port),
            }
            for rank, (node, devs) in enumerate(run.devices)
        ]
        request = {
            "job": run.job,
            "attempt": run.attempt,
            "member": run.member,
            "entrypoint": run.entrypoint,
            "env": env,
            "nodes": nodes,
            "stack": run.stack,
            "checkpoint": str(ckpt),
            "datasets": {
                k: str(path)
                for k, loc in run.datasets.items()
                if loc and (path := self.dataset_dir(loc)) is not None
            },
            "source": run.working_dir,
            "forbidden": [str(p) for p in self.forbidden],
            "sandbox": sandbox.to_json(),
            "log_cap": self.log_cap,
            "at": time.time(),
        }
        fd = os.open(tmp / "request.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(request))
        try:
            os.rename(tmp, final)
        except OSError:  # someone else created it first: that start wins
            shutil.rmtree(tmp, ignore_errors=True)
            return
        subprocess.run(
            [sys.executable, "-m", "suanli.executors.runner", "--detach", str(final)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            check=True,
        )

    def _supervisor(self, d: Path) -> int | None:
        """The live supervisor's pid, or None."""
        sup = _read(d / "supervisor.json")
        return None if sup is None else _alive(sup)

    def stop(self, job: JobId, attempt: int, grace_s: float) -> None:
        d = self._dir(job, attempt)
        if not d.exists() or (d / "exit.json").exists():
            return
        if not (d / "stop.json").exists():
            write_atomic(d / "stop.json", {"grace_s": grace_s, "at": time.time()})
        pid = self._supervisor(d)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _state(self, job: JobId, attempt: int, d: Path, now: float) -> RunState:
        # each file is read once: a state decided from two looks at a file the supervisor is
        # writing meanwhile (absent, then present) once called a starting run lost
        sup = _read(d / "supervisor.json")
        ex = _read(d / "exit.json")
        if ex is not None and sup is not None:
            return RunState(job, attempt, RunPhase.EXITED, int(ex["code"]), sup["at"], ex["at"])
        if sup is None:
            req = _read(d / "request.json")
            req_at = float(req["at"]) if req is not None else 0.0
            if now - req_at < START_TIMEOUT_S:
                return RunState(job, attempt, RunPhase.RUNNING)  # still starting
            return RunState(job, attempt, RunPhase.LOST)
        if _alive(sup) is not None:
            return RunState(job, attempt, RunPhase.RUNNING)
        ex = _read(d / "exit.json")  # it finished between the two looks
        if ex is not None:
            return RunState(job, attempt, RunPhase.EXITED, int(ex["code"]), sup["at"], ex["at"])
        return RunState(job, attempt, RunPhase.LOST)

    def observe(self) -> dict[tuple[JobId, int], RunState]:
        now = time.time()
        out: dict[tuple[JobId, int], RunState] = {}
        for jd in self.runs.iterdir():
            if not jd.is_dir():
                continue
            for ad in jd.iterdir():
                if ad.name.startswith(".") or not ad.name.isdigit():
                    continue
                key = (JobId(jd.name), int(ad.name))
                if (ad / "forgotten").exists():
                    continue
                out[key] = self._state(key[0], key[1], ad, now)
        return out

    def logs(self, job: JobId, attempt: int, offset: int = 0, limit: int | None = None) -> bytes:
        return read_log(self._dir(job, attempt) / "output.log", offset, limit)

    def log_size(self, job: JobId, attempt: int) -> int:
        return log_size(self._dir(job, attempt) / "output.log")

    def forget(self, job: JobId, attempt: int) -> None:
        d = self._dir(job, attempt)
        if d.exists():
            (d / "forgotten").touch()

    def node_health(self) -> dict[NodeId, str | None]:
        """The nodes are this machine's (simulated): they are up while it is."""
        return {}
