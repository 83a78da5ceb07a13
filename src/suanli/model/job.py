"""JobSpec (what a user asks for) and JobStatus (what happened to it): separate types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from operator import itemgetter

from suanli.model.ids import DatasetId, JobId, MemberId, ModelId, NodeId

_devices_of = itemgetter(1)  # (an assignment's device indexes)


@dataclass(frozen=True, slots=True)
class Gang:
    """The shape of a gang: ``nodes`` hosts with ``per_node`` devices each, all or nothing.

    A multi-node gang (``nodes > 1``) takes whole nodes of one model whose device count equals
    ``per_node``, all in one region (one site, or sites that declare the same region).
    """

    nodes: int
    per_node: int

    @property
    def devices(self) -> int:
        return self.nodes * self.per_node


@dataclass(frozen=True, slots=True)
class Group:
    """Jobs admitted together: the scheduler starts none of a group's pending jobs unless, with
    them, at least ``min_size`` of its ``size`` jobs hold (or are about to hold) their devices.
    A federated run's parts form one group (:mod:`suanli.model.federation`)."""

    id: JobId
    size: int
    min_size: int


@dataclass(frozen=True, slots=True)
class CodeRevision:
    """Which code a job runs, for lineage: a revision (a git commit, a tag, a digest) of a
    repository, and whether the working tree held changes not in that revision."""

    revision: str
    repository: str | None = None
    dirty: bool = False

    def label(self) -> str:
        """In a line: ``REPOSITORY@REVISION`` (a commit shortened to 12), ``+changes`` when
        the tree was dirty."""
        where = f"{self.repository}@" if self.repository else ""
        return where + self.revision[:12] + (" +changes" if self.dirty else "")


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A vendor-neutral request, already resolved against the catalog.

    ``models`` is the set of acceptable accelerator models (from a named model, a list of
    ``any_of`` models, or acceptable software stacks); never empty. ``count`` devices are all of
    one model. ``cpu`` and ``memory_gb`` are per node. ``priority``: higher first within the
    member's own queue. A non-preemptible job runs only within its member's guarantee.
    ``estimated_duration_s`` is advisory (reports, backfill); the scheduler never kills a job
    for exceeding it.
    """

    id: JobId
    member: MemberId
    count: int
    models: frozenset[ModelId]
    gang: Gang
    name: str = ""
    cpu: float = 1.0
    memory_gb: float = 1.0
    priority: int = 0
    preemptible: bool = True
    checkpoint_interval_s: float | None = None
    datasets: tuple[DatasetId, ...] = ()
    entrypoint: str = ""
    runtime_env: Mapping[str, object] = field(default_factory=dict)
    estimated_duration_s: float | None = None
    #: the names of the job's secrets (their values are kept encrypted, apart from the spec,
    #: and handed only to the job's runs as environment variables)
    secrets: tuple[str, ...] = ()
    #: run only on nodes of ``member``'s own sites (a federated participant's part)
    own_nodes: bool = False
    group: Group | None = None
    #: the code's revision (lineage of what the job publishes)
    code: CodeRevision | None = None


class Phase(StrEnum):
    PENDING = "PENDING"
    ADMITTED = "ADMITTED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    PREEMPTED = "PREEMPTED"

    @property
    def terminal(self) -> bool:
        return self in {Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED}


@dataclass(frozen=True, slots=True)
class Placement:
    """Which devices a job gets: one model, and for each node the device indexes."""

    model: ModelId
    assignments: tuple[tuple[NodeId, tuple[int, ...]], ...]
    #: how many devices in all (counted once: the scheduler asks often)
    devices: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        a = self.assignments
        n = len(a[0][1]) if len(a) == 1 else sum(map(len, map(_devices_of, a)))
        object.__setattr__(self, "devices", n)

    @property
    def nodes(self) -> tuple[NodeId, ...]:
        return tuple(n for n, _ in self.assignments)

    def __str__(self) -> str:
        parts = ", ".join(f"{n}[{','.join(map(str, d))}]" for n, d in self.assignments)
        return f"{self.model} x{self.devices} on {parts}"


@dataclass(frozen=True, slots=True)
class JobStatus:
    """Observed state. A PREEMPTED job goes back to PENDING on its next pass."""

    phase: Phase = Phase.PENDING
    submitted_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    placement: Placement | None = None
    reason: str = ""
    preemptions: int = 0


@dataclass(frozen=True, slots=True)
class Job:
    spec: JobSpec
    status: JobStatus
