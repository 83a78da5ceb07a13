"""The demo app on Flower's own simulation engine (``flwr.simulation.run_simulation``, Ray
backend), for bench_federated_overhead.py. Runs in a Flower environment with the
``simulation`` extra, never in suanli's:

    envs/flower/.venv/bin/python benchmarks/flower_simulation.py CONFIG_JSON OUT_DIR

The app is the shipped one, unchanged: a wrapper gives each simulated SuperNode the node config a
real one gets (``data-path``: its member's corpus, by partition) and the run config that
``flwr run`` would give (the app's defaults, then CONFIG_JSON).
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "examples" / "federated" / "charlm"
DATA = ROOT / "examples" / "federated" / "data"
CORPORA = ["tang300.txt", "song100.txt", "chinese.txt"]
sys.path.insert(0, str(APP))

from charlm import client_app, server_app  # noqa: E402
from flwr.app import Context, Message  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402


def main() -> None:
    overrides = json.loads(sys.argv[1])
    out = Path(sys.argv[2])
    defaults = tomllib.loads((APP / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    config = {**defaults["config"], **overrides, "output-dir": str(out)}

    def as_deployed(msg: Message, context: Context) -> Message:
        part = int(context.node_config["partition-id"])
        deployed = Context(
            run_id=context.run_id,
            node_id=context.node_id,
            node_config={**context.node_config, "data-path": str(DATA / CORPORA[part])},
            state=context.state,
            run_config={**context.run_config, **config},
        )
        return client_app.app(msg, deployed)

    clients = ClientApp()
    clients.train()(as_deployed)
    clients.evaluate()(as_deployed)
    servers = ServerApp()

    @servers.main()
    def _main(grid: Grid, context: Context) -> None:
        context.run_config.update(config)
        server_app.main(grid, context)

    began = time.monotonic()
    run_simulation(
        server_app=servers,
        client_app=clients,
        num_supernodes=len(CORPORA),
        backend_config={"client_resources": {"num_cpus": 0.5, "num_gpus": 0.0}},
    )
    (out / "wall.json").write_text(json.dumps({"seconds": time.monotonic() - began}))


if __name__ == "__main__":
    main()
