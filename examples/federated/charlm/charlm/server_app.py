"""The ServerApp: FedAvg (Flower's own strategy) over the participants' SuperNodes, weighted by
the bytes each trained on; at least ``min-participants`` of them in every round. A round
waits ``round-timeout`` seconds at most for the replies: a participant lost in the middle of
a round (its SuperNode killed after it took its message) is left out of that round, and the
round goes on with those that replied. At the end it
writes the global model (``model.npz``) and the per-round metrics (``metrics.json``: train and
evaluation loss, participants) to ``output-dir``.

Privacy, as the run config asks (suanli sets it from the job's ``secure_aggregation`` and
``differential_privacy``; 0 means off), always with Flower's own implementations:

- ``secagg-num-shares`` > 0: Flower's SecAgg+ workflow; the server sees only the sum of the
  participants' updates, never one of them.
- ``dp-clipping-norm`` > 0: Gaussian noise of ``dp-noise-multiplier`` x the norm on updates
  clipped to the norm, by the server (``dp-side = "server"``, central DP) or with clipping on
  each participant (``"client"``, the only side that works together with SecAgg+).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict
from flwr.common import Metrics, ndarrays_to_parameters
from flwr.server import LegacyContext, ServerConfig
from flwr.server import strategy as legacy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp import strategy as strategies
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from charlm import task

app = ServerApp()
TRAIN_KEYS = ("local-steps", "batch-size", "learning-rate", "seed")


def _counted(records: list[RecordDict], key: str) -> MetricRecord:
    """Flower's weighted average of the replies' metrics, plus how many replied."""
    merged = aggregate_metricrecords(records, key)
    merged["participants"] = len(records)
    return merged


class _Progress:
    """Each round's aggregated metrics, appended as one JSON line to ``progress.jsonl`` in the
    output directory as soon as Flower has them (suanli shows them while the run goes on).
    Flower aggregates the training replies, then the evaluation replies, once per round."""

    def __init__(self, out: str) -> None:
        self.path = Path(out) / "progress.jsonl" if out else None
        self.rounds = {"train": 0, "evaluate": 0}

    def note(self, part: str, metrics: dict[str, Any]) -> None:
        self.rounds[part] += 1
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"round": self.rounds[part], part: {k: float(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def modern(self, part: str) -> Any:
        def aggregate(records: list[RecordDict], key: str) -> MetricRecord:
            merged = _counted(records, key)
            self.note(part, dict(merged))
            return merged

        return aggregate

    def legacy(self, part: str) -> Any:
        def aggregate(replies: list[tuple[int, Metrics]]) -> Metrics:
            merged = _averaged(replies)
            self.note(part, dict(merged))
            return merged

        return aggregate


class _Clock:
    """When each round ended (Flower calls a strategy's evaluation hook before round 1 and
    after each round), so that each round's wall time goes into the metrics."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def tick(self, *_: object) -> None:
        self.ends.append(time.monotonic())

    def seconds(self, server_round: int) -> float | None:
        if server_round < len(self.ends):
            return round(self.ends[server_round] - self.ends[server_round - 1], 3)
        return None


def _write(out: str, arrays: list[np.ndarray], rounds: list[dict[str, Any]], clock: _Clock) -> None:
    for entry in rounds:
        entry["seconds"] = clock.seconds(entry["round"])
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out) / "model.npz", **dict(zip(task.NAMES, arrays, strict=True)))
    (Path(out) / "metrics.json").write_text(json.dumps(rounds, indent=1))


def _dp(cfg: Any) -> tuple[float, float, str] | None:
    norm = float(cfg.get("dp-clipping-norm", 0))
    if norm <= 0:
        return None
    return float(cfg["dp-noise-multiplier"]), norm, str(cfg["dp-side"])


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    if int(cfg.get("secagg-num-shares", 0)) > 0:
        _secure(grid, context)
        return
    least = int(cfg["min-participants"])
    progress = _Progress(str(cfg["output-dir"]))
    strategy: strategies.Strategy = strategies.FedAvg(
        min_train_nodes=least,
        min_evaluate_nodes=least,
        min_available_nodes=least,
        train_metrics_aggr_fn=progress.modern("train"),
        evaluate_metrics_aggr_fn=progress.modern("evaluate"),
    )
    if (dp := _dp(cfg)) is not None:
        noise, norm, side = dp
        wrapper = (
            strategies.DifferentialPrivacyServerSideFixedClipping
            if side == "server"
            else strategies.DifferentialPrivacyClientSideFixedClipping
        )
        strategy = wrapper(strategy, noise, norm, least)
    clock = _Clock()
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(task.init(int(cfg["seed"]))),
        num_rounds=int(cfg["num-server-rounds"]),
        timeout=float(cfg["round-timeout"]),
        train_config=ConfigRecord({k: cfg[k] for k in TRAIN_KEYS}),
        evaluate_fn=lambda r, arrays: clock.tick(),
    )
    rounds = sorted(set(result.train_metrics_clientapp) | set(result.evaluate_metrics_clientapp))
    metrics = [
        {
            "round": r,
            "train": dict(result.train_metrics_clientapp.get(r, {})),
            "evaluate": dict(result.evaluate_metrics_clientapp.get(r, {})),
        }
        for r in rounds
    ]
    _write(str(cfg["output-dir"]), result.arrays.to_numpy_ndarrays(), metrics, clock)


def _averaged(replies: list[tuple[int, Metrics]]) -> Metrics:
    total = sum(n for n, _ in replies) or 1
    keys = {k for _, m in replies for k in m}
    out: Metrics = {k: sum(n * float(m.get(k, 0.0)) for n, m in replies) / total for k in keys}
    out["participants"] = len(replies)
    return out


def _secure(grid: Grid, context: Context) -> None:
    """The same training through Flower's SecAgg+ workflow (its legacy strategy API)."""
    cfg = context.run_config
    least = int(cfg["min-participants"])
    train = {k: cfg[k] for k in TRAIN_KEYS}
    clock = _Clock()
    progress = _Progress(str(cfg["output-dir"]))
    strategy: legacy.Strategy = legacy.FedAvg(
        evaluate_fn=lambda r, params, config: clock.tick(),
        fraction_fit=1.0,
        fraction_evaluate=1.0,
        min_fit_clients=least,
        min_evaluate_clients=least,
        min_available_clients=least,
        initial_parameters=ndarrays_to_parameters(task.init(int(cfg["seed"]))),
        on_fit_config_fn=lambda r: {**train, "server-round": r},
        fit_metrics_aggregation_fn=progress.legacy("train"),
        evaluate_metrics_aggregation_fn=progress.legacy("evaluate"),
    )
    if (dp := _dp(cfg)) is not None:
        noise, norm, _ = dp  # (client side: validation refuses central DP with SecAgg+)
        strategy = legacy.DifferentialPrivacyClientSideFixedClipping(strategy, noise, norm, least)
    rounds = int(cfg["num-server-rounds"])
    legacy_context = LegacyContext(
        context=context,
        config=ServerConfig(num_rounds=rounds, round_timeout=float(cfg["round-timeout"])),
        strategy=strategy,
    )
    workflow = DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            num_shares=int(cfg["secagg-num-shares"]),
            reconstruction_threshold=int(cfg["secagg-reconstruction-threshold"]),
            clipping_range=float(cfg["secagg-clipping-range"]),
            quantization_range=int(cfg["secagg-quantization-range"]),
        )
    )
    workflow(grid, legacy_context)
    history = legacy_context.history
    by_round: dict[int, dict[str, Any]] = {}
    for part, series in (
        ("train", history.metrics_distributed_fit),
        ("evaluate", history.metrics_distributed),
    ):
        for key, values in series.items():
            for r, value in values:
                entry = by_round.setdefault(r, {"round": r, "train": {}, "evaluate": {}})
                entry[part][key] = value
    arrays = legacy_context.state.array_records["parameters"].to_numpy_ndarrays()
    _write(str(cfg["output-dir"]), arrays, [by_round[r] for r in sorted(by_round)], clock)
