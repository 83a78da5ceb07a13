"""Regenerate every figure of docs/benchmarks.md: each benchmark, one after the other, with the
arguments its section was measured with.

Each runs in a fresh process (one core, as the sections say), its output saved to
``OUT/NAME.txt``; ``OUT/summary.json`` records for each its command, exit status, wall time
and the machine's load average (one minute) before and after: ``busy`` when something else
used a core as it started (1 or more) or the machine was over-full at its end (above the
cores' count), as docs/benchmarks.md says of the figures measured so. A
benchmark that fails (Ray, Slurm, Chromium, Flower or PostgreSQL missing) is reported and the
others go on.

    uv run python benchmarks/run_all.py [--only sim,network] [--out DIR]
        [--gavel DIR --gavel-python PY]   # Gavel's own simulator beside suanli's

``--list`` prints the benchmarks and their commands. The whole set takes hours (the
1,000,000- and 10,000,000-job simulations, Gavel's own simulator and suanli's ``gavel`` on
three seeds, the federated training); ``--only`` picks sections.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
SUANLI = [PY, "-m", "suanli"]


def _bench(name: str, *args: str) -> list[str]:
    return [PY, str(HERE / f"{name}.py"), *args]


def plan(gavel: Path | None, gavel_python: str) -> dict[str, list[list[str]]]:
    """Section name -> the commands whose output its figures come from."""
    gavel_args = ["--gavel", str(gavel), "--gavel-python", gavel_python] if gavel else []
    return {
        "sched": [_bench("bench_sched")],
        "gavel": [_bench("bench_gavel", "--seeds", "0,1,2", *gavel_args)],
        "philly": [
            [*SUANLI, "sim", "compare", "--scenario", "alliance-philly", "--seed", str(s)]
            for s in (0, 1, 2)
        ],
        "network": [_bench("bench_network", "--jobs", str(n)) for n in (10_000, 30_000, 100_000)],
        # (about an hour on one core: 300,000, 1,000,000 and 10,000,000 jobs, a day's line each)
        "network-large": [
            _bench("bench_network", "--jobs", str(n), "--progress-hours", "24")
            for n in (300_000, 1_000_000, 10_000_000)
        ],
        "sim": [
            _bench(
                "bench_sim",
                "--jobs",
                "10000,100000,1000000",
                "--load",
                "0.5",
                "--pass-interval",
                "60",
            ),
            _bench("bench_sim", "--jobs", "10000,100000", "--load", "0.7", "--pass-interval", "60"),
        ],
        "alibaba": [[*SUANLI, "sim", "compare", "--scenario", "alibaba-2023"]],
        "service": [_bench("bench_service")],
        "cli": [_bench("bench_cli")],
        "ray": [_bench("bench_ray")],
        "preempt": [_bench("bench_preempt")],
        "ledger": [_bench("bench_ledger")],
        "dashboard": [_bench("bench_dashboard")],
        "federated": [_bench("bench_federated")],
        "federated-overhead": [_bench("bench_federated_overhead")],
        "hub": [_bench("bench_hub")],
        "slurm": [_bench("bench_slurm")],
    }


def _load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated sections (see --list)")
    ap.add_argument("--out", type=Path, default=Path("benchmark-results"))
    ap.add_argument("--list", action="store_true", help="print the sections and their commands")
    ap.add_argument("--gavel", type=Path, help="a checkout of Gavel's code (bench_gavel.py)")
    ap.add_argument("--gavel-python", default=PY)
    args = ap.parse_args()
    sections = plan(args.gavel, args.gavel_python)
    chosen = list(sections) if not args.only else args.only.split(",")
    unknown = [s for s in chosen if s not in sections]
    if unknown:
        raise SystemExit(
            f"--only: unknown section(s) {', '.join(unknown)}; known: {', '.join(sections)}"
        )
    if args.list:
        for name in chosen:
            for cmd in sections[name]:
                print(f"{name}: {shlex.join(cmd)}")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    cores = os.cpu_count() or 1
    for name in chosen:
        for k, cmd in enumerate(sections[name]):
            label = name if len(sections[name]) == 1 else f"{name}-{k + 1}"
            before = _load()
            t0 = time.perf_counter()
            with (args.out / f"{label}.txt").open("w") as f:
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, check=False).returncode
            wall = time.perf_counter() - t0
            after = _load()
            row = {
                "section": label,
                "command": shlex.join(cmd),
                "rc": rc,
                "wall_s": round(wall, 1),
                "load_before": round(before, 2),
                "load_after": round(after, 2),
                "busy": before >= 1 or after > cores,
            }
            summary.append(row)
            print(json.dumps(row), flush=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    failed = [r["section"] for r in summary if r["rc"] != 0]
    if failed:
        print(f"failed: {', '.join(failed)} (their output is in {args.out})", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
