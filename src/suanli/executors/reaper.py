"""The first process of a job inside its sandbox: ``python -I reaper.py PLAN``.

It runs as the job's own user, with the job's environment only. ``PLAN`` is JSON:
``{"entrypoint": str, "nodes": [{VAR: value}, ...], "namespace": bool}``. It starts the job's
command once per node (a multi-node gang on one machine: each copy with its node's variables)
with ``/bin/sh -c``, in its own process group, and exits with the first non-zero exit code of
the copies (128 + the signal for one killed by a signal).

On SIGTERM (a preemption or a cancel) it passes SIGTERM on to every process of the job, those
it did not start included, then waits until all of them are gone: a job gets the whole grace
period to checkpoint, even when its entrypoint's shell exits first. Whoever supervises the
sandbox kills it outright once the grace period is over.

``namespace``: the sandbox has a process namespace of its own (bubblewrap), so every other
process in it is the job's: SIGTERM goes to all of them (``kill(-1)``), and when this process
exits the kernel kills whatever the job left behind. Without one (``--sandbox none``), SIGTERM
goes to this process group, the job's processes that left it are out of reach, and the
supervisor kills the group when the run ends. ``broadcast`` false: whoever stops the run
signals every process of it already (Ray does), so this one passes nothing on (a job would
get SIGTERM twice).

Only the standard library: the file runs from a read-only bind inside the sandbox, where suanli
need not be importable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def _others(namespace: bool) -> bool:
    """Whether a process of the job other than this one is still alive."""
    me = os.getpid()
    group = os.getpgid(0)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (me, 1):
            continue
        if namespace:
            return True
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            return True
    return False


def _code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def main(plan_json: str) -> int:
    plan = json.loads(plan_json)
    namespace = bool(plan.get("namespace"))
    broadcast = bool(plan.get("broadcast", True))
    stopping = False

    def on_term(sig: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        if not broadcast:
            return
        try:
            if namespace:
                os.kill(-1, sig)  # every process of the job but this one
            else:
                os.killpg(0, sig)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    children = []
    for node_env in plan["nodes"] or [{}]:
        try:
            children.append(
                subprocess.Popen(
                    ["/bin/sh", "-c", plan["entrypoint"]],
                    env={**os.environ, **node_env},
                    stdin=subprocess.DEVNULL,
                )
            )
        except OSError as e:
            print(f"suanli: could not start the job: {e}", file=sys.stderr, flush=True)
            return 126
    codes = [_code(child.wait()) for child in children]
    if stopping:
        while _others(namespace):  # the whole grace period is the job's
            time.sleep(0.05)
    return next((c for c in codes if c != 0), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
