"""Scheduler benchmark: admissions per second and the cost of one decision vs queue length.

A synthetic pool of 20 members (16 contributors, 4 commons), 2,000 nodes and 16,000
accelerators over 13 models, with 10,000, 100,000 and 1,000,000 pending jobs. For each policy
and queue size it times two passes of the pure ``schedule()``:

- ``fill``: the pool is empty and the pass fills it (admissions per second);
- ``steady``: the pool is full, 2% of running jobs have just finished, and the pass refills the
  freed devices (what a live controller does after completions).

The cost per decision is pass time / decisions. Its growth from the smallest to the largest
queue is the ratio that must stay ≤ 2 (measured in the same run). Snapshot construction (the
caller's incremental state) is timed apart.

    uv run python benchmarks/bench_sched.py [--sizes 10000,100000,1000000] [--policies ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from dataclasses import dataclass

from suanli.catalog.accelerator import load_catalog
from suanli.model.ids import JobId, MemberId, ModelId, NodeId, SiteId
from suanli.model.job import Gang, JobSpec
from suanli.model.member import Member, MemberKind, Tier
from suanli.model.node import Node
from suanli.model.share import Share
from suanli.sched.decision import Admit
from suanli.sched.policy import get_policy
from suanli.sched.pool import Pool
from suanli.sched.schedule import schedule
from suanli.sched.snapshot import Snapshot

MODELS = [
    "H800-80GB",
    "H100-80GB",
    "A800-80GB",
    "A100-80GB",
    "H20",
    "L40S",
    "RTX4090",
    "Ascend910B",
    "Ascend910C",
    "MLU370-X8",
    "DCU-K100-AI",
    "MTT-S4000",
    "BI-V150",
]
STACK_SETS = {
    "cuda": ["H800-80GB", "H100-80GB", "A800-80GB", "A100-80GB", "H20", "L40S", "RTX4090"],
    "npu": ["Ascend910B", "Ascend910C"],
}
N_NODES, PER_NODE, N_CONTRIB, N_COMMONS = 2000, 8, 16, 4


@dataclass
class Pool20:
    pool: Pool
    members: dict[MemberId, Member]
    shares: dict[tuple[MemberId, ModelId], Share]
    entitlement: dict[MemberId, float]


def make_pool(rng: random.Random) -> Pool20:
    cat = load_catalog()
    members = {}
    for i in range(N_CONTRIB + N_COMMONS):
        mid = MemberId(f"m{i:02d}")
        tier = Tier.CONTRIBUTOR if i < N_CONTRIB else Tier.COMMONS
        members[mid] = Member(mid, mid, MemberKind.ENTERPRISE, tier)
    nodes, owner = [], {}
    for s in range(N_CONTRIB):
        owner[SiteId(f"site{s:02d}")] = MemberId(f"m{s:02d}")
    for k in range(N_NODES):
        site = SiteId(f"site{k % N_CONTRIB:02d}")
        model = ModelId(MODELS[k % len(MODELS)])
        topo = ((0, 1, 2, 3), (4, 5, 6, 7)) if model == "Ascend910B" else ()
        nodes.append(Node(NodeId(f"n{k:05d}"), site, model, PER_NODE, 128, 1024, topo))
    pool = Pool(
        nodes,
        owner,
        {n.id: cat.get(n.model).nu_per_device or 0.1 for n in nodes},
        {m.id: m.alloc_unit for m in cat},
    )
    contributed: dict[tuple[MemberId, ModelId], int] = {}
    for n in pool.nodes:
        contributed[(n.owner, n.model)] = contributed.get((n.owner, n.model), 0) + n.devices
    shares = {k: Share(k[0], k[1], v) for k, v in contributed.items()}
    ent = dict.fromkeys(members, 0.0)
    for (m, f), v in contributed.items():
        ent[m] += v * pool.model_nu(f)
    return Pool20(pool, members, shares, ent)


def draw_shape(
    rng: random.Random, singles: list[frozenset[ModelId]], stacks: list[frozenset[ModelId]]
) -> tuple[frozenset[ModelId], Gang]:
    """Acceptable models (half one model, 30 % a stack, 20 % three models) and a gang shape
    (95 % one node of 1 to 8 devices, 5 % two or four whole nodes)."""
    r = rng.random()
    models = (
        rng.choice(singles)
        if r < 0.5
        else rng.choice(stacks)
        if r < 0.8
        else frozenset(ModelId(m) for m in rng.sample(MODELS, 3))
    )
    if rng.random() < 0.05:
        gang = Gang(rng.choice([2, 4]), 8)
    else:
        gang = Gang(1, rng.choice([1, 1, 2, 2, 4, 8]))
    if "Ascend910C" in models and gang.per_node % 2:
        models = frozenset(models - {ModelId("Ascend910C")}) or frozenset({ModelId("Ascend910B")})
    return models, gang


def make_jobs(rng: random.Random, n: int, members: list[MemberId]) -> list[JobSpec]:
    single = [frozenset({ModelId(m)}) for m in MODELS]
    stacks = [frozenset(ModelId(m) for m in v) for v in STACK_SETS.values()]
    out = []
    for i in range(n):
        models, gang = draw_shape(rng, single, stacks)
        out.append(
            JobSpec(
                JobId(f"j{i}"),
                rng.choice(members),
                gang.devices,
                models,
                gang,
                preemptible=rng.random() < 0.9,
            )
        )
    return out


def build(p: Pool20, jobs: list[JobSpec]) -> Snapshot:
    snap = Snapshot(p.pool, p.members, p.shares, p.entitlement)
    for i, j in enumerate(jobs):
        snap.submit(j, submitted_at=float(i))
    return snap


def timed_pass(snap: Snapshot, policy: str) -> tuple[float, list[Admit], int]:
    pol = get_policy(policy)
    gc.collect()
    gc.disable()
    t0 = time.perf_counter()
    result = schedule(snap, pol)
    dt = time.perf_counter() - t0
    gc.enable()
    return dt, result.admits, len(result.decisions)


def run(sizes: list[int], policies: list[str], seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    p = make_pool(rng)
    all_jobs = make_jobs(rng, max(sizes), list(p.members))
    rows: list[dict[str, object]] = []
    for n in sizes:
        t0 = time.perf_counter()
        base = build(p, all_jobs[:n])
        build_s = time.perf_counter() - t0
        for policy in policies:
            fill_s, admits, decisions = timed_pass(base, policy)
            # steady state: apply the fill, finish 2% of running jobs, pass again
            snap = build(p, all_jobs[:n]) if policy != policies[0] else base
            for a in admits:
                snap.start(a.job, a.placement)
            done = sorted(snap.running)[::50]
            for j in done:
                snap.finish(j)
            steady_s, steady_admits, steady_dec = timed_pass(snap, policy)
            rows.append(
                {
                    "policy": policy,
                    "pending": n,
                    "snapshot_build_s": round(build_s, 3),
                    "fill_pass_s": round(fill_s, 4),
                    "fill_admissions": len(admits),
                    "admissions_per_s": round(len(admits) / fill_s),
                    "fill_us_per_decision": round(1e6 * fill_s / max(decisions, 1), 2),
                    "steady_pass_s": round(steady_s, 4),
                    "steady_admissions": len(steady_admits),
                    "steady_us_per_decision": round(1e6 * steady_s / max(steady_dec, 1), 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            if policy == policies[0]:
                base = build(p, all_jobs[:n])
        del base
        gc.collect()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--policies", default="fifo,fair,gavel,alliance")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    policies = args.policies.split(",")
    rows = run(sizes, policies, args.seed)
    print()
    print(
        f"{'policy':10} {'pending':>9} {'admits/s':>10} {'fill us/dec':>12} "
        f"{'steady us/dec':>14} {'fill s':>8} {'steady s':>9}"
    )
    for r in rows:
        print(
            f"{r['policy']:10} {r['pending']:>9} {r['admissions_per_s']:>10} "
            f"{r['fill_us_per_decision']:>12} {r['steady_us_per_decision']:>14} "
            f"{r['fill_pass_s']:>8} {r['steady_pass_s']:>9}"
        )
    print()
    for policy in policies:
        mine = [r for r in rows if r["policy"] == policy]
        if len(mine) >= 2:
            lo, hi = mine[0], mine[-1]
            for k in ("fill_us_per_decision", "steady_us_per_decision"):
                ratio = float(hi[k]) / max(float(lo[k]), 1e-9)  # type: ignore[arg-type]
                print(
                    f"{policy}: {k} grows {ratio:.2f}x from {lo['pending']} to "
                    f"{hi['pending']} pending"
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
