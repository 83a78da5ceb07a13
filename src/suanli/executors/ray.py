"""The Ray executor: dispatch through Ray's Job Submission API, one Ray cluster per site.

A run ``(job, attempt)`` is the Ray job ``suanli-JOB-ATTEMPT`` (its ``submission_id``), with the
member, job, attempt and placement in its ``metadata``. The placement becomes:

- **resources**: the accelerator's Ray resource (``GPU`` for cuda, ``NPU`` for Ascend, and custom
  resources Ray does not know itself: ``MLU``, ``DCU``, ``XPU``, ``MUSA``, ...) plus the suanli
  node's own resource ``suanli.node.NODE`` (each Ray node declares one for the devices it
  holds), so Ray's accounting matches the scheduler's;
- **a label selector** ``suanli.io/node = NODE`` (Ray nodes carry the labels ``suanli.io/node``,
  ``/site``, ``/member`` and ``/model``), so the job lands on exactly the node chosen;
- **environment**: the stack's device variable with the chosen device indexes (and Ray told not
  to overwrite it), the checkpoint directory, the job id and attempt.

The queue is suanli's: the controller only submits what fits now. Starting a run that exists
is a no-op (Ray refuses a second job with the same ``submission_id``). Multi-node gangs need a
placement group spanning the nodes; until that is built this executor refuses them with a
``ValueError`` (the controller then fails the job with that reason).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.job_submission import JobStatus, JobSubmissionClient

from suanli.executors.base import (
    CHECKPOINT_DIR_VAR,
    VISIBLE_DEVICES_VAR,
    RunPhase,
    RunRequest,
    RunState,
    device_env,
)
from suanli.model.ids import JobId

#: Ray's resource name per software stack (Ray knows GPU and NPU; the others are custom)
RAY_RESOURCE: Mapping[str, str] = {
    "cuda": "GPU",
    "npu": "NPU",
    "mlu": "MLU",
    "dcu": "DCU",
    "xpu": "XPU",
    "musa": "MUSA",
    "maca": "MACA",
    "corex": "COREX",
    "gcu": "GCU",
    "supa": "SUPA",
    "ppu": "PPU",
}
#: variables that stop Ray from replacing the device list suanli chose
NOSET = {
    "CUDA_VISIBLE_DEVICES": "RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES",
    "ASCEND_RT_VISIBLE_DEVICES": "RAY_EXPERIMENTAL_NOSET_ASCEND_RT_VISIBLE_DEVICES",
}
LABEL = "suanli.io"


def node_resource(node: str) -> str:
    return f"suanli.node.{node}"


def submission_id(job: JobId, attempt: int) -> str:
    return f"suanli-{job}-{attempt}"


class RayExecutor:
    def __init__(self, address: str, token: str | None, checkpoint_root: Path) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.client = JobSubmissionClient(address, headers=headers)
        self.checkpoint_root = checkpoint_root.resolve()
        self._forgotten: set[str] = set()

    def request_of(self, run: RunRequest) -> dict[str, Any]:
        """The Job Submission API request for ``run`` (pure: tests read it)."""
        if len(run.devices) != 1:
            raise ValueError("the Ray executor does not run multi-node gangs yet")
        node, devices = run.devices[0]
        accel = RAY_RESOURCE.get(run.stack, run.stack.upper())
        env = {
            **run.env,
            **device_env(run.stack, devices),
            CHECKPOINT_DIR_VAR: str(self.checkpoint_root / run.job),
            "SUANLI_JOB_ID": run.job,
            "SUANLI_ATTEMPT": str(run.attempt),
            "SUANLI_NODE": node,
            "SUANLI_NUM_NODES": str(len(run.devices)),
        }
        var = VISIBLE_DEVICES_VAR.get(run.stack, "CUDA_VISIBLE_DEVICES")
        if var in NOSET:
            env[NOSET[var]] = "1"
        return {
            "entrypoint": run.entrypoint,
            "submission_id": submission_id(run.job, run.attempt),
            "metadata": {
                "suanli": "1",
                "job": run.job,
                "attempt": str(run.attempt),
                "model": run.model,
                "placement": ";".join(f"{n}:{','.join(map(str, d))}" for n, d in run.devices),
            },
            "runtime_env": {"env_vars": env},
            "entrypoint_num_cpus": 0,
            # Ray takes GPUs only as entrypoint_num_gpus, every other chip as a resource
            "entrypoint_num_gpus": len(devices) if accel == "GPU" else None,
            "entrypoint_resources": {
                **({} if accel == "GPU" else {accel: len(devices)}),
                node_resource(node): len(devices),
            },
            "entrypoint_label_selector": {f"{LABEL}/node": node},
        }

    def start(self, run: RunRequest) -> None:
        (self.checkpoint_root / run.job).mkdir(parents=True, exist_ok=True)
        try:
            self.client.submit_job(**self.request_of(run))
        except RuntimeError as exc:
            if "already exists" not in str(exc):
                raise

    def stop(self, job: JobId, attempt: int, grace_s: float) -> None:
        """Ray sends SIGTERM, then SIGKILL after the cluster's stop timeout
        (``RAY_JOB_STOP_WAIT_TIME_S``, set to the policy's grace period in embedded mode)."""
        try:
            self.client.stop_job(submission_id(job, attempt))
        except RuntimeError as exc:
            if "does not exist" not in str(exc):
                raise

    def observe(self) -> dict[tuple[JobId, int], RunState]:
        out: dict[tuple[JobId, int], RunState] = {}
        for info in self.client.list_jobs():
            meta = info.metadata or {}
            if meta.get("suanli") != "1" or info.submission_id in self._forgotten:
                continue
            key = (JobId(meta["job"]), int(meta["attempt"]))
            start = info.start_time / 1000 if info.start_time else None
            end = info.end_time / 1000 if info.end_time else None
            status = info.status
            if status in (JobStatus.PENDING, JobStatus.RUNNING):
                out[key] = RunState(key[0], key[1], RunPhase.RUNNING, None, start)
            elif status is JobStatus.SUCCEEDED:
                out[key] = RunState(key[0], key[1], RunPhase.EXITED, 0, start, end)
            elif status is JobStatus.STOPPED:
                out[key] = RunState(key[0], key[1], RunPhase.EXITED, -15, start, end)
            elif info.driver_exit_code is not None:
                code = info.driver_exit_code
                out[key] = RunState(key[0], key[1], RunPhase.EXITED, code, start, end)
            else:  # failed without an exit code: its node or supervisor died
                out[key] = RunState(key[0], key[1], RunPhase.LOST, None, start, end or time.time())
        return out

    def logs(self, job: JobId, attempt: int, offset: int = 0) -> bytes:
        try:
            return self.client.get_job_logs(submission_id(job, attempt)).encode()[offset:]
        except RuntimeError:
            return b""

    def forget(self, job: JobId, attempt: int) -> None:
        self._forgotten.add(submission_id(job, attempt))
