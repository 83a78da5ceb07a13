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

A **multi-node gang** is one Ray job whose driver is :mod:`suanli.executors.gang`: it reserves
all the nodes' devices at once in a placement group (one bundle per node, pinned by label) and
runs the job's command once per node with the rendezvous variables. The driver itself takes no
devices and runs on the first node. Members' clusters need suanli installed beside Ray for
gangs (single-node jobs need nothing of suanli on the cluster).

The queue is suanli's: the controller only submits what fits now. Starting a run that exists
is a no-op (Ray refuses a second job with the same ``submission_id``).

:meth:`RayExecutor.node_health` reads the cluster's node table: a suanli node whose Ray node is
dead (and not replaced by a live one with its label) is reported down, so the scheduler places
nothing there until it is back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from ray.job_submission import JobStatus, JobSubmissionClient

from suanli.executors.base import (
    CHECKPOINT_DIR_VAR,
    VISIBLE_DEVICES_VAR,
    RunPhase,
    RunRequest,
    RunState,
    device_env,
)
from suanli.executors.gang import ENTRYPOINT_VAR, PLAN_VAR
from suanli.model.ids import JobId, NodeId

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
        self.address = address.rstrip("/")
        self.headers = headers or {}
        self.client = JobSubmissionClient(address, headers=headers)
        self.checkpoint_root = checkpoint_root.resolve()
        self._forgotten: set[str] = set()
        #: Ray node id -> the suanli node it is (from its labels, while it was alive)
        self._ray_nodes: dict[str, NodeId] = {}

    def request_of(self, run: RunRequest) -> dict[str, Any]:
        """The Job Submission API request for ``run`` (pure: tests read it)."""
        accel = RAY_RESOURCE.get(run.stack, run.stack.upper())
        var = VISIBLE_DEVICES_VAR.get(run.stack, "CUDA_VISIBLE_DEVICES")
        first, devices = run.devices[0]
        env = {
            **run.env,
            CHECKPOINT_DIR_VAR: str(self.checkpoint_root / run.job),
            "SUANLI_JOB_ID": run.job,
            "SUANLI_ATTEMPT": str(run.attempt),
            "SUANLI_NUM_NODES": str(len(run.devices)),
        }
        if var in NOSET:
            env[NOSET[var]] = "1"
        request: dict[str, Any] = {
            "submission_id": submission_id(run.job, run.attempt),
            "metadata": {
                "suanli": "1",
                "job": run.job,
                "attempt": str(run.attempt),
                "model": run.model,
                "placement": ";".join(f"{n}:{','.join(map(str, d))}" for n, d in run.devices),
            },
            "entrypoint_num_cpus": 0,
            "entrypoint_label_selector": {f"{LABEL}/node": first},
        }
        if len(run.devices) == 1:
            env.update(device_env(run.stack, devices))
            env["SUANLI_NODE"] = first
            request["entrypoint"] = run.entrypoint
            # Ray takes GPUs only as entrypoint_num_gpus, every other chip as a resource
            request["entrypoint_num_gpus"] = len(devices) if accel == "GPU" else None
            request["entrypoint_resources"] = {
                **({} if accel == "GPU" else {accel: len(devices)}),
                node_resource(first): len(devices),
            }
        else:  # the gang driver reserves the devices in a placement group
            plan = [
                {"node": n, "devices": list(d), "resource": accel, "var": var}
                for n, d in run.devices
            ]
            env[PLAN_VAR] = json.dumps(plan)
            env[ENTRYPOINT_VAR] = run.entrypoint
            # every member's lines in the job's log, as written, without terminal colours
            env["RAY_DEDUP_LOGS"] = "0"
            env["RAY_COLOR_PREFIX"] = "0"
            # Ray would otherwise ship the working directory to the members when it finds
            # ``uv run`` among the driver's ancestors
            env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
            request["entrypoint"] = "python -m suanli.executors.gang"
        request["runtime_env"] = {"env_vars": env}
        if run.working_dir:
            request["runtime_env"]["working_dir"] = run.working_dir
        return request

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
            if status is JobStatus.PENDING:
                out[key] = RunState(key[0], key[1], RunPhase.PENDING)
            elif status is JobStatus.RUNNING:
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

    def node_health(self) -> dict[NodeId, str | None]:
        """Every suanli node this cluster has (had) a Ray node for: ``None`` if one is alive,
        else why it is down. A dead Ray node loses its labels in Ray's table, so which suanli
        node each Ray node is, is remembered from when it was alive."""
        r = httpx.get(f"{self.address}/nodes?view=summary", headers=self.headers, timeout=10)
        r.raise_for_status()
        out: dict[NodeId, str | None] = {}
        dead: dict[NodeId, str] = {}
        for n in r.json()["data"]["summary"]:
            raylet = n.get("raylet", {})
            ray_id = str(raylet.get("nodeId", ""))
            label = raylet.get("labels", {}).get(f"{LABEL}/node")
            if label:
                self._ray_nodes[ray_id] = NodeId(label)
            node = self._ray_nodes.get(ray_id)
            if node is None:
                continue
            if raylet.get("state") == "ALIVE":
                out[node] = None
            else:
                why = raylet.get("stateMessage") or "no detail"
                dead[node] = f"its Ray node is {raylet.get('state', 'gone')} ({why})"
        for node in set(self._ray_nodes.values()) - set(out):
            out[node] = dead.get(node, "its Ray node left the cluster")
        return out

    def logs(self, job: JobId, attempt: int, offset: int = 0) -> bytes:
        try:
            return self.client.get_job_logs(submission_id(job, attempt)).encode()[offset:]
        except RuntimeError:
            return b""

    def forget(self, job: JobId, attempt: int) -> None:
        self._forgotten.add(submission_id(job, attempt))
