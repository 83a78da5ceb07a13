"""Scenarios: a YAML file naming a trace, a pool and simulation settings.

Paths in a scenario are relative to the scenario file and may contain ``{seed}``.
``--trace PATH`` replaces the trace path (same format).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from suanli.catalog.accelerator import STACKS, AcceleratorModel, load_catalog
from suanli.errors import NotFoundError, Problem, ValidationError
from suanli.model.alliance import Alliance
from suanli.model.ids import MemberId, ModelId, NodeId, SiteId
from suanli.model.member import Member, MemberKind, Tier
from suanli.model.node import Node
from suanli.model.site import Site
from suanli.sim.network import NetworkSpec, national_network
from suanli.sim.simulator import Fault, SimParams
from suanli.sim.traces import alibaba
from suanli.sim.traces.gavel import Throughputs, load_gavel
from suanli.sim.traces.generic_csv import load_csv
from suanli.sim.workload import SimJob
from suanli.spec.alliance_file import load_alliance
from suanli.spec.common import parse_duration, pydantic_problems, read_yaml

REPO_SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"
GAVEL_TYPES = {"v100": ModelId("V100-16GB"), "p100": ModelId("P100"), "k80": ModelId("K80")}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceEntry(_Strict):
    #: ``national-network``: generated (sim/network.py); ``path`` is the folder of the traces
    #: it is calibrated on
    format: Literal["gavel-msr", "csv", "alibaba-2023", "national-network"]
    path: str
    #: national-network: how many jobs, and the load (NU-seconds held over a week / capacity)
    jobs: Annotated[int, Field(ge=1)] = 10_000
    load: Annotated[float, Field(gt=0, le=2)] = 0.7
    throughputs: str | None = None
    #: multiplies arrival times (not durations): below 1 compresses a light trace into a busier one
    arrival_scale: Annotated[float, Field(gt=0)] = 1.0
    #: gavel-msr: a 0.0 throughput is a missing entry (extrapolated) or "cannot run there"
    zero_throughput: Literal["missing", "cannot-run"] = "missing"
    #: gavel-msr: a (type, scale) a GPU type lacks is extrapolated, or its job left out
    unknown_throughput: Literal["extrapolate", "drop"] = "extrapolate"


class AlliancePool(_Strict):
    """The pool is an alliance file (members, sites, nodes, shares, grants, datasets)."""

    format: Literal["alliance"]
    file: str


class PoolEntry(_Strict):
    format: Literal["philly-vc"]
    vc_sizes: str
    devices: dict[str, Annotated[int, Field(ge=0)]]
    devices_per_node: Annotated[int, Field(ge=1, le=64)] = 4
    region: str = "philly"
    #: calibrate each model's TFLOPS from the trace's measured speeds (relative to the
    #: reference GPU type's catalog figure) instead of datasheet peaks
    calibrate_from_throughputs: str | None = None


class ModelEntry(_Strict):
    """A model the catalog does not have (the trace anonymized it): what the scenario assumes."""

    tflops: Annotated[float, Field(gt=0)]
    stack: str = "cuda"
    vendor: str = "undisclosed"
    memory_gb: Annotated[float, Field(gt=0)] | None = None
    note: str = Field(min_length=1)


class MemberEntry(_Strict):
    """``nodes``: weight among node owners (0: a commons member); ``pods``: weight among pods."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    nodes: Annotated[float, Field(ge=0)] = 0
    pods: Annotated[float, Field(gt=0)]


class AlibabaPoolEntry(_Strict):
    """The Alibaba 2023 trace's real inventory, dealt to members (rules in traces/alibaba.py)."""

    format: Literal["alibaba-2023"]
    nodes: str
    region: str = "alibaba"
    members: Annotated[list[MemberEntry], Field(min_length=1)]
    #: trace model name -> declaration, for models the catalog lacks (G2, G3)
    models: dict[str, ModelEntry] = {}


class NetworkPoolEntry(_Strict):
    """A generated national network (sim/network.py)."""

    format: Literal["national-network"]
    members: Annotated[int, Field(ge=2, le=10_000)] = 100
    accelerators: Annotated[int, Field(ge=16)] = 200_000
    #: the share of members that contribute nothing (the commons tier)
    commons: Annotated[float, Field(ge=0, lt=1)] = 0.2


class SimEntry(_Strict):
    checkpoint_interval: float | str | None = "30m"
    checkpoint_on_signal: bool = True
    grace: float | str = "5m"
    half_life: float | str = "7d"
    #: Gavel's rounds: arrivals wait for the next round, which ends with its last job
    round_arrivals: bool = False
    #: Gavel's free switching: a preempted job stops at once, losing nothing
    free_switching: bool = False


class FaultEntry(_Strict):
    at: float | str
    node: str
    down: float | str | None = None


class ScenarioFile(_Strict):
    name: str
    description: str = ""
    #: how the report names members (a trace's VCs are opaque ids): id -> name
    names: dict[str, Annotated[str, Field(max_length=100)]] = {}
    trace: TraceEntry
    pool: PoolEntry | AlliancePool | AlibabaPoolEntry | NetworkPoolEntry = Field(
        discriminator="format"
    )
    sim: SimEntry = SimEntry()
    faults: list[FaultEntry] = []
    #: a policy's options by its name (e.g. gavel: {reset_s: 1920})
    policies: dict[str, dict[str, float | int | str | bool]] = {}


@dataclass
class Scenario:
    name: str
    alliance: Alliance
    jobs: list[SimJob]
    params: SimParams
    notes: dict[str, Any]
    faults: tuple[Fault, ...] = ()
    #: a policy's options by its name
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)


def find_scenario(name_or_file: str) -> Path:
    p = Path(name_or_file)
    if p.suffix in {".yaml", ".yml"} or p.exists():
        if not p.exists():
            raise NotFoundError(f"scenario file {p} does not exist")
        return p
    for base in (Path.cwd() / "scenarios", REPO_SCENARIOS):
        cand = base / f"{name_or_file}.yaml"
        if cand.exists():
            return cand
    raise NotFoundError(
        f"unknown scenario {name_or_file!r} (looked in ./scenarios and {REPO_SCENARIOS.name}/)"
    )


def philly_pool(
    entry: PoolEntry,
    members: list[str],
    base: Path,
    calibration: dict[ModelId, float] | None = None,
) -> Alliance:
    """Members are the trace's VCs; those with a row in ``vc_sizes`` contribute in proportion to
    their real VC size, split over every model (largest remainder, whole nodes); the others form
    the commons tier. All sites share one region, as Philly's VCs shared one datacenter."""
    sizes: dict[str, int] = {}
    with (base / entry.vc_sizes).open() as f:
        for row in csv.DictReader(f):
            sizes[row["vc"]] = int(row["node num"])
    contributors = [m for m in members if m in sizes]
    total = sum(sizes[m] for m in contributors)
    cat = load_catalog()
    nodes: dict[NodeId, Node] = {}
    for model, devices in sorted(entry.devices.items()):
        mid = ModelId(model)
        cat.get(mid)
        n_nodes = devices // entry.devices_per_node
        exact = {m: n_nodes * sizes[m] / total for m in contributors}
        given = {m: int(x) for m, x in exact.items()}
        rest = n_nodes - sum(given.values())
        for m in sorted(contributors, key=lambda m: (-(exact[m] - given[m]), m))[:rest]:
            given[m] += 1
        for m in contributors:
            for k in range(given[m]):
                nid = NodeId(f"{m}-{model}-{k:03d}")
                nodes[nid] = Node(
                    nid,
                    SiteId(f"{m}-site"),
                    mid,
                    entry.devices_per_node,
                    cpu=64,
                    memory_gb=512,
                    calibrated_tflops=(calibration or {}).get(mid),
                )
    kinds = [MemberKind.UNIVERSITY, MemberKind.STARTUP, MemberKind.INSTITUTE]
    mem: dict[MemberId, Member] = {}
    for i, m in enumerate(members):
        contrib = m in sizes
        mem[MemberId(m)] = Member(
            MemberId(m),
            m,
            MemberKind.ENTERPRISE if contrib else kinds[i % 3],
            Tier.CONTRIBUTOR if contrib else Tier.COMMONS,
        )
    sites = {
        SiteId(f"{m}-site"): Site(SiteId(f"{m}-site"), MemberId(m), entry.region)
        for m in contributors
    }
    return Alliance("alliance-philly", cat, mem, sites, nodes, {})


def only_member(alliance: Alliance, member: MemberId) -> Alliance:
    """The member's own contributed hardware alone (for the sharing-incentive baseline)."""
    sites = {s: v for s, v in alliance.sites.items() if v.member == member}
    nodes = {n: v for n, v in alliance.nodes.items() if v.site in sites}
    return Alliance(
        f"{alliance.name}:{member}",
        alliance.catalog,
        {member: alliance.members[member]},
        sites,
        nodes,
        {},
    )


def _alibaba(
    name: str,
    entry: AlibabaPoolEntry,
    resolve: Callable[[str], Path],
    trace_path: Path,
    params: SimParams,
) -> tuple[Alliance, list[SimJob], dict[str, Any]]:
    names = [m.name for m in entry.members]
    dup = sorted({n for n in names if names.count(n) > 1})
    problems = [Problem("pool.members", f"member {n!r} appears twice") for n in dup]
    problems += [
        Problem(f"pool.models.{k}.stack", f"unknown stack {v.stack!r}")
        for k, v in entry.models.items()
        if v.stack not in STACKS
    ]
    if problems:
        raise ValidationError(problems, name)
    extra = [
        AcceleratorModel(
            id=ModelId(k),
            family=k,
            vendor=v.vendor,
            name=f"{k} (anonymized in the trace)",
            memory_gb=v.memory_gb,
            memory_bw_gbs=None,
            peak_tflops=v.tflops,
            peak_precision="fp16",
            peak_basis="estimate",
            stack=v.stack,
            resource_name="nvidia.com/gpu" if v.stack == "cuda" else "",
            alloc_unit=1,
            source=f"scenario {name}: {v.note}",
        )
        for k, v in sorted(entry.models.items())
    ]
    catalog = load_catalog().extended(extra)
    model_ids = {**alibaba.KNOWN_MODELS, **{k: ModelId(k) for k in entry.models}}
    shares = [alibaba.MemberShare(m.name, m.nodes, m.pods) for m in entry.members]
    nodes = alibaba.load_nodes(resolve(entry.nodes))
    alliance = alibaba.build_alliance(name, nodes, shares, catalog, model_ids, entry.region)
    load = alibaba.pods_to_jobs(
        trace_path,
        alibaba.load_pods(trace_path),
        alliance,
        shares,
        model_ids,
        params.default_checkpoint_s,
    )
    return alliance, load.jobs, dict(load.notes)


def _duration(value: float | str, where: str, path: Path) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValidationError([Problem(where, f"{value!r}: {exc}")], str(path)) from None


def load_scenario(name_or_file: str, trace: str | None = None, seed: int = 0) -> Scenario:
    path = find_scenario(name_or_file)
    data = read_yaml(path)
    try:
        doc = ScenarioFile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(pydantic_problems(exc), str(path)) from None
    base = path.parent

    def resolve(p: str) -> Path:
        return (base / p.format(seed=seed)).resolve()

    params = SimParams(
        default_checkpoint_s=None
        if doc.sim.checkpoint_interval is None
        else _duration(doc.sim.checkpoint_interval, "sim.checkpoint_interval", path),
        grace_s=_duration(doc.sim.grace, "sim.grace", path),
        half_life_s=_duration(doc.sim.half_life, "sim.half_life", path),
        checkpoint_on_signal=doc.sim.checkpoint_on_signal,
        round_arrivals=doc.sim.round_arrivals,
        free_switching=doc.sim.free_switching,
    )
    trace_path = Path(trace).resolve() if trace else resolve(doc.trace.path)
    if not trace_path.exists():
        raise ValidationError([Problem("trace.path", f"{trace_path} does not exist")], str(path))
    # (the trace by its file name: a report names no path of the machine that made it)
    notes: dict[str, Any] = {"trace": trace_path.name, "seed": seed}
    if doc.description:
        notes["description"] = doc.description
    if doc.names:
        notes["names"] = dict(doc.names)
    if doc.trace.format == "national-network":
        if not isinstance(doc.pool, NetworkPoolEntry):
            raise ValidationError(
                [Problem("pool.format", "a national-network trace needs a national-network pool")],
                str(path),
            )
        try:
            spec = NetworkSpec(
                doc.pool.members,
                doc.pool.accelerators,
                doc.trace.jobs,
                doc.trace.load,
                seed,
                doc.pool.commons,
            )
        except ValueError as exc:
            raise ValidationError([Problem("pool", str(exc))], str(path)) from None
        alliance, stream = national_network(spec, trace_path)
        jobs = list(stream)
        notes["network"] = {"members": spec.members, "accelerators": spec.accelerators}
    elif doc.trace.format == "alibaba-2023":
        if not isinstance(doc.pool, AlibabaPoolEntry):
            raise ValidationError(
                [Problem("pool.format", "an alibaba-2023 trace needs an alibaba-2023 pool")],
                str(path),
            )
        alliance, jobs, load_notes = _alibaba(doc.name, doc.pool, resolve, trace_path, params)
        notes.update(load_notes)
    elif doc.trace.format == "csv":
        if not isinstance(doc.pool, AlliancePool):
            raise ValidationError(
                [Problem("pool.format", "a csv trace needs an alliance pool")], str(path)
            )
        alliance = load_alliance(resolve(doc.pool.file))
        jobs = load_csv(trace_path, alliance, params.default_checkpoint_s)
    else:
        if doc.trace.throughputs is None:
            raise ValidationError(
                [Problem("trace.throughputs", "gavel-msr needs a throughput file")], str(path)
            )
        if not isinstance(doc.pool, PoolEntry):
            raise ValidationError(
                [Problem("pool.format", "gavel-msr needs a philly-vc pool")], str(path)
            )
        thr = Throughputs(
            resolve(doc.trace.throughputs),
            GAVEL_TYPES,
            doc.trace.zero_throughput,
            doc.trace.unknown_throughput,
        )
        load = load_gavel(trace_path, thr, doc.pool.devices_per_node, params.default_checkpoint_s)
        calibration = None
        if doc.pool.calibrate_from_throughputs:
            ref_gpu = doc.pool.calibrate_from_throughputs
            ref_tflops = load_catalog().get(GAVEL_TYPES[ref_gpu]).peak_tflops or 1.0
            calibration = {m: r * ref_tflops for m, r in thr.relative_speed(ref_gpu).items()}
        alliance = philly_pool(doc.pool, load.members, base, calibration)
        jobs = load.jobs
        notes["extrapolated_jobs"] = load.extrapolated_jobs
        if load.dropped:
            notes["dropped_jobs"] = load.dropped
        notes["calibrated_tflops"] = {k: round(v, 2) for k, v in (calibration or {}).items()}
    if doc.trace.arrival_scale != 1.0:
        for j in jobs:
            j.arrival *= doc.trace.arrival_scale
        notes["arrival_scale"] = doc.trace.arrival_scale
    faults = []
    for k, f in enumerate(doc.faults):
        if f.node not in alliance.nodes:
            raise ValidationError(
                [Problem(f"faults.{k}.node", f"unknown node {f.node!r}")], str(path)
            )
        faults.append(
            Fault(
                _duration(f.at, f"faults.{k}.at", path),
                NodeId(f.node),
                None if f.down is None else _duration(f.down, f"faults.{k}.down", path),
            )
        )
    return Scenario(
        doc.name,
        alliance,
        jobs,
        params,
        notes,
        tuple(faults),
        {k: dict(v) for k, v in doc.policies.items()},
    )
