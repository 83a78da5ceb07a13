"""The model, its data and its training, in numpy alone: a byte-level neural language model in
the manner of Bengio et al. (2003). It reads the previous ``CONTEXT`` bytes of UTF-8 text (a
Chinese character is three), embeds each, and predicts the next byte through one tanh layer.
Working on bytes, the participants need no shared vocabulary: every corpus maps to the same
256 symbols.

Loss is cross-entropy in nats per byte; perplexity is its exponential.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

CONTEXT = 8
EMBED = 24
HIDDEN = 192
VOCAB = 256
HELD_OUT = 0.1  # the last tenth of each corpus is never trained on
ANSI = re.compile(rb"\x1b\[[0-9;]*m")
NAMES = ("embed", "w1", "b1", "w2", "b2")

Params = list[np.ndarray]


def load(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A corpus as bytes (a file, or a directory's files in name order, as suanli hands a
    dataset), split into its training part and its held-out last tenth."""
    where = Path(path)
    files = sorted(p for p in where.rglob("*") if p.is_file()) if where.is_dir() else [where]
    raw = ANSI.sub(b"", b"".join(f.read_bytes() for f in files))
    data = np.frombuffer(raw, dtype=np.uint8)
    cut = int(len(data) * (1 - HELD_OUT))
    return data[:cut], data[cut:]


def init(seed: int) -> Params:
    rng = np.random.default_rng(seed)
    return [
        rng.normal(0, 0.1, (VOCAB, EMBED)).astype(np.float32),
        (rng.normal(0, 1, (CONTEXT * EMBED, HIDDEN)) / np.sqrt(CONTEXT * EMBED)).astype(np.float32),
        np.zeros(HIDDEN, np.float32),
        (rng.normal(0, 1, (HIDDEN, VOCAB)) / np.sqrt(HIDDEN)).astype(np.float32),
        np.zeros(VOCAB, np.float32),
    ]


def _windows(data: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = starts[:, None] + np.arange(CONTEXT)[None, :]
    return data[idx], data[starts + CONTEXT]


def _forward(params: Params, ctx: np.ndarray, target: np.ndarray) -> tuple[float, tuple]:
    embed, w1, b1, w2, b2 = params
    x = embed[ctx].reshape(len(ctx), -1)
    h = np.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    loss = float(-np.log(p[np.arange(len(target)), target] + 1e-12).mean())
    return loss, (x, h, p)


def _backward(params: Params, ctx: np.ndarray, target: np.ndarray, cache: tuple) -> Params:
    embed, w1, _, w2, _ = params
    x, h, p = cache
    n = len(target)
    dlogits = p.copy()
    dlogits[np.arange(n), target] -= 1
    dlogits /= n
    dw2, db2 = h.T @ dlogits, dlogits.sum(axis=0)
    dpre = (dlogits @ w2.T) * (1 - h * h)
    dw1, db1 = x.T @ dpre, dpre.sum(axis=0)
    dx = (dpre @ w1.T).reshape(n, CONTEXT, EMBED)
    dembed = np.zeros_like(embed)
    np.add.at(dembed, ctx, dx)
    return [dembed, dw1, db1, dw2, db2]


class Adam:
    """Adam's moments and step count. A participant keeps its own across rounds (they are
    part of its local training, never sent): each round starts from the new global weights
    with the optimizer as the participant left it."""

    def __init__(self, params: Params) -> None:
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def arrays(self) -> list[np.ndarray]:
        """The moments, first then second, each in the parameters' order."""
        return [*self.m, *self.v]

    @classmethod
    def restore(cls, params: Params, arrays: list[np.ndarray], t: int) -> Adam:
        adam = cls(params)
        n = len(params)
        adam.m, adam.v, adam.t = list(arrays[:n]), list(arrays[n:]), t
        return adam


def train(
    params: Params,
    data: np.ndarray,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    adam: Adam | None = None,
) -> tuple[Params, float]:
    """``steps`` of Adam on random windows of ``data``; the new parameters and the mean loss.
    ``adam`` (updated in place) carries the optimizer over from an earlier call; without it
    the moments start afresh."""
    rng = np.random.default_rng(seed)
    params = [p.copy() for p in params]
    opt = adam if adam is not None else Adam(params)
    losses = []
    for _ in range(steps):
        opt.t += 1
        t = opt.t
        starts = rng.integers(0, len(data) - CONTEXT - 1, batch)
        ctx, target = _windows(data, starts)
        loss, cache = _forward(params, ctx, target)
        losses.append(loss)
        for i, g in enumerate(_backward(params, ctx, target, cache)):
            opt.m[i] = 0.9 * opt.m[i] + 0.1 * g
            opt.v[i] = 0.999 * opt.v[i] + 0.001 * g * g
            mhat, vhat = opt.m[i] / (1 - 0.9**t), opt.v[i] / (1 - 0.999**t)
            params[i] -= (lr * mhat / (np.sqrt(vhat) + 1e-8)).astype(np.float32)
    return params, float(np.mean(losses))


def evaluate(params: Params, data: np.ndarray, limit: int = 20_000) -> float:
    """Mean loss in nats per byte over (at most ``limit``, evenly spread) windows of ``data``."""
    count = len(data) - CONTEXT
    starts = np.linspace(0, count - 1, min(count, limit)).astype(np.int64)
    losses = []
    for chunk in np.array_split(starts, max(1, len(starts) // 4096)):
        ctx, target = _windows(data, chunk)
        losses.append(_forward(params, ctx, target)[0] * len(chunk))
    return float(sum(losses) / len(starts))
