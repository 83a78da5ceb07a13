"""The national network benchmark: how the simulator's time and memory grow with the trace.

The network is ``suanli.sim.network``'s (100 members, 200,000 accelerators over 22 models,
Chinese chips the majority, jobs and rhythm from the public traces); the policy ``alliance``
(looking for upgrades once per grace period), one pass per 60 simulated seconds at most (a
controller reconciling every minute), 5 minute grace. Each size runs in a fresh process
(peak memory is the process's), on one core, with jobs streamed (never all in memory).

    uv run python benchmarks/bench_network.py [--jobs 10000,100000,1000000] \
        [--out results.jsonl] [--plot growth.svg] [--progress-hours 24]

Prints one JSON line per size (and appends it to ``--out``); ``--plot`` draws every line of
``--out`` as wall time and peak memory against jobs on log-log axes.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRACES = REPO / "data" / "traces"


def run_one(
    jobs: int, seed: int, load: float, policy: str, progress_h: float = 0.0
) -> dict[str, object]:
    from suanli.sched.policy import get_policy
    from suanli.sim.network import NetworkSpec, national_network
    from suanli.sim.simulator import SimParams, Simulation

    t0 = time.perf_counter()
    spec = NetworkSpec(jobs=jobs, seed=seed, load=load)
    alliance, stream = national_network(spec, TRACES)
    last = [0.0]

    step = progress_h * 3600.0
    mark = [step, t0]

    def watched():  # type: ignore[no-untyped-def]
        for job in stream:
            last[0] = job.arrival
            if step and job.arrival >= mark[0]:  # (arrivals drawn so far: where the run is)
                now = time.perf_counter()
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
                print(
                    f"{mark[0] / 3600:8.1f} h of arrivals: wall {now - t0:8.1f} s "
                    f"(+{now - mark[1]:6.1f}), {len(sim.snap.pending):6d} waiting, "
                    f"{len(sim.snap.running):6d} running, peak RSS {rss:.2f} GB",
                    file=sys.stderr,
                    flush=True,
                )
                mark[0] += step
                mark[1] = now
            yield job

    params = SimParams(1800.0, grace_s=300.0, pass_interval_s=60.0)
    # alliance looks for upgrades once per grace period here, not in every pass (a look
    # scans every running job: tens of thousands in this pool)
    opts = {"upgrade_every_s": 300.0} if policy == "alliance" else {}
    sim = Simulation(alliance, watched(), get_policy(policy, grace_s=300.0, **opts), params)
    res = sim.run()
    wall = time.perf_counter() - t0
    tally = res.tally
    assert tally is not None
    busy = sum(res.busy_device_s.values())
    devices = sum(n.devices for n in alliance.nodes.values())
    contributors = [m for m, e in res.entitlement_nu.items() if e > 0]
    return {
        "policy": policy,
        "jobs": jobs,
        "members": len(alliance.members),
        "accelerators": devices,
        "models": len({n.model for n in alliance.nodes.values()}),
        "wall_s": round(wall, 1),
        "scheduler_s": round(res.sched_s, 1),
        "passes": res.passes,
        "jobs_per_s": round(jobs / wall),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3),
        "arrivals_days": round(last[0] / 86400, 3),
        "simulated_days": round(res.end_time / 86400, 2),
        "finished": tally.jobs,
        "never_started": len(res.unfinished),
        "never_started_why": dict(sorted(res.unfinished.items())[:3]),
        "jct_mean_h": round(tally.jct_s / max(1, tally.jobs) / 3600, 3),
        "wait_mean_h": round(tally.wait_s / max(1, tally.jobs) / 3600, 4),
        "preemptions": tally.preemptions,
        # (busy device-hours over the whole run, the drain after the last arrival included)
        "device_hours": round(busy / 3600),
        "violation_h_total": round(sum(res.violation_s.values()) / 3600, 2),
        "members_violated": sum(1 for m in contributors if res.violation_s.get(m, 0) > 0),
    }


def plot(lines: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(lines, key=lambda r: int(r["jobs"]))  # type: ignore[call-overload]
    n = [int(r["jobs"]) for r in rows]  # type: ignore[call-overload]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.loglog(n, [float(r["wall_s"]) for r in rows], "o-", label="wall time (s)")  # type: ignore[arg-type]
    ax.loglog(n, [float(r["peak_rss_gb"]) * 1000 for r in rows], "s-", label="peak memory (MB)")  # type: ignore[arg-type]
    lo, hi = n[0], n[-1]
    base = float(rows[0]["wall_s"])  # type: ignore[arg-type]
    ax.loglog([lo, hi], [base, base * hi / lo], ":", color="grey", label="linear in jobs")
    # the targets for 10,000,000 jobs: 30 minutes, 8 GB
    ax.loglog([10_000_000], [1800.0], "*", color="C0", markersize=11, label="target: 30 min")
    ax.loglog([10_000_000], [8000.0], "*", color="C1", markersize=11, label="target: 8 GB")
    ax.set_xlabel("jobs")
    ax.set_title("suanli simulator, alliance, national network (one core)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description="national network benchmark")
    ap.add_argument("--jobs", default="10000,100000,1000000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--load", type=float, default=0.7, help="what the jobs hold / the pool's NU, over a week"
    )
    ap.add_argument("--policy", default="alliance")
    ap.add_argument("--out", type=Path, default=None, help="append each result line here")
    ap.add_argument("--plot", type=Path, default=None, help="draw --out's lines here (SVG/PNG)")
    ap.add_argument(
        "--progress-hours",
        type=float,
        default=0.0,
        help="print a line (stderr) per this many hours of arrivals: wall time, queue, memory",
    )
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:  # (the child process: one size)
        got = run_one(args.one, args.seed, args.load, args.policy, args.progress_hours)
        print(json.dumps(got), flush=True)
        return
    for n in (int(x) for x in args.jobs.split(",") if x):
        cmd = [sys.executable, __file__, "--one", str(n), "--seed", str(args.seed)]
        cmd += ["--load", str(args.load), "--policy", args.policy]
        cmd += ["--progress-hours", str(args.progress_hours)]
        # (the child's progress lines, if asked for, pass through on stderr)
        line = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        print(line, flush=True)
        if args.out:
            with args.out.open("a") as f:
                f.write(line + "\n")
    if args.plot:
        if not args.out:
            ap.error("--plot draws the lines of --out: give --out")
        rows = [json.loads(x) for x in args.out.read_text().splitlines() if x.strip()]
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
