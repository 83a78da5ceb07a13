"""A national network in simulation: a generated alliance of many members and a steady
stream of jobs, calibrated on the public traces shipped in ``data/traces``.

Where each part comes from (docs/simulator.md, "A national network", has the reasons):

- **Member sizes**: the sizes of real virtual clusters, each one a member's contribution: the
  GPU counts of Helios's Earth VCs (their largest over the trace's days) and Philly's VC sizes
  (nodes of 8 GPUs). Contributors draw a size from these with a log-normal jitter (sigma 0.3),
  scaled so that the pool has exactly ``accelerators`` devices in whole nodes of 8. A fifth of
  the members contribute nothing (the commons tier), as 4 of Philly's 15 VCs had no row.
- **Chips**: :data:`MIX`, 22 catalog models with a datasheet NU figure, Chinese chips 57 % of
  the devices. Nodes are dealt to members in runs of one model, so a large member holds
  several models and a small one one or two, as real clusters grow in purchase batches.
- **Sites and regions**: a site per 2,000 devices of a member (at least one), each in one of
  eight regions; a gang stays within a region.
- **Jobs**: each job copies the size (devices) and the run time of a job drawn from a real
  trace, half from Philly (Gavel's msr traces, seed 0: GPUs, and the run time on a V100 from
  Gavel's throughputs) and half from Alibaba's 2023 GPU pods (GPUs, scheduled to deleted; pods
  still running when the trace ended are cut at 14 days). Jobs over 8 devices are gangs of
  whole nodes of 8.
- **Rhythm**: arrivals are a Poisson process whose rate follows the hour-of-day and
  day-of-week profile of the Alibaba pods' creation times (a busy evening, a quiet morning),
  scaled so that what the jobs hold (devices x run time x NU, each on its fastest model) is
  ``load`` of the pool's NU over a week (:func:`mean_hold_nu_s`).
- **What a job accepts**: 70 % one software stack (drawn by the stack's share of the pool's NU,
  so that no stack is oversubscribed on average), 30 % portable (every model; off CUDA they run
  at a porting efficiency drawn from [0.5, 1.0]). A job's speed on a model is that model's NU
  times a per-job factor from [0.7, 1.3]; its work is its trace run time on a V100's NU.
- **Who submits**: members in proportion to their contribution (commons members as a small
  contributor each); a contributor keeps a dataset at each of its sites, and 5 % of its jobs
  read one, drawn by the site's NU, on a stack drawn by the NU there (a job on the data runs
  on the hardware there), so that each site's own data asks about the same share of it;
  90 % of jobs are preemptible (all of the commons tier's).

Jobs are yielded one by one in arrival order: ten million of them never sit in memory at once.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from suanli.catalog.accelerator import load_catalog
from suanli.model.alliance import Alliance
from suanli.model.dataset import Dataset
from suanli.model.ids import DatasetId, JobId, MemberId, ModelId, NodeId, SiteId
from suanli.model.job import Gang, JobSpec
from suanli.model.member import Member, MemberKind, Tier
from suanli.model.node import Node
from suanli.model.site import Site
from suanli.sim.traces.gavel import Throughputs, load_gavel
from suanli.sim.workload import SimJob

#: share of the pool's devices per model (percent); Chinese chips 57, NVIDIA 43
MIX: dict[str, int] = {
    "Ascend910B": 22,
    "Ascend910C": 8,
    "MLU370-X8": 6,
    "DCU-K100-AI": 6,
    "DCU-K100": 3,
    "MTT-S4000": 3,
    "BI-V150": 4,
    "BI-V100": 2,
    "BR104": 2,
    "BR100": 1,
    "A800-80GB": 8,
    "H20": 8,
    "A100-80GB": 7,
    "H800-80GB": 6,
    "L40S": 3,
    "L20": 3,
    "H100-80GB": 2,
    "RTX4090": 2,
    "V100-32GB": 1,
    "V100-16GB": 1,
    "A10": 1,
    "T4": 1,
}
REGIONS = ("beijing", "shanghai", "guangdong", "zhejiang", "jiangsu", "sichuan", "hubei", "guizhou")
PER_NODE = 8
SITE_DEVICES = 2000
#: the reference a trace's run time is measured on (Philly's and Alibaba's GPUs: V100-class)
REFERENCE = ModelId("V100-16GB")
MAX_RUN_S = 14 * 86400.0
#: a job's speed on a model is the model's NU times a factor drawn uniformly from this range
FACTOR = (0.7, 1.3)
WEEK = 7 * 86400
#: share of a contributor's jobs that read its dataset (and so run only where it resides)
READS = 0.05


@dataclass(frozen=True)
class NetworkSpec:
    members: int = 100
    accelerators: int = 200_000
    jobs: int = 10_000
    #: what the jobs hold over a week / the pool's NU capacity (0.7: the network keeps up
    #: week after week; at 0.8 the week's two busiest days ask for all of the pool)
    load: float = 0.7
    seed: int = 0
    commons: float = 0.2

    def __post_init__(self) -> None:
        problems = []
        if self.members < 2:
            problems.append("members: at least 2")
        if self.accelerators < PER_NODE * self.members:
            problems.append(f"accelerators: at least {PER_NODE} per member")
        if self.jobs < 1:
            problems.append("jobs: at least 1")
        if not 0 < self.load <= 2:
            problems.append("load: in (0, 2]")
        if not 0 <= self.commons < 1:
            problems.append("commons: in [0, 1)")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class Calibration:
    """What the generator draws from: real sizes and run times, and the weekly rhythm."""

    member_sizes: tuple[int, ...]
    #: (devices, run time in seconds on the reference) of real jobs
    philly: tuple[tuple[int, float], ...]
    alibaba: tuple[tuple[int, float], ...]
    #: relative arrival rate per hour of the week (mean 1)
    hourly: tuple[float, ...]


def load_calibration(traces: Path) -> Calibration:
    """Read the calibration from the trace folder (``data/traces`` of the repository)."""
    sizes = []
    with (traces / "helios" / "Earth_gpu_number.csv").open() as f:
        rows = list(csv.DictReader(f))
    for vc in rows[0]:
        if vc not in ("date", "total"):
            biggest = max(int(r[vc]) for r in rows)
            if biggest:
                sizes.append(biggest)
    with (traces / "helios" / "philly_vc.csv").open() as f:
        sizes += [PER_NODE * int(r["node num"]) for r in csv.DictReader(f)]
    gavel = traces / "gavel-msr"
    thr = Throughputs(
        gavel / "throughputs" / "simulation_throughputs.json",
        {"v100": REFERENCE, "p100": ModelId("P100"), "k80": ModelId("K80")},
    )
    load = load_gavel(gavel / "seed=0", thr, PER_NODE, None)
    philly = tuple(
        (j.spec.count, min(MAX_RUN_S, j.work / j.speed[REFERENCE]))
        for j in load.jobs
        if REFERENCE in j.speed
    )
    alibaba = []
    weekly = [0] * (WEEK // 3600)
    with (traces / "alibaba-gpu-v2023" / "openb_pod_list_default.csv").open() as f:
        for r in csv.DictReader(f):
            created = int(r["creation_time"])
            weekly[created % WEEK // 3600] += 1
            if int(r["num_gpu"]) < 1 or not r["scheduled_time"]:
                continue
            run = int(r["deletion_time"]) - int(r["scheduled_time"])
            if run > 0:
                alibaba.append((int(r["num_gpu"]), min(MAX_RUN_S, float(run))))
    mean = sum(weekly) / len(weekly)
    return Calibration(
        tuple(sorted(sizes)), philly, tuple(alibaba), tuple(x / mean for x in weekly)
    )


def build_alliance(spec: NetworkSpec, cal: Calibration) -> Alliance:
    rng = random.Random(spec.seed)
    catalog = load_catalog()
    n_commons = round(spec.members * spec.commons)
    n_contrib = spec.members - n_commons
    raw = [rng.choice(cal.member_sizes) * rng.lognormvariate(0, 0.3) for _ in range(n_contrib)]
    total_nodes = spec.accelerators // PER_NODE
    nodes_of = _largest_remainder(raw, total_nodes, minimum=1)
    kinds = (MemberKind.ENTERPRISE, MemberKind.INSTITUTE, MemberKind.UNIVERSITY)
    members: dict[MemberId, Member] = {}
    for i in range(spec.members):
        mid = MemberId(f"m{i:03d}")
        contrib = i < n_contrib
        kind = kinds[i % 3] if contrib else MemberKind.STARTUP
        members[mid] = Member(mid, mid, kind, Tier.CONTRIBUTOR if contrib else Tier.COMMONS)
    # whole-node counts per model, then dealt in runs of one model in a shuffled order
    per_model = _largest_remainder([float(w) for w in MIX.values()], total_nodes)
    models = list(zip(MIX, per_model, strict=True))
    rng.shuffle(models)
    deck = itertools.chain.from_iterable(itertools.repeat(ModelId(m), n) for m, n in models)
    sites: dict[SiteId, Site] = {}
    nodes: dict[NodeId, Node] = {}
    datasets: dict[DatasetId, Dataset] = {}
    order = list(range(n_contrib))
    rng.shuffle(order)
    for i in order:
        mid = MemberId(f"m{i:03d}")
        count = nodes_of[i]
        n_sites = max(1, round(count * PER_NODE / SITE_DEVICES))
        first = rng.randrange(len(REGIONS))
        member_sites = [SiteId(f"{mid}-s{k}") for k in range(n_sites)]
        for k, sid in enumerate(member_sites):
            sites[sid] = Site(sid, mid, REGIONS[(first + k) % len(REGIONS)])
        for k in range(count):
            model = next(deck)
            nid = NodeId(f"{mid}-n{k:05d}")
            topo = ((0, 1, 2, 3), (4, 5, 6, 7)) if model.startswith("Ascend910") else ()
            nodes[nid] = Node(nid, member_sites[k % n_sites], model, PER_NODE, 128, 1024, topo)
        for sid in member_sites:
            did = DatasetId(f"{sid}-data")
            datasets[did] = Dataset(did, mid, resident_sites=frozenset({sid}))
    return Alliance("national-network", catalog, members, sites, nodes, datasets)


def _largest_remainder(weights: list[float], total: int, minimum: int = 0) -> list[int]:
    """Integers proportional to ``weights`` summing to ``total``, each at least ``minimum``."""
    spare = total - minimum * len(weights)
    exact = [spare * w / sum(weights) for w in weights]
    out = [int(x) for x in exact]
    rest = spare - sum(out)
    for k in sorted(range(len(exact)), key=lambda k: out[k] - exact[k])[:rest]:
        out[k] += 1
    return [x + minimum for x in out]


def generate_jobs(alliance: Alliance, spec: NetworkSpec, cal: Calibration) -> Iterator[SimJob]:
    """``spec.jobs`` jobs in arrival order, lazily."""
    rng = random.Random(spec.seed + 1)
    catalog = alliance.catalog
    nu = {ModelId(m): catalog.get(ModelId(m)).nu_per_device or 0.0 for m in MIX}
    ref_nu = nu.get(REFERENCE) or catalog.get(REFERENCE).nu_per_device or 1.0
    devices: dict[ModelId, int] = {}
    for node in alliance.nodes.values():
        devices[node.model] = devices.get(node.model, 0) + node.devices
    capacity_nu = sum(n * nu[m] for m, n in devices.items())
    stacks: dict[str, list[ModelId]] = {}
    for m in devices:
        stacks.setdefault(catalog.get(m).stack, []).append(m)
    for ms in stacks.values():
        ms.sort()
    stack_names = sorted(stacks)
    stack_nu = [sum(devices[m] * nu[m] for m in stacks[s]) for s in stack_names]
    stack_cum = list(itertools.accumulate(stack_nu))
    all_models = frozenset(devices)
    # who submits: contributors by contribution, each commons member as the smallest one
    contributed: dict[MemberId, int] = {}
    for node in alliance.nodes.values():
        owner = alliance.sites[node.site].member
        contributed[owner] = contributed.get(owner, 0) + node.devices
    smallest = min(contributed.values())
    submitters = sorted(alliance.members)
    weight = [float(contributed.get(m, smallest)) for m in submitters]
    member_cum = list(itertools.accumulate(weight))
    data_of = _site_data(alliance, stacks, nu)
    site_cum = {m: list(itertools.accumulate(x.cum[-1] for x in xs)) for m, xs in data_of.items()}
    cuda = frozenset(m for m in devices if catalog.get(m).stack == "cuda")
    # the rate: NU-seconds held per second = load x capacity, on average over a week
    rate = spec.load * capacity_nu / mean_hold_nu_s(cal, ref_nu)
    hourly = cal.hourly
    t = 0.0
    for i in range(spec.jobs):
        # inhomogeneous Poisson: unit-rate exponential work spent against the hourly rate
        need = rng.expovariate(1.0)
        while True:
            hour = int(t // 3600)
            r = rate * hourly[hour % len(hourly)]
            left = (hour + 1) * 3600 - t
            if r * left >= need:
                t += need / r
                break
            need -= r * left
            t = (hour + 1) * 3600.0
        source = cal.philly if rng.random() < 0.5 else cal.alibaba
        size, run_s = source[rng.randrange(len(source))]
        gang = Gang(_devices(size) // PER_NODE, PER_NODE) if size > PER_NODE else Gang(1, size)
        member = submitters[bisect.bisect_right(member_cum, rng.random() * member_cum[-1])]
        commons = alliance.members[member].tier is Tier.COMMONS
        factor = rng.uniform(*FACTOR)
        home = None
        if not commons and member in data_of and rng.random() < READS:
            # the data at one of its sites, drawn by the site's NU; the stack by NU there
            cum = site_cum[member]
            home = data_of[member][bisect.bisect_right(cum, rng.random() * cum[-1])]
            names, cum = home.names, home.cum
            models = frozenset(stacks[names[bisect.bisect_right(cum, rng.random() * cum[-1])]])
            speed = {m: factor * nu[m] for m in models}
        elif rng.random() < 0.3:
            models = all_models
            port = rng.uniform(0.5, 1.0)
            speed = {m: factor * nu[m] * (1.0 if m in cuda else port) for m in models}
        else:
            stack = stack_names[bisect.bisect_right(stack_cum, rng.random() * stack_cum[-1])]
            models = frozenset(stacks[stack])
            speed = {m: factor * nu[m] for m in models}
        if gang.per_node % 2:  # (a chip allocated in pairs cannot host an odd count per node)
            odd = [m for m in models if catalog.get(m).alloc_unit > 1]
            if odd and len(odd) < len(models):
                models = models - frozenset(odd)
                speed = {m: s for m, s in speed.items() if m in models}
            elif odd:
                gang = Gang(gang.nodes, gang.per_node + 1)
        datasets: tuple[DatasetId, ...] = ()
        # (a job too wide for the nodes there reads no data: it could never start)
        if home is not None and max(home.nodes.get(m, 0) for m in models) >= gang.nodes:
            datasets = (home.dataset,)
        count = gang.devices
        job = JobSpec(
            JobId(f"n{i}"),
            member,
            count,
            models,
            gang,
            preemptible=commons or rng.random() < 0.9,
            datasets=datasets,
        )
        # work: the run time on the reference's NU, for the whole job; speed: per second
        yield SimJob(job, t, run_s * ref_nu, speed)


@dataclass(frozen=True)
class _SiteData:
    """A member's dataset at one of its sites: what the site has, and its stacks by NU there."""

    dataset: DatasetId
    nodes: dict[ModelId, int]
    names: list[str]
    cum: list[float]


def _site_data(
    alliance: Alliance, stacks: dict[str, list[ModelId]], nu: dict[ModelId, float]
) -> dict[MemberId, list[_SiteData]]:
    """Each member's datasets (one at each of its sites) with what each site has: nodes per
    model, and the stacks by their NU there (a job on the data runs on that hardware)."""
    catalog = alliance.catalog
    nodes_at: dict[SiteId, dict[ModelId, int]] = {}
    for node in alliance.nodes.values():
        at = nodes_at.setdefault(node.site, {})
        at[node.model] = at.get(node.model, 0) + 1
    data_of: dict[MemberId, list[_SiteData]] = {}
    for d in sorted(alliance.datasets.values(), key=lambda d: d.id):
        (site,) = d.resident_sites
        at = nodes_at.get(site, {})
        names = sorted({catalog.get(m).stack for m in at})
        there = [sum(n * PER_NODE * nu[m] for m, n in at.items() if m in stacks[s]) for s in names]
        if names:
            data_of.setdefault(d.owner, []).append(
                _SiteData(d.id, at, names, list(itertools.accumulate(there)))
            )
    return data_of


def mean_hold_nu_s(cal: Calibration, ref_nu: float) -> float:
    """The NU-seconds a generated job holds, on average: half the jobs from each trace; a job
    holds its devices (a gang in whole nodes) for its run time on the model it runs on, which
    is its reference run time x the reference's NU / (the model's NU x its speed factor x its
    porting efficiency there). On its fastest model (where a job goes first: for a portable
    job a CUDA chip, efficiency 1) that is devices x run time x the reference's NU / factor,
    and E[1/factor] for a factor uniform in [a, b] is ln(b/a)/(b - a)."""
    per_source = [
        sum(_devices(n) * t for n, t in pairs) / len(pairs) for pairs in (cal.philly, cal.alibaba)
    ]
    lo, hi = FACTOR
    return sum(per_source) / len(per_source) * ref_nu * math.log(hi / lo) / (hi - lo)


def _devices(size: int) -> int:
    """A job of ``size`` devices as generated: over a node, a gang of whole nodes."""
    return math.ceil(size / PER_NODE) * PER_NODE if size > PER_NODE else size


def national_network(spec: NetworkSpec, traces: Path) -> tuple[Alliance, Iterator[SimJob]]:
    cal = load_calibration(traces)
    alliance = build_alliance(spec, cal)
    return alliance, generate_jobs(alliance, spec, cal)
