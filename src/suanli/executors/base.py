"""The executor interface the controller drives, and what every executor shares.

Every run is keyed by ``(job id, attempt)``. ``start`` and ``stop`` are idempotent: calling
them again for the same key (after a crash of the controller, say) changes nothing, so the
controller can always replay its last intentions. ``observe`` reports every run the executor
knows of, finished or not, so that a restarted controller learns what happened while it was
away.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from suanli.model.ids import JobId, ModelId, NodeId

#: the variable each software stack reads to restrict a process to some devices
VISIBLE_DEVICES_VAR: Mapping[str, str] = {
    "cuda": "CUDA_VISIBLE_DEVICES",
    "npu": "ASCEND_RT_VISIBLE_DEVICES",
    "mlu": "MLU_VISIBLE_DEVICES",
    "dcu": "HIP_VISIBLE_DEVICES",
    "xpu": "XPU_VISIBLE_DEVICES",
    "musa": "MUSA_VISIBLE_DEVICES",
    "maca": "MACA_VISIBLE_DEVICES",
    "corex": "CUDA_VISIBLE_DEVICES",
    "gcu": "TOPS_VISIBLE_DEVICES",
    "supa": "SUPA_VISIBLE_DEVICES",
    "ppu": "CUDA_VISIBLE_DEVICES",
}

#: the directory a job writes its checkpoints to (it survives preemption and requeue)
CHECKPOINT_DIR_VAR = "SUANLI_CHECKPOINT_DIR"


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One run of a job on the devices the scheduler chose."""

    job: JobId
    attempt: int
    entrypoint: str
    model: ModelId
    stack: str
    #: node -> device indexes (several nodes for a multi-node gang)
    devices: tuple[tuple[NodeId, tuple[int, ...]], ...]
    env: Mapping[str, str] = field(default_factory=dict)
    #: the directory the command runs in (``runtime_env.working_dir``; Ray ships it to the
    #: cluster), or None for the executor's own
    working_dir: str | None = None
    #: the job's member: its runs execute as that member's OS user
    member: str = "anonymous"
    #: the datasets the job reads: id -> where their files lie at the job's site (None: the
    #: dataset declares no location; the job finds it by its own means)
    datasets: Mapping[str, str | None] = field(default_factory=dict)
    #: ``host``: the run needs this machine's network whatever the executor's default (a
    #: federated run's parts, which meet over TLS); empty: the executor's default
    network: str = ""

    @property
    def key(self) -> tuple[JobId, int]:
        return (self.job, self.attempt)


class RunPhase(StrEnum):
    #: accepted by the executor, waiting to start (a Ray job waiting for its node): it may
    #: not be stoppable until it starts
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    EXITED = "EXITED"
    #: the executor lost track of the run (its supervisor or node died, or its site has been
    #: unreachable for longer than the timeout)
    LOST = "LOST"
    #: the run's site does not answer just now: nothing can be said of the run yet
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class RunState:
    job: JobId
    attempt: int
    phase: RunPhase
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None


class Executor(Protocol):
    def start(self, run: RunRequest) -> None:
        """Start ``run`` unless a run with its key was ever started."""

    def stop(self, job: JobId, attempt: int, grace_s: float) -> None:
        """Ask the run to stop (SIGTERM, checkpoint), and kill it after ``grace_s``."""

    def observe(self) -> dict[tuple[JobId, int], RunState]:
        """Every run this executor knows of."""

    def logs(self, job: JobId, attempt: int, offset: int = 0, limit: int | None = None) -> bytes:
        """At most ``limit`` bytes (None: all) of the run's output from byte ``offset`` on
        (empty if none yet)."""

    def log_size(self, job: JobId, attempt: int) -> int:
        """How many bytes of output the run has (0 if none yet)."""

    def forget(self, job: JobId, attempt: int) -> None:
        """Drop what is kept of a finished run once its outcome is recorded (logs stay)."""

    def node_health(self) -> dict[NodeId, str | None]:
        """The nodes this executor can speak for: ``None`` if up, else why it is down. Nodes
        left out keep the health they had."""


def rendezvous_env(rank: int, nodes: int, addr: str, port: int) -> dict[str, str]:
    """What the copy of a gang's command on node ``rank`` needs to find the others: one
    process per node (which may start one worker per device itself, ``torchrun`` say), under
    suanli's names and ``torch.distributed``'s."""
    r, n, p = str(rank), str(nodes), str(port)
    return {
        "SUANLI_NODE_RANK": r,
        "SUANLI_NUM_NODES": n,
        "SUANLI_MASTER_ADDR": addr,
        "SUANLI_MASTER_PORT": p,
        "NODE_RANK": r,
        "RANK": r,
        "NNODES": n,
        "WORLD_SIZE": n,
        "MASTER_ADDR": addr,
        "MASTER_PORT": p,
    }


def device_env(stack: str, devices: tuple[int, ...]) -> dict[str, str]:
    var = VISIBLE_DEVICES_VAR.get(stack, "CUDA_VISIBLE_DEVICES")
    return {var: ",".join(str(d) for d in devices)}
