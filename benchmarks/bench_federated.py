"""Federated against alone and central, on the same work: the demo's byte-level language model
(examples/federated/charlm) trained

- federated: on Flower's deployment engine (a SuperLink and three SuperNodes, TLS, FedAvg), each
  member's corpus on its own SuperNode, ``--rounds`` rounds of ``--local-steps`` steps each
  (each participant keeps its own Adam across rounds);
- alone: each member on its own corpus, the same rounds of the same steps (its budget in the
  federation);
- central: one model on the three corpora pooled, the three members' steps together
  (the federation's whole budget, with the data in one place);

all from the same initial weights, with the same optimizer (one Adam through all its steps) and
batch, then evaluated on one held-out set drawn from all three corpora (each corpus's last
tenth, never trained on). The central model is trained at each of ``--central-rates`` and the
best is reported (the federation's 0.003 was the best of 0.002-0.005 in one process).
Prints one JSON line per model and a table: loss in nats per byte and perplexity per byte.

    uv run python benchmarks/bench_federated.py [--rounds 15] [--local-steps 60]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "federated" / "charlm"
DATA = ROOT / "examples" / "federated" / "data"
sys.path.insert(0, str(APP))

from charlm import task  # noqa: E402

from suanli.executors.flower import Federation, Participant  # noqa: E402

CORPORA = {"tang-lab": "tang300.txt", "song-univ": "song100.txt", "modern-corp": "chinese.txt"}


def held_out_loss(params: task.Params, parts: dict[str, np.ndarray]) -> tuple[float, dict]:
    """Loss over the three held-out parts together (weighted by their bytes), and each's."""
    each = {m: task.evaluate(params, d) for m, d in parts.items()}
    sizes = {m: len(d) for m, d in parts.items()}
    total = sum(each[m] * sizes[m] for m in parts) / sum(sizes.values())
    return total, each


def train_rounds(
    data: np.ndarray, rounds: int, steps: int, batch: int, lr: float, seed: int
) -> task.Params:
    """The federation's schedule for one trainer: ``rounds`` calls of ``steps`` Adam steps,
    one optimizer throughout (as each participant keeps its own)."""
    params = task.init(seed)
    adam = task.Adam(params)
    for r in range(1, rounds + 1):
        params, _ = task.train(params, data, steps, batch, lr, seed * 1000 + r, adam)
    return params


def main() -> None:
    ap = argparse.ArgumentParser(description="federated vs alone vs central")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--local-steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--learning-rate", type=float, default=0.003)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--central-rates",
        default="0.001,0.0015,0.002,0.003",
        help="the central model's learning rates to try (the best is reported)",
    )
    args = ap.parse_args()
    loaded = {m: task.load(DATA / f) for m, f in CORPORA.items()}
    train_parts = {m: t for m, (t, _) in loaded.items()}
    held = {m: h for m, (_, h) in loaded.items()}
    config = {
        "num-server-rounds": args.rounds,
        "local-steps": args.local_steps,
        "batch-size": args.batch_size,
        "learning-rate": args.learning_rate,
        "seed": args.seed,
        "min-participants": len(CORPORA),
    }
    rows = []

    run_dir = Path(tempfile.mkdtemp(prefix="suanli-bench-federated-"))
    participants = [Participant(m, DATA / f) for m, f in CORPORA.items()]
    t0 = time.monotonic()
    with Federation(run_dir, APP, participants) as fed:
        started = time.monotonic() - t0
        t1 = time.monotonic()
        result = fed.run(config, timeout_s=3600)
        run_s = time.monotonic() - t1
    if result.exit_code != 0 or result.model is None:
        raise SystemExit(f"the federated run failed: see {run_dir / 'run.log'}")
    with np.load(result.model) as z:
        federated = [z[name] for name in task.NAMES]
    rows.append(("federated (Flower, 3 members)", federated, run_s))
    print(
        json.dumps(
            {
                "bench": "federated_wall",
                "start_s": round(started, 1),
                "run_s": round(run_s, 1),
                "rounds": args.rounds,
            }
        ),
        flush=True,
    )

    common = (args.batch_size, args.learning_rate, args.seed)
    for member, data in train_parts.items():
        t = time.monotonic()
        params = train_rounds(data, args.rounds, args.local_steps, *common)
        rows.append((f"{member} alone", params, time.monotonic() - t))
    pooled = np.concatenate(list(train_parts.values()))
    best: tuple[float, float, task.Params, float] | None = None
    for rate in (float(r) for r in args.central_rates.split(",")):
        t = time.monotonic()
        params = train_rounds(
            pooled, args.rounds, args.local_steps * len(CORPORA), args.batch_size, rate, args.seed
        )
        wall = time.monotonic() - t
        loss, _ = held_out_loss(params, held)
        print(json.dumps({"bench": "federated_central_rate", "rate": rate, "loss": round(loss, 4)}))
        if best is None or loss < best[0]:
            best = (loss, rate, params, wall)
    assert best is not None
    rows.append((f"central (pooled data, lr {best[1]:g})", best[2], best[3]))

    results = []
    for name, params, wall in rows:
        loss, each = held_out_loss(params, held)
        results.append((name, loss, each))
        print(
            json.dumps(
                {
                    "bench": "federated_quality",
                    "model": name,
                    "loss_nats_per_byte": round(loss, 4),
                    "perplexity_per_byte": round(math.exp(loss), 3),
                    "each": {m: round(v, 4) for m, v in each.items()},
                    "train_wall_s": round(wall, 1),
                }
            ),
            flush=True,
        )
    fed_loss = results[0][1]
    central_loss = results[-1][1]
    print(
        f"\n{'model':<32}{'loss nats/B':>12}{'perplexity/B':>14}  "
        + "  ".join(f"{m:>12}" for m in CORPORA)
    )
    for name, loss, each in results:
        cols = "  ".join(f"{each[m]:>12.3f}" for m in CORPORA)
        print(f"{name:<32}{loss:>12.3f}{math.exp(loss):>14.2f}  {cols}")
    alone_best = min(r[1] for r in results[1:-1])
    print(
        f"\nfederated perplexity / best alone: {math.exp(fed_loss - alone_best):.3f} "
        f"(below 1: better than every member alone)"
    )
    print(
        f"federated perplexity / central: {math.exp(fed_loss - central_loss):.3f} "
        f"(target: at most 1.10)"
    )


if __name__ == "__main__":
    main()
