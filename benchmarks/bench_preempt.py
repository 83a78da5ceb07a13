"""Preempt-to-resumed time and work lost for the PyTorch example job, against its checkpoint
interval (issue 5), on a real two-node Ray cluster on this machine driven by the controller.

Each run submits ``examples/train_torch.py`` (any of H800 or MLU370), lets it train for
``1.37 x interval + 3`` seconds (so the stop does not fall on a checkpoint), then drains the
H800 node: the controller stops the job (SIGTERM, grace period), requeues it and starts it on
the MLU370 node, where it resumes from its checkpoint.

- preempt-to-resumed: from the drain to the resumed run's first line (after loading its
  checkpoint), by the job's own clock (the same machine);
- work lost: steps the first run made that the second does not start from, in steps and in
  seconds of training at the first run's pace.

Two modes: the convention (checkpoint on SIGTERM, plus periodic) and periodic checkpoints only
(``--no-save-on-term``: what a node failure leaves).

    uv run python benchmarks/bench_preempt.py [--intervals 5 10 20]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from suanli.executors.ray import RayExecutor, node_resource  # noqa: E402
from suanli.executors.ray_cluster import LocalRayCluster, RayNodeSpec  # noqa: E402
from suanli.model.ids import JobId  # noqa: E402
from suanli.sched.policy import get_policy  # noqa: E402
from suanli.service import jobs  # noqa: E402
from suanli.service.auth import Principal, Role  # noqa: E402
from suanli.service.controller import Controller  # noqa: E402
from suanli.service.pool import create_alliance, drain_many  # noqa: E402
from suanli.spec.alliance_file import loads_alliance  # noqa: E402

ADMIN = Principal("bench", Role.ALLIANCE_ADMIN, None)
from suanli.store.database import Database  # noqa: E402

ALLIANCE = """
alliance: bench-preempt
members:
  - {id: hx, kind: enterprise}
  - {id: pc, kind: institute}
sites:
  - {id: hx-site, member: hx, region: r1}
  - {id: pc-site, member: pc, region: r1}
nodes:
  - {id: hx-1, site: hx-site, model: H800-80GB, devices: 8, cpu: 8, memory_gb: 64}
  - {id: pc-1, site: pc-site, model: MLU370-X8, devices: 8, cpu: 8, memory_gb: 64}
"""
STEP = re.compile(r"step (\d+) loss \S+ at ([\d.]+)")


def wait(ctl: Controller, cond, timeout: float = 180.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        ctl.step()
        if cond():
            return
        time.sleep(0.1)
    raise TimeoutError("the job did not get there in time")


def one(cluster: LocalRayCluster, work: Path, run: int, interval: float, on_term: bool) -> dict:
    db = Database.open(f"sqlite:///{work / f'db-{run}.sqlite'}")
    with db.session() as s:
        create_alliance(s, loads_alliance(ALLIANCE), "bench", time.time())
    ex = RayExecutor(cluster.address, cluster.token, work / "ckpt")
    ctl = Controller(db, ex, get_policy("alliance", grace_s=30))
    jid = JobId(f"train-{run}")
    flags = "" if on_term else " --no-save-on-term"
    with db.session() as s:
        jobs.submit(
            s,
            ADMIN,
            {
                "id": jid,
                "member": "hx",
                "accelerators": {"any_of": ["H800-80GB", "MLU370-X8"], "count": 4},
                "entrypoint": f"python train_torch.py --steps 100000000 "
                f"--checkpoint-every {interval}{flags}",
                "runtime_env": {"working_dir": str(ROOT / "examples")},
            },
            time.time(),
        )
    wait(ctl, lambda: b"starting at" in ex.logs(jid, 1))
    time.sleep(1.37 * interval + 3)
    t0 = time.time()
    with db.session() as s:
        drain_many(s, ADMIN, "NVIDIA", None, 30, t0)
    wait(
        ctl, lambda: re.search(rb"(resumed from step \d+|starting) at", ex.logs(jid, 2)) is not None
    )
    first, second = ex.logs(jid, 1).decode(), ex.logs(jid, 2).decode()
    m = re.search(r"(?:resumed from step (\d+)|starting) at ([\d.]+)", second)
    assert m is not None
    resumed_step = int(m.group(1) or 0)
    stopped = re.search(r"SIGTERM: \w+ (?:step )?(?:at step )?(\d+)", first)
    steps = [(int(a), float(b)) for a, b in STEP.findall(first)]
    last_step = int(stopped.group(1)) if stopped else steps[-1][0]
    pace = (steps[-1][0] - steps[0][0]) / (steps[-1][1] - steps[0][1])  # steps per second
    with db.session() as s:
        jobs.cancel(s, ADMIN, jid, time.time())
    wait(ctl, lambda: jobs_phase(db, jid) == "CANCELLED")
    db.close()
    lost = last_step - resumed_step
    return {
        "interval_s": interval,
        "checkpoint_on_sigterm": on_term,
        "preempt_to_resumed_s": round(float(m.group(2)) - t0, 2),
        "steps_at_stop": last_step,
        "resumed_from_step": resumed_step,
        "work_lost_steps": lost,
        "work_lost_s": round(lost / pace, 2),
        "steps_per_s": round(pace, 1),
    }


def jobs_phase(db: Database, jid: str) -> str:
    with db.session() as s:
        return jobs.get(s, ADMIN, jid).phase


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--intervals", type=float, nargs="+", default=[5.0, 10.0, 20.0])
    args = ap.parse_args()
    specs = [
        RayNodeSpec(
            {"GPU": 8, node_resource("hx-1"): 8},
            {"suanli.io/node": "hx-1", "suanli.io/model": "H800-80GB"},
        ),
        RayNodeSpec(
            {"MLU": 8, node_resource("pc-1"): 8},
            {"suanli.io/node": "pc-1", "suanli.io/model": "MLU370-X8"},
        ),
    ]
    results = []
    with tempfile.TemporaryDirectory() as tmp, LocalRayCluster(specs, stop_grace_s=30) as cluster:
        run = 0
        for on_term in (True, False):
            for interval in args.intervals:
                run += 1
                r = one(cluster, Path(tmp), run, interval, on_term)
                results.append(r)
                print(json.dumps(r), flush=True)
    print()
    print(f"{'mode':<22}{'interval s':>11}{'to resumed s':>14}{'lost steps':>12}{'lost s':>9}")
    for r in results:
        mode = "SIGTERM + periodic" if r["checkpoint_on_sigterm"] else "periodic only"
        print(
            f"{mode:<22}{r['interval_s']:>11g}{r['preempt_to_resumed_s']:>14.2f}"
            f"{r['work_lost_steps']:>12}{r['work_lost_s']:>9.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
