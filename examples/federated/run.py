"""Three members train one language model together without moving their data: each holds one
of the shipped corpora (Tang poems, Song ci, modern prose) on its own SuperNode, and Flower's
FedAvg combines what they learn. Runs on this machine: one SuperLink and three SuperNodes from
Flower's environment (envs/flower), over TLS with authenticated SuperNodes.

    python3 -m uv run --frozen --no-dev python examples/federated/run.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from suanli.executors.flower import Federation, Participant

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--local-steps", type=int, default=60)
    ap.add_argument(
        "--run-dir", type=Path, help="where the run's files go (default: a new temporary directory)"
    )
    args = ap.parse_args()
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="suanli-federated-"))
    participants = [
        Participant("tang-lab", HERE / "data" / "tang300.txt"),
        Participant("song-univ", HERE / "data" / "song100.txt"),
        Participant("modern-corp", HERE / "data" / "chinese.txt"),
    ]
    print(f"starting a SuperLink and {len(participants)} SuperNodes in {run_dir}", flush=True)
    with Federation(run_dir, HERE / "charlm", participants) as fed:
        result = fed.run({"num-server-rounds": args.rounds, "local-steps": args.local_steps})
    if result.exit_code != 0:
        raise SystemExit(f"the run failed ({result.exit_code}): see {run_dir / 'run.log'}")
    heads = ("round", "train loss", "held-out loss", "perplexity/byte", "members")
    print(" ".join(f"{h:>{w}}" for h, w in zip(heads, (5, 11, 14, 16, 8), strict=True)))
    for r in result.rounds:
        train, evaluate = r["train"], r["evaluate"]
        loss = float(evaluate["eval_loss"])
        print(
            f"{r['round']:>5} {float(train['train_loss']):>11.3f} {loss:>14.3f} "
            f"{math.exp(loss):>16.2f} {int(evaluate['participants']):>8}"
        )
    print(f"the global model: {result.model}")


if __name__ == "__main__":
    main()
