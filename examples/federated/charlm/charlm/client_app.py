"""The ClientApp: each SuperNode trains on the corpus at its node config's ``data-path`` (its
own member's data, which never leaves it) and evaluates on that corpus's held-out tenth.

It speaks both of Flower's message formats: the Message API's (``arrays``, ``config``), and,
when the run asks for secure aggregation, the one Flower's SecAgg+ workflow uses
(``fitins.*``, ``evaluateins.*``), under Flower's ``secaggplus_mod``. Local differential
privacy (``dp-side = "client"``) clips each update here with Flower's ``fixedclipping_mod``.

Each participant keeps its Adam optimizer (moments and step) in its node state for the run,
across rounds: only the weights travel.
"""

from __future__ import annotations

import time

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.client import mod as legacy_mods
from flwr.clientapp import ClientApp
from flwr.clientapp import mod as mods
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import (
    Code,
    EvaluateRes,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common import recorddict_compat as compat

from charlm import task

OK = Status(Code.OK, "")


def _secure(context: Context) -> bool:
    return int(context.run_config.get("secagg-num-shares", 0)) > 0


def _clipped(context: Context) -> bool:
    cfg = context.run_config
    return str(cfg.get("dp-side", "")) == "client" and float(cfg.get("dp-clipping-norm", 0)) > 0


def privacy(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's mods, as the run asks: SecAgg+ outermost, update clipping innermost."""
    if _secure(context):
        inner: ClientAppCallable = call_next
        if _clipped(context):

            def inner(m: Message, c: Context) -> Message:
                return legacy_mods.fixedclipping_mod(m, c, call_next)

        return legacy_mods.secaggplus_mod(msg, context, inner)
    if _clipped(context):
        return mods.fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


app = ClientApp(mods=[privacy])


def _data(context: Context) -> tuple:
    return task.load(str(context.node_config["data-path"]))


def _optimizer(params: list, context: Context) -> task.Adam:
    """This participant's Adam as its last round left it (kept in the node's state for the
    run: it never leaves the participant), or a fresh one in its first round."""
    state = context.state
    if "adam" not in state.array_records:
        return task.Adam(params)
    t = int(state.config_records["adam-step"]["t"])
    return task.Adam.restore(params, state.array_records["adam"].to_numpy_ndarrays(), t)


def _train(params: list, config: dict, context: Context) -> tuple[list, dict]:
    train_part, _ = _data(context)
    server_round = int(config["server-round"])
    began = time.monotonic()
    adam = _optimizer(params, context)
    params, loss = task.train(
        params,
        train_part,
        steps=int(config["local-steps"]),
        batch=int(config["batch-size"]),
        lr=float(config["learning-rate"]),
        seed=int(config["seed"]) * 1000 + server_round,
        adam=adam,
    )
    context.state.array_records["adam"] = ArrayRecord(adam.arrays())
    context.state.config_records["adam-step"] = ConfigRecord({"t": adam.t})
    seconds = time.monotonic() - began
    return params, {"train_loss": loss, "train_seconds": seconds, "num-examples": len(train_part)}


@app.train()
def train(msg: Message, context: Context) -> Message:
    if "fitins.parameters" in msg.content.array_records:  # SecAgg+ (Flower's legacy format)
        ins = compat.recorddict_to_fitins(msg.content, keep_input=True)
        params, metrics = _train(parameters_to_ndarrays(ins.parameters), ins.config, context)
        n = int(metrics.pop("num-examples"))
        res = FitRes(OK, ndarrays_to_parameters(params), n, metrics)
        return Message(content=compat.fitres_to_recorddict(res, keep_input=True), reply_to=msg)
    params = msg.content["arrays"].to_numpy_ndarrays()
    params, metrics = _train(params, dict(msg.content["config"]), context)
    content = RecordDict({"arrays": ArrayRecord(params), "metrics": MetricRecord(metrics)})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    _, held_out = _data(context)
    if "evaluateins.parameters" in msg.content.array_records:
        ins = compat.recorddict_to_evaluateins(msg.content, keep_input=True)
        loss = task.evaluate(parameters_to_ndarrays(ins.parameters), held_out)
        res = EvaluateRes(OK, loss, len(held_out), {"eval_loss": loss})
        return Message(content=compat.evaluateres_to_recorddict(res), reply_to=msg)
    params = msg.content["arrays"].to_numpy_ndarrays()
    metrics = {"eval_loss": task.evaluate(params, held_out), "num-examples": len(held_out)}
    return Message(content=RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)
