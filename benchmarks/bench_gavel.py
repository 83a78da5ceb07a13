"""suanli against Gavel's own simulator, on the same jobs (docs/benchmarks.md, "Gavel").

For each msr seed: the jobs whose (type, scale) Gavel's throughputs file knows, run by suanli's
``gavel`` and ``alliance`` under Gavel's physics (``scenarios/gavel-compat.yaml``) and under
suanli's default physics (``scenarios/philly-gavel-jobs.yaml``), beside Gavel's own
``max_min_fairness_perf`` and ``fifo`` on the same jobs. Gavel is never part of this project:
give a checkout of its code (``--gavel DIR``, its ``scheduler/`` with the RPC stubs made, and
the Python that runs it, ``--gavel-python``) and this script writes Gavel's trace from the
same jobs and runs its simulator as its README says (``-c 300:300:300 --seed 0``); or give the
logs of such runs (``--gavel-log POLICY:SEED=FILE``). The floor is every job alone on its
fastest type: no scheduler's mean JCT can be below it.

    uv run python benchmarks/bench_gavel.py [--seeds 0,1,2] [--gavel DIR --gavel-python PY]

Prints one JSON line per run, then a Markdown table and the ratios.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from suanli.sched.policy import get_policy
from suanli.sim.metrics import summarize
from suanli.sim.scenario import load_scenario
from suanli.sim.simulator import Simulation

SCENARIOS = {"gavel": "gavel-compat", "default": "philly-gavel-jobs"}
GAVEL_POLICIES = ("max_min_fairness_perf", "fifo")
_JCT = re.compile(r"Average job completion time: ([\d.]+) seconds")
_WALL = re.compile(r"^wall_s ([\d.]+)", re.MULTILINE)


def suanli_run(physics: str, seed: int, policy: str, alone: bool) -> dict[str, Any]:
    sc = load_scenario(SCENARIOS[physics], None, seed)
    options = sc.policies.get(policy, {})
    t0 = time.perf_counter()
    res = Simulation(sc.alliance, sc.jobs, get_policy(policy, **options), sc.params).run()
    wall = time.perf_counter() - t0
    summary = summarize(res, sc.params, alone=alone, options=options)
    ratios = [
        m["jct_ratio_vs_alone"]
        for m in summary["members"].values()
        if m.get("tier") == "contributor" and m.get("jct_ratio_vs_alone") is not None
    ]
    floor = sum(j.work / max(j.speed.values()) for j in sc.jobs) / len(sc.jobs)
    return {
        "simulator": "suanli",
        "physics": physics,
        "seed": seed,
        "policy": policy,
        "jobs": len(sc.jobs),
        "jct_mean_h": summary["jct_mean_s"] / 3600,
        "floor_h": floor / 3600,
        "violations_h": summary["guarantee_violation_s"] / 3600,
        "worst_ratio_vs_alone": max(ratios) if ratios else None,
        "preemptions": summary["preemptions"],
        "wall_s": wall,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def gavel_trace(seed: int, path: Path) -> int:
    """Gavel's 10-field trace of the gavel-compat jobs, in arrival order (ties: file, line)."""
    sc = load_scenario(SCENARIOS["gavel"], None, seed)
    jobs = sorted(enumerate(sc.jobs), key=lambda x: (x[1].arrival, x[0]))
    with path.open("w") as f:
        for _, j in jobs:
            fields = [j.info["type"], "cmd", "wd", "-n", "1", str(int(j.work)), j.info["scale"]]
            f.write("\t".join([*fields, "1", "-1.000000", f"{j.arrival:f}"]) + "\n")
    return len(jobs)


def gavel_run(gavel: Path, python: str, seed: int, policy: str, work: Path) -> dict[str, Any]:
    trace = work / f"seed{seed}.trace"
    if not trace.exists():
        gavel_trace(seed, trace)
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            python,
            "scripts/drivers/simulate_scheduler_with_trace.py",
            "-t",
            str(trace),
            "-p",
            policy,
            "--throughputs_file",
            "simulation_throughputs.json",
            "-c",
            "300:300:300",
            "--seed",
            "0",
        ],
        cwd=gavel / "scheduler",
        capture_output=True,
        text=True,
        check=True,
    )
    return gavel_result(seed, policy, done.stdout, time.perf_counter() - t0)


def gavel_result(seed: int, policy: str, log: str, wall: float | None) -> dict[str, Any]:
    jct = _JCT.search(log)
    if jct is None:
        raise SystemExit(f"Gavel's {policy} on seed {seed}: no average JCT in its output")
    if wall is None:
        found = _WALL.search(log)
        wall = float(found.group(1)) if found else None
    return {
        "simulator": "gavel",
        "physics": "gavel",
        "seed": seed,
        "policy": policy,
        "jct_mean_h": float(jct.group(1)) / 3600,
        "wall_s": wall,
    }


def _num(row: dict[str, Any], key: str, digits: int = 2) -> str:
    v = row.get(key)
    return "" if v is None else f"{v:.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| seed | simulator | physics | policy | JCT mean h | floor h | violations h "
        "| worst vs alone | wall s |",
        "| ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        out.append(
            f"| {r['seed']} | {r['simulator']} | {r['physics']} | {r['policy']} | "
            f"{_num(r, 'jct_mean_h')} | {_num(r, 'floor_h')} | {_num(r, 'violations_h', 1)} | "
            f"{_num(r, 'worst_ratio_vs_alone')} | {_num(r, 'wall_s', 1)} |"
        )
    return "\n".join(out)


def ratios(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for seed in sorted({r["seed"] for r in rows}):
        g = {r["policy"]: r for r in rows if r["seed"] == seed and r["simulator"] == "gavel"}
        mmf = g.get("max_min_fairness_perf")
        if mmf is None:
            continue
        for r in rows:
            if r["seed"] != seed or r["simulator"] != "suanli":
                continue
            line = (
                f"seed {seed}, {r['physics']} physics, suanli {r['policy']}: "
                f"{r['jct_mean_h'] / mmf['jct_mean_h']:.3f} of Gavel's max_min_fairness_perf"
            )
            if mmf.get("wall_s") and r.get("wall_s"):
                line += f", {mmf['wall_s'] / r['wall_s']:.1f}x its speed"
            out.append(line)
        floor = next((r["floor_h"] for r in rows if r["seed"] == seed and "floor_h" in r), None)
        if floor:
            out.append(
                f"seed {seed}: floor {floor:.2f} h = {floor / mmf['jct_mean_h']:.3f} of Gavel's "
                "max_min_fairness_perf (no mean JCT can be lower)"
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--policies", default="gavel,alliance")
    ap.add_argument("--physics", default="gavel,default")
    ap.add_argument("--alone", action="store_true", help="also the alone baselines (slow)")
    ap.add_argument("--gavel", type=Path, help="a checkout of Gavel's code (run it)")
    ap.add_argument("--gavel-python", default=sys.executable)
    ap.add_argument(
        "--gavel-log",
        action="append",
        default=[],
        metavar="POLICY:SEED=FILE",
        help="the output of a run of Gavel's simulator (with a 'wall_s SECONDS' line)",
    )
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict[str, Any]] = []
    for item in args.gavel_log:
        key, _, file = item.partition("=")
        policy, _, seed = key.partition(":")
        rows.append(gavel_result(int(seed), policy, Path(file).read_text(errors="replace"), None))
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            if args.gavel is not None:
                for policy in GAVEL_POLICIES:
                    rows.append(gavel_run(args.gavel, args.gavel_python, seed, policy, Path(tmp)))
                    print(json.dumps(rows[-1]), flush=True)
            for physics in args.physics.split(","):
                for policy in args.policies.split(","):
                    alone = args.alone and policy == "alliance"
                    rows.append(suanli_run(physics, seed, policy, alone))
                    print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda r: (r["seed"], r["simulator"] != "gavel", r["physics"], r["policy"]))
    print()
    print(table(rows))
    print()
    for line in ratios(rows):
        print(line)


if __name__ == "__main__":
    main()
