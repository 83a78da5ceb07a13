"""Simulator benchmark: a synthetic trace of N jobs under a policy, wall time and peak memory.

The pool is the scheduler benchmark's (20 members, 2,000 nodes, 16,000 accelerators over 13
models). Jobs arrive as a Poisson process offering ``--load`` (default 0.7) of the pool's
capacity, counted on each job's fastest acceptable model (slower placements make the real load
higher); sizes 1 to 8 devices (5 % gangs of 2 or 4 whole nodes); durations log-normal (median
1 h); 90 % preemptible; each job runs at its model's NU-relative speed times a per-job factor in
[0.5, 1.5].

    uv run python benchmarks/bench_sim.py [--jobs 10000,100000,1000000] [--policy alliance]

Prints one JSON line per size: simulator wall time, scheduler time, passes, jobs per second and
peak resident memory (ru_maxrss of this process, so run sizes in increasing order).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sched import MODELS, STACK_SETS, draw_shape, make_pool
from suanli.catalog.accelerator import load_catalog
from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, ModelId, SiteId
from suanli.model.job import JobSpec
from suanli.model.node import Node
from suanli.model.site import Site
from suanli.sched.policy import get_policy
from suanli.sim.simulator import SimParams, Simulation
from suanli.sim.workload import SimJob


def alliance_from_bench_pool(seed: int) -> Alliance:
    p = make_pool(random.Random(seed))
    sites = {}
    nodes = {}
    for n in p.pool.nodes:
        sites.setdefault(n.site, Site(SiteId(n.site), n.owner, "dc"))
        nodes[n.id] = Node(
            n.id,
            n.site,
            n.model,
            n.devices,
            n.cpu,
            n.memory_gb,
            tuple(tuple(g for g in range(n.devices) if m >> g & 1) for m in n.group_masks)
            if len(n.group_masks) > 1
            else (),
            n.nu_per_device * 1000,
        )
    return Alliance("bench", load_catalog(), p.members, sites, nodes, {})


def make_trace(alliance: Alliance, n: int, seed: int, load: float = 0.7) -> list[SimJob]:
    rng = random.Random(seed)
    members = sorted(alliance.members)
    ent = alliance.entitlement_nu()
    nu = {
        m: alliance.nu_per_device(next(x for x in alliance.nodes.values() if x.model == m))
        for m in MODELS
    }
    singles = [frozenset({ModelId(m)}) for m in MODELS]
    stacks = [frozenset(ModelId(m) for m in v) for v in STACK_SETS.values()]
    devices = sum(x.devices for x in alliance.nodes.values())
    shapes = [draw_shape(rng, singles, stacks) for _ in range(n)]
    mean_size = sum(g.devices for _, g in shapes) / n
    mean_duration = math.exp(math.log(3600) + 0.5)  # of the log-normal below
    # device-seconds offered per second on the fastest acceptable model = load x devices
    rate = load * devices / (mean_size * mean_duration)
    t = 0.0
    out = []
    for i, (models, gang) in enumerate(shapes):
        t += rng.expovariate(rate)
        duration = rng.lognormvariate(math.log(3600), 1.0)
        factor = rng.uniform(0.5, 1.5)
        ref = max(nu[m] for m in models)
        speed = {m: factor * nu[m] / ref * gang.devices for m in models}
        member = rng.choice(members)
        # commons members (no guarantee) only submit preemptible jobs: others could never run
        commons = ent.get(member, 0.0) == 0.0
        spec = JobSpec(
            JobId(f"s{i}"),
            member,
            gang.devices,
            models,
            gang,
            preemptible=commons or rng.random() < 0.9,
        )
        out.append(SimJob(spec, t, duration * gang.devices * factor, speed))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="simulator benchmark")
    ap.add_argument("--jobs", default="10000,100000,1000000")
    ap.add_argument("--policy", default="alliance")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--load",
        type=float,
        default=0.7,
        help="offered device-seconds on each job's fastest model / pool capacity",
    )
    ap.add_argument(
        "--pass-interval",
        type=float,
        default=None,
        help="at most one scheduling pass per this many simulated seconds (default: per event)",
    )
    args = ap.parse_args()
    alliance = alliance_from_bench_pool(args.seed)
    for n in (int(x) for x in args.jobs.split(",")):
        t0 = time.perf_counter()
        jobs = make_trace(alliance, n, args.seed, args.load)
        gen_s = time.perf_counter() - t0
        params = SimParams(1800.0, pass_interval_s=args.pass_interval)
        sim = Simulation(alliance, jobs, get_policy(args.policy), params)
        res = sim.run()
        jcts = [r.finished_at - r.job.arrival for r in res.records.values() if r.finished_at]
        mean_jct = sum(jcts) / max(1, len(jcts))
        rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
        print(
            json.dumps(
                {
                    "policy": args.policy,
                    "jobs": n,
                    "pass_interval_s": args.pass_interval,
                    "jct_mean_h": round(mean_jct / 3600, 2),
                    "generate_s": round(gen_s, 1),
                    "wall_s": round(res.wall_s, 1),
                    "scheduler_s": round(res.sched_s, 1),
                    "passes": res.passes,
                    "jobs_per_s": round(n / res.wall_s),
                    "peak_rss_gb": round(rss_gb, 2),
                }
            ),
            flush=True,
        )
        del jobs, res, sim


if __name__ == "__main__":
    main()
