"""The ServerApp: FedAvg (Flower's own strategy) over the participants' SuperNodes, weighted by
the bytes each trained on; at least ``min-participants`` of them in every round. At the end it
writes the global model (``model.npz``) and the per-round metrics (``metrics.json``: train and
evaluation loss, participants) to ``output-dir``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

from charlm import task

app = ServerApp()


def _counted(records: list[RecordDict], key: str) -> MetricRecord:
    """Flower's weighted average of the replies' metrics, plus how many replied."""
    merged = aggregate_metricrecords(records, key)
    merged["participants"] = len(records)
    return merged


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    least = int(cfg["min-participants"])
    strategy = FedAvg(
        min_train_nodes=least,
        min_evaluate_nodes=least,
        min_available_nodes=least,
        train_metrics_aggr_fn=_counted,
        evaluate_metrics_aggr_fn=_counted,
    )
    train_config = ConfigRecord(
        {k: cfg[k] for k in ("local-steps", "batch-size", "learning-rate", "seed")}
    )
    result = strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(task.init(int(cfg["seed"]))),
        num_rounds=int(cfg["num-server-rounds"]),
        train_config=train_config,
    )
    out = str(cfg["output-dir"])
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    arrays = result.arrays.to_numpy_ndarrays()
    np.savez(Path(out) / "model.npz", **dict(zip(task.NAMES, arrays, strict=True)))
    rounds = sorted(set(result.train_metrics_clientapp) | set(result.evaluate_metrics_clientapp))
    metrics = [
        {
            "round": r,
            "train": dict(result.train_metrics_clientapp.get(r, {})),
            "evaluate": dict(result.evaluate_metrics_clientapp.get(r, {})),
        }
        for r in rounds
    ]
    (Path(out) / "metrics.json").write_text(json.dumps(metrics, indent=1))
