"""The Alibaba GPU cluster trace 2023 (``openb``): a real inventory and its pods.

Files (``cluster-trace-gpu-v2023/csv`` of alibaba/clusterdata):

- node list: ``sn,cpu_milli,memory_mib,gpu,model``: one GPU node per row, 7 GPU models, two of
  them anonymized (``G2``, ``G3``);
- pod list: ``name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,
  deletion_time,scheduled_time``: times in seconds from the start of the trace; ``gpu_milli`` is
  the share of each GPU the pod asked for (1000 = a whole device); ``gpu_spec`` lists acceptable
  models separated by ``|`` (empty: any).

The trace has no tenant field and no measure of work, so turning it into an alliance takes
rules, all deterministic and documented in docs/simulator.md:

- **Owners of nodes.** Within each model, nodes in trace order are dealt to contributors in
  contiguous runs by cumulative device count, in proportion to each contributor's ``nodes``
  weight: a node goes to the contributor whose range holds the position of its first device.
- **Owners of pods.** A pod belongs to the member whose range of cumulative ``pods`` weights
  holds ``u = sha256(pod name)[:8] / 2**32``: stable under reordering, independent of seeds.
- **Whole devices.** suanli allocates whole devices (as the device plugins of most of these chips
  do), so a pod asking for a fraction of one GPU takes a whole one; the loader counts such pods
  and the device share they asked for, so a report can show the cost.
- **CPU-only pods** (``num_gpu = 0``) are not accelerator jobs; they are counted and left out.
- **Duration.** ``deletion_time - scheduled_time``; a pod the trace never scheduled (``Pending``)
  is taken to want ``deletion_time - creation_time``. Latency-sensitive pods (``qos`` other than
  ``BE``) are services whose lifetime does not depend on the chip, so their duration is the same
  on every acceptable model; best-effort (``BE``) pods are batch work: the duration is on the
  fastest acceptable model in the pool and scales with NU per device elsewhere.
- **Preemption.** ``BE`` pods are preemptible; the others are not (so under ``alliance`` and
  ``fair`` they run only within their member's guarantee), except a commons member's: it has no
  guarantee and runs only on borrowed capacity, which can be reclaimed, so all its pods are
  preemptible. Priority: Guaranteed 2, LS and Burstable 1, BE 0.

Every bad or truncated line is reported with file and line; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from suanli.catalog.accelerator import Catalog
from suanli.errors import Problem, ValidationError
from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, MemberId, ModelId, NodeId, SiteId
from suanli.model.job import Gang, JobSpec
from suanli.model.member import Member, MemberKind, Tier
from suanli.model.node import Node
from suanli.model.site import Site
from suanli.sim.workload import SimJob

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = (
    "name",
    "cpu_milli",
    "memory_mib",
    "num_gpu",
    "gpu_milli",
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
QOS_PRIORITY = {"Guaranteed": 2, "LS": 1, "Burstable": 1, "BE": 0}
#: the trace's model names that name a model of suanli's catalog
KNOWN_MODELS: Mapping[str, ModelId] = {
    "P100": ModelId("P100"),
    "T4": ModelId("T4"),
    "A10": ModelId("A10"),
    "V100M16": ModelId("V100-16GB"),
    "V100M32": ModelId("V100-32GB"),
}


@dataclass(frozen=True, slots=True)
class TraceNode:
    sn: str
    cpu: float
    memory_gb: float
    devices: int
    model: str


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    cpu: float
    memory_gb: float
    gpus: int
    gpu_milli: int
    spec: tuple[str, ...]
    qos: str
    phase: str
    creation: float
    deletion: float
    scheduled: float | None

    @property
    def duration(self) -> float:
        return max(
            1.0, self.deletion - (self.creation if self.scheduled is None else self.scheduled)
        )


@dataclass(frozen=True, slots=True)
class MemberShare:
    """A member of the scenario: its weight among node owners (0: commons) and among pods."""

    name: str
    nodes: float
    pods: float


@dataclass
class PodLoad:
    jobs: list[SimJob]
    notes: dict[str, int | float] = field(default_factory=dict)


def _rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[str, dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        if header != list(columns):
            raise ValidationError(
                [Problem(f"{path.name}:1", f"expected columns {','.join(columns)}, got {header}")],
                str(path),
            )
        for line, row in enumerate(reader, start=2):
            yield f"{path.name}:{line}", row


def _complete(row: Mapping[str, str | None], where: str, problems: list[Problem]) -> bool:
    if None in row or any(v is None for v in row.values()):
        problems.append(Problem(where, "wrong number of columns (truncated line?)"))
        return False
    return True


def load_nodes(path: Path) -> list[TraceNode]:
    problems: list[Problem] = []
    out: list[TraceNode] = []
    for where, row in _rows(path, NODE_COLUMNS):
        if not _complete(row, where, problems):
            continue
        try:
            node = TraceNode(
                row["sn"].strip(),
                int(row["cpu_milli"]) / 1000,
                int(row["memory_mib"]) / 1024,
                int(row["gpu"]),
                row["model"].strip(),
            )
        except ValueError as exc:
            problems.append(Problem(where, f"bad number: {exc}"))
            continue
        if not node.sn or not node.model or node.devices < 1 or node.cpu <= 0:
            problems.append(Problem(where, "sn and model must be set, gpu >= 1 and cpu_milli > 0"))
            continue
        out.append(node)
    if problems:
        raise ValidationError(problems, str(path))
    return out


def load_pods(path: Path) -> list[Pod]:
    problems: list[Problem] = []
    out: list[Pod] = []
    for where, row in _rows(path, POD_COLUMNS):
        if not _complete(row, where, problems):
            continue
        try:
            sched = row["scheduled_time"].strip()
            pod = Pod(
                row["name"].strip(),
                int(row["cpu_milli"]) / 1000,
                int(row["memory_mib"]) / 1024,
                int(row["num_gpu"]),
                int(row["gpu_milli"]),
                tuple(s for s in row["gpu_spec"].split("|") if s),
                row["qos"].strip(),
                row["pod_phase"].strip(),
                float(row["creation_time"]),
                float(row["deletion_time"]),
                float(sched) if sched else None,
            )
        except ValueError as exc:
            problems.append(Problem(where, f"bad number: {exc}"))
            continue
        if pod.qos not in QOS_PRIORITY:
            problems.append(Problem(f"{where}.qos", f"unknown QoS {pod.qos!r}"))
        elif pod.gpus < 0 or not 0 <= pod.gpu_milli <= 1000 or pod.creation < 0:
            problems.append(Problem(where, "num_gpu >= 0, 0 <= gpu_milli <= 1000, time >= 0"))
        elif pod.deletion < pod.creation:
            problems.append(Problem(f"{where}.deletion_time", "before creation_time"))
        else:
            out.append(pod)
    if problems:
        raise ValidationError(problems, str(path))
    return out


def _unit(name: str) -> float:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") / 2**32


def _pick(u: float, weights: Sequence[tuple[str, float]]) -> str:
    """The entry whose range of cumulative weight (normalized to 1) holds ``u`` in [0, 1)."""
    total = sum(w for _, w in weights)
    acc = 0.0
    for name, w in weights:
        acc += w / total
        if u < acc:
            return name
    return weights[-1][0]


def deal_nodes(nodes: Sequence[TraceNode], members: Sequence[MemberShare]) -> dict[str, str]:
    """Node ``sn`` -> owner: per model, contiguous runs by cumulative device count."""
    owners = [(m.name, m.nodes) for m in members if m.nodes > 0]
    if not owners:
        raise ValidationError([Problem("pool.members", "at least one member needs nodes > 0")])
    by_model: dict[str, list[TraceNode]] = {}
    for n in nodes:
        by_model.setdefault(n.model, []).append(n)
    out: dict[str, str] = {}
    for group in by_model.values():
        total = sum(n.devices for n in group)
        pos = 0
        for n in group:
            out[n.sn] = _pick(pos / total, owners)
            pos += n.devices
    return out


def build_alliance(
    name: str,
    nodes: Sequence[TraceNode],
    members: Sequence[MemberShare],
    catalog: Catalog,
    model_ids: Mapping[str, ModelId],
    region: str,
) -> Alliance:
    """The trace's inventory as an alliance: one site per contributing member, one region."""
    unknown = sorted({n.model for n in nodes} - set(model_ids))
    if unknown:
        raise ValidationError(
            [
                Problem("pool.models", f"trace model {m!r} is not in the catalog; declare it here")
                for m in unknown
            ]
        )
    owners = deal_nodes(nodes, members)
    out_nodes = {
        NodeId(n.sn): Node(
            NodeId(n.sn),
            SiteId(f"{owners[n.sn]}-site"),
            model_ids[n.model],
            n.devices,
            cpu=n.cpu,
            memory_gb=n.memory_gb,
        )
        for n in nodes
    }
    contributors = sorted(set(owners.values()))
    sites = {
        SiteId(f"{m}-site"): Site(SiteId(f"{m}-site"), MemberId(m), region) for m in contributors
    }
    kinds = [MemberKind.UNIVERSITY, MemberKind.STARTUP, MemberKind.INSTITUTE]
    mem = {
        MemberId(m.name): Member(
            MemberId(m.name),
            m.name,
            MemberKind.ENTERPRISE if m.name in contributors else kinds[i % 3],
            Tier.CONTRIBUTOR if m.name in contributors else Tier.COMMONS,
        )
        for i, m in enumerate(members)
    }
    return Alliance(name, catalog, mem, sites, out_nodes, {})


def pod_owner(name: str, members: Sequence[MemberShare]) -> str:
    return _pick(_unit(name), [(m.name, m.pods) for m in members if m.pods > 0])


def pods_to_jobs(
    path: Path,
    pods: Sequence[Pod],
    alliance: Alliance,
    members: Sequence[MemberShare],
    model_ids: Mapping[str, ModelId],
    default_checkpoint_s: float | None,
) -> PodLoad:
    problems: list[Problem] = []
    present = {n.model for n in alliance.nodes.values()}
    nu = {
        m: max(alliance.nu_per_device(n) for n in alliance.nodes.values() if n.model == m)
        for m in present
    }
    commons = {m.name for m in members if m.nodes == 0}
    jobs: list[SimJob] = []
    notes: dict[str, int | float] = {
        "pods": len(pods),
        "cpu_only_pods_left_out": 0,
        "fractional_gpu_pods": 0,
        "fractional_gpu_device_share_asked": 0.0,
        "never_scheduled_in_trace": 0,
    }
    for line, pod in enumerate(pods, start=2):
        where = f"{path.name}:{line}"
        if pod.gpus == 0:
            notes["cpu_only_pods_left_out"] += 1
            continue
        unknown = [s for s in pod.spec if s not in model_ids]
        if unknown:
            problems.append(Problem(f"{where}.gpu_spec", f"unknown GPU model {unknown[0]!r}"))
            continue
        models = {model_ids[s] for s in pod.spec} & present if pod.spec else set(present)
        if not models:
            problems.append(Problem(f"{where}.gpu_spec", "no acceptable model is in the pool"))
            continue
        if pod.gpu_milli < 1000:
            notes["fractional_gpu_pods"] += 1
            notes["fractional_gpu_device_share_asked"] += pod.gpus * pod.gpu_milli / 1000
        if pod.scheduled is None:
            notes["never_scheduled_in_trace"] += 1
        service = pod.qos != "BE"
        owner = pod_owner(pod.name, members)
        fastest = max(nu[m] for m in models)
        speed = {m: 1.0 if service else nu[m] / fastest for m in models}
        spec = JobSpec(
            JobId(pod.name),
            MemberId(owner),
            pod.gpus,
            frozenset(models),
            Gang(1, pod.gpus),
            cpu=pod.cpu,
            memory_gb=pod.memory_gb,
            priority=QOS_PRIORITY[pod.qos],
            preemptible=not service or owner in commons,
            checkpoint_interval_s=default_checkpoint_s,
        )
        info = {"qos": pod.qos, "phase": pod.phase, "gpu_milli": str(pod.gpu_milli)}
        jobs.append(SimJob(spec, pod.creation, pod.duration, speed, info))
    if problems:
        raise ValidationError(problems, str(path))
    notes["fractional_gpu_device_share_asked"] = round(
        float(notes["fractional_gpu_device_share_asked"]), 1
    )
    return PodLoad(jobs, notes)
