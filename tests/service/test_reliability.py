"""Kill the server with SIGKILL at random points while 200 jobs are submitted and run, restart
it each time, and check that every job reaches exactly one terminal state and none ran twice.
A real server process, a real SQLite database, real child processes."""

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from suanli.sdk.client import ApiError, Client

from ..live import free_port, spawn_server, wait_up

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them

JOBS = 200


def start_server(state: Path, port: int) -> subprocess.Popen[bytes]:
    return spawn_server(state, port, interval=0.1)


def test_sigkill_at_random_points_loses_nothing_and_runs_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(7)
    state = tmp_path / "state"
    marks = state / "checkpoints"  # each job marks its runs in its checkpoint directory
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(state, port)
    wait_up(url)
    token = (state / "admin-token").read_text().strip()
    jobs = [
        {
            "id": f"r{i:03d}",
            "member": ["huaxia-cloud", "pengcheng-lab", "zhiyuan-ai", "xinghuo"][i % 4],
            "accelerators": ["H800:1", "Ascend910B:2", "MLU370:1", "A800:1"][i % 4],
            "entrypoint": 'echo ran >> "$SUANLI_CHECKPOINT_DIR/ran"; '
            f"sleep {rng.uniform(0.05, 0.6):.2f}",
        }
        for i in range(JOBS)
    ]
    kills = 0
    next_kill = time.time() + rng.uniform(0.3, 1.5)
    submitted = 0
    # (a guard against a hang, not a speed target: beside another test suite on two cores
    # the eight restarts once took more than 240 s)
    deadline = time.time() + 600
    done = False
    phases: list[str] = []
    while not done and time.time() < deadline:
        if time.time() >= next_kill and kills < 8:
            server.send_signal(signal.SIGKILL)
            server.wait()
            kills += 1
            server = start_server(state, port)
            wait_up(url)
            next_kill = time.time() + rng.uniform(0.3, 1.5)
        try:
            with Client(url, token, timeout=5) as c:
                if submitted < JOBS:
                    batch = jobs[submitted : submitted + 20]
                    try:
                        c.submit({"jobs": batch})
                    except ApiError as exc:  # the server committed, then died before replying
                        assert exc.status == 409, exc
                        for j in batch:  # submit what is missing, one by one
                            try:
                                c.submit(j)
                            except ApiError as exc2:
                                assert exc2.status == 409, exc2
                    submitted += len(batch)
                else:
                    phases = [j["phase"] for j in c.iter_jobs()]
                    done = len(phases) == JOBS and all(
                        p in ("SUCCEEDED", "FAILED", "CANCELLED") for p in phases
                    )
        except ConnectionError:
            pass  # killed under us: try again
        time.sleep(0.05)
    try:
        ended = sum(p in ("SUCCEEDED", "FAILED", "CANCELLED") for p in phases)
        assert done, f"jobs did not all end: {ended} of {JOBS} after {kills} kills"
        assert kills >= 5
        with Client(url, token) as c:
            final = list(c.iter_jobs())
            audit = []
            after = 0
            while batch_ := c.audit(after=after, limit=1000):
                audit += batch_
                after = batch_[-1]["id"]
        assert sorted(j["id"] for j in final) == sorted(j["id"] for j in jobs)
        assert {j["phase"] for j in final} == {"SUCCEEDED"}
        for j in final:
            assert (marks / j["id"] / "ran").read_text() == "ran\n", f"{j['id']} ran twice"
            assert j["attempt"] == 1
        ends = [a["target"] for a in audit if a["action"] == "job.succeeded"]
        assert sorted(ends) == sorted(f"job/{j['id']}" for j in jobs)  # one terminal record each
        print(json.dumps({"kills": kills, "jobs": len(final)}))
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        os.system(f"pkill -f {state} >/dev/null 2>&1")
