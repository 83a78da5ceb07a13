"""The ClientApp: each SuperNode trains on the corpus at its node config's ``data-path`` (its
own member's data, which never leaves it) and evaluates on that corpus's held-out tenth."""

from __future__ import annotations

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from charlm import task

app = ClientApp()


def _data(context: Context) -> tuple:
    return task.load(str(context.node_config["data-path"]))


@app.train()
def train(msg: Message, context: Context) -> Message:
    params = msg.content["arrays"].to_numpy_ndarrays()
    config = msg.content["config"]
    train_part, _ = _data(context)
    server_round = int(config["server-round"])
    params, loss = task.train(
        params,
        train_part,
        steps=int(config["local-steps"]),
        batch=int(config["batch-size"]),
        lr=float(config["learning-rate"]),
        seed=int(config["seed"]) * 1000 + server_round,
    )
    metrics = {"train_loss": loss, "num-examples": len(train_part)}
    content = RecordDict({"arrays": ArrayRecord(params), "metrics": MetricRecord(metrics)})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    params = msg.content["arrays"].to_numpy_ndarrays()
    _, held_out = _data(context)
    metrics = {"eval_loss": task.evaluate(params, held_out), "num-examples": len(held_out)}
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
