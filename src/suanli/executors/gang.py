"""The driver of a multi-node gang on Ray: ``python -m suanli.executors.gang``.

The Ray executor submits a gang as one Ray job whose entrypoint is this module. It reads the
plan from ``SUANLI_GANG`` (JSON: one entry per node, in rank order, with the node, its device
indexes, the Ray resource and the stack's device variable) and the job's run (its command,
variables, member, directories) from ``SUANLI_RUN``, then:

1. reserves every node's devices at once in a placement group, one bundle per node pinned to
   its node by the label selector ``suanli.io/node`` (all or nothing: a gang never half-starts);
2. starts one member actor per bundle, which runs the job's command on its node with the
   node's devices and the rendezvous variables (``SUANLI_NODE_RANK``, ``SUANLI_NUM_NODES``,
   ``SUANLI_MASTER_ADDR``, ``SUANLI_MASTER_PORT`` and the ``torch.distributed`` names
   ``NODE_RANK``, ``NNODES``, ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``: one
   process per node, which may start one worker per device itself, with ``torchrun`` say);
3. waits: when one member fails, stops the others and exits with its code; on SIGTERM (a
   preemption) passes SIGTERM to every member, waits for them to checkpoint and exit, and
   exits with the worst of their codes.

Each member keeps its command's output (stdout and stderr, line by line) and the driver
fetches it from the member actors a few times a second and writes it to its own output, each
line prefixed with the member's rank and node: the job's log holds every line of every node
exactly once, down to the last one before the members exit. (Ray's own forwarding of actors'
output to the driver is asynchronous, so a driver that exits loses the last lines, and on one
machine with several Ray nodes it repeats them once per node.)

Each member runs the command in its sandbox, as the job's member's user, with the job's own
environment only (:mod:`suanli.executors.sandbox`). The members' commands die with their actor
(``PR_SET_PDEATHSIG``), so a gang killed by Ray leaves nothing behind on any node.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

from suanli.executors.base import rendezvous_env
from suanli.executors.sandbox import RUN_VAR

PLAN_VAR = "SUANLI_GANG"
#: how long the placement group may take to be placed before the gang gives up
READY_TIMEOUT_S = float(os.environ.get("SUANLI_GANG_READY_TIMEOUT_S", "120"))
#: exit code when the gang could not be placed (the devices were not free after all)
EXIT_UNPLACED = 75
#: how often the driver fetches the members' output
POLL_S = 0.2
#: how long a member waits, once its command exited, for the rest of the output of the
#: processes it left behind holding its output
TAIL_S = 2.0


class Member:
    """Runs the job's command on one node of the gang (a Ray actor)."""

    def __init__(self, rank: int, node: str) -> None:
        self.rank, self.node = rank, node
        self.proc: subprocess.Popen[bytes] | None = None
        self._lines: list[bytes] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # how Ray names the member in errors and on its dashboard
        return f"rank {self.rank} on {self.node}"

    def rendezvous(self) -> tuple[str, int]:
        """This node's address and a free port on it (asked of rank 0 only)."""
        import ray

        with socket.socket() as s:
            s.bind(("", 0))
            port = int(s.getsockname()[1])
        return str(ray.util.get_node_ip_address()), port  # type: ignore[no-untyped-call]

    def run(self, plan: str) -> int:
        """Run the job's command on this node in its sandbox (the run's ``plan``, see
        :func:`suanli.executors.sandbox.launch`), which the kernel kills should this actor's
        process die; nothing of the actor's environment reaches the command."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "suanli.executors.sandbox", "--die-with-parent"],
            env={RUN_VAR: plan, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        reader.start()
        code = self.proc.wait()
        reader.join(TAIL_S)  # a background process it started may hold the pipe open
        return code

    def _read(self, pipe: Any) -> None:
        for line in pipe:
            with self._lock:
                self._lines.append(line)

    def output(self) -> bytes:
        """The command's output since the last call."""
        with self._lock:
            out, self._lines = b"".join(self._lines), []
        return out

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)


def member_env(plan: list[dict[str, Any]], rank: int, master: tuple[str, int]) -> dict[str, str]:
    """What the command on the node of ``rank`` sees besides the job's own variables."""
    entry = plan[rank]
    return {
        entry["var"]: ",".join(str(d) for d in entry["devices"]),
        "SUANLI_NODE": entry["node"],
        **rendezvous_env(rank, len(plan), master[0], master[1]),
    }


def bundles(plan: list[dict[str, Any]]) -> tuple[list[dict[str, float]], list[dict[str, str]]]:
    """One bundle per node: its devices as the chip's Ray resource plus the node's own
    resource, pinned to the node by its label."""
    out, selectors = [], []
    for entry in plan:
        count = float(len(entry["devices"]))
        out.append({entry["resource"]: count, f"suanli.node.{entry['node']}": count})
        selectors.append({"suanli.io/node": entry["node"]})
    return out, selectors


def relay(members: list[Any], plan: list[dict[str, Any]]) -> None:
    """Write what the members printed since the last call to the driver's output, each line
    prefixed with its member's rank and node."""
    import ray

    refs = [m.output.remote() for m in members]
    out = sys.stdout.buffer
    for rank, ref in enumerate(refs):
        try:
            chunk = ray.get(ref)
        except ray.exceptions.RayError:  # a member gone (its node died): its run says so
            continue
        prefix = f"(rank {rank} on {plan[rank]['node']}) ".encode()
        for line in chunk.splitlines():
            out.write(prefix + line + b"\n")
    out.flush()


def main() -> int:
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    plan: list[dict[str, Any]] = json.loads(os.environ[PLAN_VAR])
    run: dict[str, Any] = json.loads(os.environ[RUN_VAR])
    stopping = threading.Event()
    ray.init(log_to_driver=False)  # the members' output comes through Member.output
    # after ray.init, which installs its own SIGTERM handler (exit at once): a preemption must
    # reach the members, and the driver wait for their checkpoints
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    wanted, selectors = bundles(plan)
    pg = placement_group(wanted, strategy="STRICT_SPREAD", bundle_label_selector=selectors)
    members: list[Any] = []
    try:
        ready, _ = ray.wait([pg.ready()], timeout=READY_TIMEOUT_S)
        if not ready:
            print(f"suanli gang: the {len(plan)} nodes were not placed in time", file=sys.stderr)
            return EXIT_UNPLACED
        # threads for: run, output, terminate (and rendezvous first)
        actor: Any = ray.remote(max_concurrency=4)(Member)  # type: ignore[call-overload]
        for i in range(len(plan)):
            resources = dict(wanted[i])
            gpus = resources.pop("GPU", 0.0)  # Ray takes GPUs only as num_gpus
            strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)
            members.append(
                actor.options(
                    num_cpus=0,
                    num_gpus=gpus,
                    resources=resources,
                    scheduling_strategy=strategy,
                ).remote(i, plan[i]["node"])
            )
        master = ray.get(members[0].rendezvous.remote())
        runs = {
            members[i].run.remote(json.dumps({**run, "nodes": [member_env(plan, i, master)]})): i
            for i in range(len(plan))
        }
        print(f"suanli gang: {len(plan)} nodes, master {master[0]}:{master[1]}", flush=True)
        codes: dict[int, int] = {}
        terminated = False
        while runs:
            done, _ = ray.wait(list(runs), num_returns=1, timeout=POLL_S)
            relay(members, plan)
            for ref in done:
                rank = runs.pop(ref)
                codes[rank] = int(ray.get(ref))
                print(f"suanli gang: node rank {rank} exited {codes[rank]}", flush=True)
            failed = any(c != 0 for c in codes.values())
            if (stopping.is_set() or failed) and not terminated:
                terminated = True
                ray.get([m.terminate.remote() for m in members])
        return max(codes.values(), key=abs, default=0)
    finally:
        for m in members:  # their commands have exited; end the actors quietly
            ray.kill(m)
        remove_placement_group(pg)


if __name__ == "__main__":
    sys.exit(main())
