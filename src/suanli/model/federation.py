"""A federated run: one model trained across members, each on its own data and its own nodes.

A :class:`FederatedSpec` is what its submitter asks for; the scheduler never sees it whole. It
sees the run's *parts* (:meth:`FederatedSpec.parts`): one job per participant, the participant's
Flower SuperNode, owned by and charged to that participant, bound to the participant's own
nodes where its dataset may be processed, and holding that dataset only. The parts form one
:class:`~suanli.model.job.Group`: none starts unless at least ``min_participants`` of them
can. The SuperLink, which holds no accelerator, runs beside the control plane
(docs/operations.md, "Federated training").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from suanli.model.ids import DatasetId, JobId, MemberId, ModelId
from suanli.model.job import CodeRevision, Gang, Group, JobSpec

#: a run-config value as ``flwr run --run-config`` takes it
ConfigValue = str | int | float | bool
#: run-config keys suanli sets from the job's own fields (an app reads them; a job's
#: ``run_config`` may not set them)
RESERVED_KEYS = frozenset(
    {
        "num-server-rounds",
        "min-participants",
        "output-dir",
        "secagg-num-shares",
        "secagg-reconstruction-threshold",
        "secagg-clipping-range",
        "secagg-quantization-range",
        "dp-noise-multiplier",
        "dp-clipping-norm",
        "dp-side",
    }
)


@dataclass(frozen=True, slots=True)
class Participant:
    """A member that trains on ``dataset`` with ``count`` devices of one of ``models`` on one
    of its own nodes."""

    member: MemberId
    dataset: DatasetId
    count: int
    models: frozenset[ModelId]
    cpu: float = 1.0
    memory_gb: float = 1.0


@dataclass(frozen=True, slots=True)
class SecureAggregation:
    """Flower's SecAgg+: each update is split into ``num_shares`` shares, of which
    ``reconstruction_threshold`` rebuild it; values are clipped to ``clipping_range`` and
    quantized to ``quantization_range`` levels."""

    num_shares: int
    reconstruction_threshold: int
    clipping_range: float = 8.0
    quantization_range: int = 4_194_304


@dataclass(frozen=True, slots=True)
class DifferentialPrivacy:
    """Gaussian noise of ``noise_multiplier`` x ``clipping_norm`` on updates clipped to
    ``clipping_norm``, added by the server (central DP) or by each participant (local)."""

    noise_multiplier: float
    clipping_norm: float
    side: str = "server"


@dataclass(frozen=True, slots=True)
class FederatedSpec:
    """A federated job, resolved against the catalog and the alliance.

    ``app``: the Flower app, a directory (or ``.fab`` bundle) relative to the job's working
    directory. ``member``: the submitter, who owns the run and its final model; it need not be
    a participant.
    """

    id: JobId
    member: MemberId
    app: str
    rounds: int
    participants: tuple[Participant, ...]
    min_participants: int
    name: str = ""
    run_config: Mapping[str, ConfigValue] = field(default_factory=dict)
    secure_aggregation: SecureAggregation | None = None
    differential_privacy: DifferentialPrivacy | None = None
    priority: int = 0
    preemptible: bool = True
    runtime_env: Mapping[str, object] = field(default_factory=dict)
    estimated_duration_s: float | None = None
    code: CodeRevision | None = None
    #: the hub's model repo the run commits its final model to (None: it does not)
    publish: str | None = None

    def flower_config(self) -> dict[str, ConfigValue]:
        """The run config handed to the app (``flwr run --run-config``): the job's
        ``run_config``, then the keys suanli owns (:data:`RESERVED_KEYS`) from its fields;
        privacy that is off is 0. ``output-dir`` is the executor's to set."""
        out: dict[str, ConfigValue] = dict(self.run_config)
        out["num-server-rounds"] = self.rounds
        out["min-participants"] = self.min_participants
        sa, dp = self.secure_aggregation, self.differential_privacy
        if sa is not None:
            out["secagg-num-shares"] = sa.num_shares
            out["secagg-reconstruction-threshold"] = sa.reconstruction_threshold
            out["secagg-clipping-range"] = sa.clipping_range
            out["secagg-quantization-range"] = sa.quantization_range
        if dp is not None:
            out["dp-noise-multiplier"] = dp.noise_multiplier
            out["dp-clipping-norm"] = dp.clipping_norm
            out["dp-side"] = dp.side
        return out

    def part_id(self, k: int) -> JobId:
        """The ``k``-th participant's part: ``RUN.K`` (from 1; a run's id is short enough)."""
        return JobId(f"{self.id}.{k + 1}")

    def parts(self) -> tuple[JobSpec, ...]:
        """One job per participant: its SuperNode. Each is the participant's own (charged to
        its share, in its queue), may run on its nodes only, and names its dataset only."""
        group = Group(self.id, len(self.participants), self.min_participants)
        return tuple(
            JobSpec(
                id=self.part_id(k),
                member=p.member,
                count=p.count,
                models=p.models,
                gang=Gang(1, p.count),
                name=f"{self.name or self.id}: {p.member} on {p.dataset}",
                cpu=p.cpu,
                memory_gb=p.memory_gb,
                priority=self.priority,
                preemptible=self.preemptible,
                datasets=(p.dataset,),
                estimated_duration_s=self.estimated_duration_s,
                own_nodes=True,
                group=group,
            )
            for k, p in enumerate(self.participants)
        )
