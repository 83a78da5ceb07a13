"""A small PyTorch training job that follows suanli's checkpoint convention.

- It checkpoints into ``$SUANLI_CHECKPOINT_DIR`` every ``--checkpoint-every`` seconds and, on
  SIGTERM (a preemption or a drain), once more before it exits 0.
- When it starts and finds a checkpoint there, it resumes from it: same weights, optimizer
  state, step and random state, so the loss curve goes on where it stopped, on the same or
  another chip type.
- Checkpoints are written to a temporary file and renamed, so a kill in the middle of a write
  leaves the previous checkpoint whole.

It runs on the CPU (a regression of a fixed random function by a small MLP on synthetic data
it makes itself), so any machine can run it; on a real accelerator it would move the model to
the devices in the stack's visible-devices variable.

    SUANLI_CHECKPOINT_DIR=./checkpoints python examples/train_torch.py --steps 2000
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

import torch
from torch import nn


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 32, generator=g)
    w = torch.randn(32, 1, generator=g)
    y = torch.sin(x @ w) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def save(path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "opt": opt.state_dict(),
            "step": step,
            "rng": torch.get_rng_state(),
        },
        tmp,
    )
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--checkpoint-every", type=float, default=5.0, help="seconds")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument(
        "--no-save-on-term",
        action="store_true",
        help="do not checkpoint on SIGTERM (as when a node dies: periodic only)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    ckpt_dir = Path(os.environ.get("SUANLI_CHECKPOINT_DIR", "checkpoints"))
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    ckpt = ckpt_dir / "train.pt"

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = make_data(8192)
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["rng"])
        step = state["step"]
        print(f"resumed from step {step} at {time.time():.3f}", flush=True)
    else:
        print(f"starting at {time.time():.3f}", flush=True)

    stopping = False

    def on_term(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    last_save = time.monotonic()
    loss = torch.tensor(0.0)
    while step < args.steps:
        idx = torch.randint(0, x.shape[0], (args.batch,))
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.4f} at {time.time():.3f}", flush=True)
        if stopping:
            if not args.no_save_on_term:
                save(ckpt, model, opt, step)
                print(f"SIGTERM: checkpointed step {step} at {time.time():.3f}", flush=True)
            else:
                print(f"SIGTERM: stopping at step {step} at {time.time():.3f}", flush=True)
            return 0
        if time.monotonic() - last_save >= args.checkpoint_every:
            save(ckpt, model, opt, step)
            print(f"checkpointed step {step}", flush=True)
            last_save = time.monotonic()
    print(f"done: step {step} loss {loss.item():.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
