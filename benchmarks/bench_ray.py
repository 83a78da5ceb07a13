"""Submit-to-running latency through suanli against Ray's Job Submission API directly, in the
same run, on a one-node Ray cluster on this machine (issue 5).

Direct: ``submit_job`` with the same resources, then poll the job's status until RUNNING.
Through suanli: ``POST /api/v1/jobs`` to a live API, the controller (a step every 50 ms)
admits it and submits it to Ray, then the same poll of Ray until RUNNING. Jobs run one at a
time (``sleep 2``); the median overhead is (suanli - direct) / direct.

    uv run python benchmarks/bench_ray.py [--jobs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray.job_submission import JobStatus  # noqa: E402
from tests.service.live import serving  # noqa: E402

from suanli.api.app import create_app  # noqa: E402
from suanli.executors.ray import RayExecutor, node_resource  # noqa: E402
from suanli.executors.ray_cluster import LocalRayCluster, RayNodeSpec  # noqa: E402
from suanli.sched.policy import get_policy  # noqa: E402
from suanli.sdk.client import Client  # noqa: E402
from suanli.server import ControllerLoop  # noqa: E402
from suanli.service.auth import create_user  # noqa: E402
from suanli.service.context import Service  # noqa: E402
from suanli.service.controller import Controller  # noqa: E402
from suanli.service.pool import create_alliance  # noqa: E402
from suanli.spec.alliance_file import loads_alliance  # noqa: E402
from suanli.store.database import Database  # noqa: E402

ALLIANCE = """
alliance: bench
members: [{id: m, kind: institute}]
sites: [{id: s, member: m}]
nodes: [{id: n1, site: s, model: H800-80GB, devices: 8, cpu: 8, memory_gb: 64}]
"""


def wait_running(ex: RayExecutor, sid: str, timeout_s: float = 120.0) -> float:
    deadline = time.perf_counter() + timeout_s
    status = None
    while time.perf_counter() < deadline:
        try:
            status = ex.client.get_job_status(sid)
            if status in (JobStatus.RUNNING, JobStatus.SUCCEEDED):
                return time.perf_counter()
        except RuntimeError:
            pass  # not submitted yet
        time.sleep(0.01)
    raise RuntimeError(f"{sid} not running after {timeout_s} s (last status {status})")


def main() -> None:
    ap = argparse.ArgumentParser(description="Ray submit-to-running latency")
    ap.add_argument("--jobs", type=int, default=15)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="suanli-bench-ray-"))
    node = RayNodeSpec({"GPU": 8, node_resource("n1"): 8}, {"suanli.io/node": "n1"})
    with LocalRayCluster([node]) as cluster:
        ex = RayExecutor(cluster.address, cluster.token, tmp / "ckpt")
        db = Database.open(f"sqlite:///{tmp / 'db.sqlite'}")
        with db.session() as s:
            create_alliance(s, loads_alliance(ALLIANCE), "bench", time.time())
            token = create_user(s, None, "admin", "alliance-admin", None, time.time())
        policy = get_policy("alliance")
        loop = ControllerLoop(Controller(db, ex, policy), 0.05)
        loop.start()
        direct, through = [], []
        with serving(create_app(Service(db, policy, ex))) as url, Client(url, token) as c:
            for i in range(args.jobs):
                sid = f"direct-{i}"
                t0 = time.perf_counter()
                ex.client.submit_job(
                    entrypoint="sleep 2",
                    submission_id=sid,
                    entrypoint_num_cpus=0,
                    entrypoint_num_gpus=1,
                    entrypoint_resources={node_resource("n1"): 1},
                )
                direct.append(wait_running(ex, sid) - t0)
                print(f"direct {i}: {direct[-1]:.2f} s", file=sys.stderr)
                ex.client.stop_job(sid)
                t0 = time.perf_counter()
                job = c.submit(
                    {
                        "id": f"via-{i}",
                        "member": "m",
                        "accelerators": "H800:1",
                        "entrypoint": "sleep 2",
                    }
                )[0]
                through.append(wait_running(ex, f"suanli-{job['id']}-1") - t0)
                print(f"suanli {i}: {through[-1]:.2f} s", file=sys.stderr)
                c.cancel(job["id"])
                time.sleep(0.5)
        loop.stop()
        db.close()
    d, t = statistics.median(direct), statistics.median(through)
    print(
        json.dumps(
            {
                "bench": "submit_to_running",
                "jobs": args.jobs,
                "direct_median_s": round(d, 3),
                "suanli_median_s": round(t, 3),
                "overhead": round((t - d) / d, 3),
                "direct_p90_s": round(sorted(direct)[int(0.9 * (len(direct) - 1))], 3),
                "suanli_p90_s": round(sorted(through)[int(0.9 * (len(through) - 1))], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
