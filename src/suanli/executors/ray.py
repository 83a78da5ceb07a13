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

A member's cluster that is down, or behind a network that drops packets, never holds the
controller: the client is made at the first call (a server starts while a member's cluster is
down; the site is silent until it answers), and every request gives up after
:data:`REQUEST_TIMEOUT_S` (Ray's client sends them without a timeout), which the per-site
executor takes for silence.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from ray.job_submission import JobStatus, JobSubmissionClient

from suanli.errors import CannotRunError
from suanli.executors.base import (
    CHECKPOINT_DIR_VAR,
    VISIBLE_DEVICES_VAR,
    RunPhase,
    RunRequest,
    RunState,
    device_env,
)
from suanli.executors.gang import PLAN_VAR
from suanli.executors.sandbox import (
    RUN_VAR,
    SandboxConfig,
    member_account,
    run_plan,
    stage,
)
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


#: (connect, read) seconds after which a request to a site's cluster gives up
REQUEST_TIMEOUT_S = (5.0, 20.0)


class _JobClient(JobSubmissionClient):
    """Ray's Job Submission client, every request of it bounded by ``timeout``."""

    def __init__(self, address: str, headers: dict[str, str] | None, timeout: Any) -> None:
        self._timeout = timeout  # (before the version check the constructor makes)
        super().__init__(address, headers=headers)

    def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return super()._do_request(method, endpoint, **kwargs)


def node_resource(node: str) -> str:
    return f"suanli.node.{node}"


#: a single-node job's entrypoint on Ray: the sandbox launcher runs the job's command
LAUNCHER = "python -m suanli.executors.sandbox --engine-signals"


def submission_id(job: JobId, attempt: int) -> str:
    return f"suanli-{job}-{attempt}"


class RayExecutor:
    """``sandbox``: how the job runs on the Ray node (see :mod:`suanli.executors.sandbox`; a
    gang's members always share the node's network, to meet). ``staging``: where a job's
    working directory is copied, with its member's permissions, before Ray uploads it;
    ``forbidden``: directories a working directory may neither be nor lie in (the state
    directory). ``data_root``: where datasets lie on the cluster's nodes."""

    def __init__(
        self,
        address: str,
        token: str | None,
        checkpoint_root: Path,
        sandbox: SandboxConfig | None = None,
        staging: Path | None = None,
        forbidden: tuple[Path, ...] = (),
        data_root: Path | None = None,
        timeout_s: tuple[float, float] = REQUEST_TIMEOUT_S,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.address = address.rstrip("/")
        self.headers = headers or {}
        self.timeout_s = timeout_s
        self._client: JobSubmissionClient | None = None
        self.checkpoint_root = checkpoint_root.resolve()
        self.sandbox = sandbox or SandboxConfig(network="host")
        self.staging = (staging or self.checkpoint_root.parent / "staging").resolve()
        self.forbidden = (self.checkpoint_root.parent, *forbidden)
        self.data_root = (data_root or self.checkpoint_root.parent / "data").resolve()
        self._forgotten: set[str] = set()
        #: Ray node id -> the suanli node it is (from its labels, while it was alive)
        self._ray_nodes: dict[str, NodeId] = {}

    @property
    def client(self) -> JobSubmissionClient:
        """Ray's client of the cluster, made at the first call that needs it (it asks the
        cluster for its version: a cluster that does not answer fails that call only)."""
        if self._client is None:
            self._client = _JobClient(self.address, self.headers or None, self.timeout_s)
        return self._client

    def request_of(self, run: RunRequest, working_dir: str | None = None) -> dict[str, Any]:
        """The Job Submission API request for ``run`` (pure: tests read it). The job's command
        and variables travel in the run's plan (:data:`RUN_VAR`), read by the sandbox launcher
        on the node; Ray's own variables are the only others. ``working_dir``: the staged copy
        of the job's working directory Ray uploads."""
        accel = RAY_RESOURCE.get(run.stack, run.stack.upper())
        var = VISIBLE_DEVICES_VAR.get(run.stack, "CUDA_VISIBLE_DEVICES")
        first, devices = run.devices[0]
        job_env = {
            **{k: v for k, v in run.env.items() if k != CHECKPOINT_DIR_VAR},
            "SUANLI_JOB_ID": run.job,
            "SUANLI_ATTEMPT": str(run.attempt),
            "SUANLI_NUM_NODES": str(len(run.devices)),
        }
        if run.datasets:
            job_env["SUANLI_DATASETS"] = ",".join(run.datasets)
        datasets = {k: str(self.data_root / loc) for k, loc in run.datasets.items() if loc}
        env: dict[str, str] = {}
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

        def plan_of(nodes: list[dict[str, str]], config: SandboxConfig) -> str:
            return json.dumps(
                run_plan(
                    run.member,
                    run.entrypoint,
                    job_env,
                    nodes,
                    run.stack,
                    str(self.checkpoint_root / run.job),
                    datasets,
                    config,
                    working_dir=working_dir is not None,
                )
            )

        if len(run.devices) == 1:
            node_env = {**device_env(run.stack, devices), "SUANLI_NODE": first}
            env[RUN_VAR] = plan_of([node_env], self.sandbox)
            request["entrypoint"] = LAUNCHER
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
            env[RUN_VAR] = plan_of([], replace(self.sandbox, network="host"))
            # every member's lines in the job's log, as written, without terminal colours
            env["RAY_DEDUP_LOGS"] = "0"
            env["RAY_COLOR_PREFIX"] = "0"
            # Ray would otherwise ship the working directory to the members when it finds
            # ``uv run`` among the driver's ancestors
            env["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
            request["entrypoint"] = "python -m suanli.executors.gang"
        request["runtime_env"] = {"env_vars": env}
        if working_dir:
            request["runtime_env"]["working_dir"] = working_dir
        return request

    def start(self, run: RunRequest) -> None:
        (self.checkpoint_root / run.job).mkdir(parents=True, exist_ok=True, mode=0o700)
        staged = None
        if run.working_dir:  # read with the member's own permissions, then uploaded by Ray
            staged = self.staging / f"{run.job}-{run.attempt}-{secrets.token_hex(4)}"
            staged.mkdir(parents=True, mode=0o700)
            account = member_account(run.member)
            try:
                if account is not None:
                    os.chown(staged, account.uid, account.gid)
                stage(run.working_dir, staged, account, self.forbidden)
            except ValueError as exc:
                shutil.rmtree(staged, ignore_errors=True)
                raise CannotRunError(str(exc)) from None
        try:
            self.client.submit_job(**self.request_of(run, str(staged) if staged else None))
        except RuntimeError as exc:
            if "already exists" not in str(exc):
                raise
        finally:
            if staged is not None:
                shutil.rmtree(staged, ignore_errors=True)

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
        connect, read = self.timeout_s
        timeout = httpx.Timeout(read, connect=connect)
        r = httpx.get(f"{self.address}/nodes?view=summary", headers=self.headers, timeout=timeout)
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

    def logs(self, job: JobId, attempt: int, offset: int = 0, limit: int | None = None) -> bytes:
        # (Ray answers a job's whole log at once: only what is sent on is bounded here)
        data = self._log(job, attempt)
        return data[offset:] if limit is None else data[offset : offset + limit]

    def log_size(self, job: JobId, attempt: int) -> int:
        return len(self._log(job, attempt))

    def _log(self, job: JobId, attempt: int) -> bytes:
        try:
            return self.client.get_job_logs(submission_id(job, attempt)).encode()
        except RuntimeError:
            return b""

    def forget(self, job: JobId, attempt: int) -> None:
        self._forgotten.add(submission_id(job, attempt))
