"""What suanli's way of running Flower costs per round, against Flower's own simulation engine
running the same app on the same data in one process (its Ray backend).

- deployment: ``suanli.executors.flower.Federation``, a SuperLink and three SuperNodes as
  separate processes, TLS under the run's own authority, SuperNode authentication, the app
  shipped by ``flwr run``;
- simulation: ``flwr.simulation.run_simulation`` (benchmarks/flower_simulation.py), three
  virtual SuperNodes as Ray actors, no network, no TLS.

The app (examples/federated/charlm) times each round between Flower's end-of-round hooks and
each participant's local training; a round's overhead is its wall time less the participants'
mean training time (they train at once, sharing the machine's cores in both engines). Runs
alternate (simulation, deployment, simulation, ...) so that load falls on both alike. Prints
one JSON line per run and a table of medians.

    python3 -m uv sync --frozen --project envs/flower --extra simulation   # Ray for Flower
    uv run python benchmarks/bench_federated_overhead.py [--rounds 6] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from suanli.executors.flower import Federation, Participant, flower_env

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "federated" / "charlm"
DATA = ROOT / "examples" / "federated" / "data"
MEMBERS = [("tang-lab", "tang300.txt"), ("song-univ", "song100.txt"), ("modern", "chinese.txt")]


def rounds_of(metrics: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per round after the first (which also warms up): wall seconds, and training seconds
    (the participants' mean, from Flower's weighted average of their reports)."""
    return [
        {"wall": float(r["seconds"]), "train": float(r["train"]["train_seconds"])}
        for r in metrics
        if r["round"] > 1 and r.get("seconds") is not None
    ]


def deployment(config: dict[str, Any], where: Path) -> tuple[float, list[dict[str, float]]]:
    began = time.monotonic()
    participants = [Participant(m, DATA / f) for m, f in MEMBERS]
    with Federation(where, APP, participants) as fed:
        started = time.monotonic() - began
        result = fed.run(config, timeout_s=3600)
    if result.exit_code != 0:
        raise SystemExit(f"the deployed run failed: see {where / 'run.log'}")
    return started, rounds_of(result.rounds)


def simulation(
    config: dict[str, Any], where: Path, python: Path
) -> tuple[float, list[dict[str, float]]]:
    where.mkdir(parents=True)
    script = ROOT / "benchmarks" / "flower_simulation.py"
    with (where / "log").open("wb") as log:
        done = subprocess.run(
            [str(python), str(script), json.dumps(config), str(where)],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=3600,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"the simulation failed: see {where / 'log'}")
    metrics = json.loads((where / "metrics.json").read_text())
    total = json.loads((where / "wall.json").read_text())["seconds"]
    per_round = rounds_of(metrics)
    return total - sum(float(r["seconds"] or 0) for r in metrics), per_round


def main() -> None:
    ap = argparse.ArgumentParser(description="Flower deployment (suanli) vs Flower simulation")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--local-steps", type=int, default=60)
    ap.add_argument(
        "--flower-python",
        type=Path,
        default=flower_env() / "bin" / "python",
        help="a Flower environment with the simulation extra (Ray)",
    )
    args = ap.parse_args()
    config = {
        "num-server-rounds": args.rounds,
        "min-participants": len(MEMBERS),
        "local-steps": args.local_steps,
    }
    found: dict[str, list[dict[str, float]]] = {"simulation": [], "deployment": []}
    setup: dict[str, list[float]] = {"simulation": [], "deployment": []}
    with tempfile.TemporaryDirectory(prefix="suanli-fl-bench-") as tmp:
        for k in range(args.repeats):
            for engine in ("simulation", "deployment"):
                where = Path(tmp) / f"{engine}-{k}"
                if engine == "simulation":
                    start, rounds = simulation(config, where, args.flower_python)
                else:
                    start, rounds = deployment(config, where)
                setup[engine].append(start)
                found[engine] += rounds
                line = {"engine": engine, "repeat": k, "setup_s": round(start, 2)}
                print(json.dumps({**line, "rounds": rounds}), flush=True)
    print(f"\n{'engine':<11} {'setup s':>8} {'round s':>8} {'train s':>8} {'overhead s':>10}")
    med: dict[str, float] = {}
    for engine, rounds in found.items():
        wall = statistics.median(r["wall"] for r in rounds)
        train = statistics.median(r["train"] for r in rounds)
        med[engine] = wall
        print(
            f"{engine:<11} {statistics.median(setup[engine]):>8.1f} {wall:>8.2f} "
            f"{train:>8.2f} {wall - train:>10.2f}"
        )
    ratio = med["deployment"] / med["simulation"]
    print(f"\ndeployment / simulation, seconds per round: {ratio:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
