"""One controller at a time, with real server processes: a second server on one SQLite state
refuses to start; two servers on one PostgreSQL database elect one controller, and when it is
killed the other takes over, every job ending exactly once and the ledger still whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suanli.sdk.client import Client

from ..live import free_port, spawn_server, stop, wait_up

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them

JOBS = 200


def test_a_second_server_on_one_sqlite_state_refuses_to_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = spawn_server(state, free_port(), 0.5)
    try:
        deadline = time.time() + 60
        while not (state / "admin-token").exists():
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.1)
        cmd = [sys.executable, "-m", "suanli", "server", "--state-dir", str(state)]
        second = subprocess.run(
            [*cmd, "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode != 0
        assert "another suanli server (pid" in second.stderr, second.stderr
        assert first.poll() is None  # the first one runs on, untouched
    finally:
        stop(first)


def _submit_all(url: str, token: str) -> None:
    with Client(url, token) as c:
        for k in range(0, JOBS, 50):
            c.submit(
                {
                    "jobs": [
                        {
                            "id": f"f{i:03d}",
                            "member": ["huaxia-cloud", "pengcheng-lab", "zhiyuan-ai"][i % 3],
                            "accelerators": ["H800:1", "Ascend910B:1", "MLU370:1"][i % 3],
                            "entrypoint": 'echo ran >> "$SUANLI_CHECKPOINT_DIR/ran"; sleep 0.3',
                        }
                        for i in range(k, k + 50)
                    ]
                }
            )


def test_the_standby_takes_over_when_the_controller_dies(
    tmp_path: Path, pg_url: str | None
) -> None:
    if pg_url is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed (CI installs it: see .ci/run)")
        pytest.skip("PostgreSQL is not installed here")
    from suanli.store.database import Database

    from ..conftest import _drop_schema

    state = tmp_path / "state"
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    servers = [
        spawn_server(state, ports[0], 0.2, pg_url, "--lease", "3", log=logs[0]),
    ]
    try:
        wait_up(urls[0], servers[0])
        servers.append(spawn_server(state, ports[1], 0.2, pg_url, "--lease", "3", log=logs[1]))
        wait_up(urls[1], servers[1])
        token = (state / "admin-token").read_text().strip()
        _submit_all(urls[1], token)  # through the standby: both serve the API
        with Client(urls[1], token) as c:
            deadline = time.time() + 120
            while sum(j["phase"] == "SUCCEEDED" for j in c.iter_jobs()) < JOBS // 4:
                assert time.time() < deadline, "the jobs do not run"
                time.sleep(0.2)
            servers[0].send_signal(signal.SIGKILL)  # the leader (it started first)
            servers[0].wait()
            killed_at = time.time()
            deadline = time.time() + 300
            while True:
                final = list(c.iter_jobs())
                if all(j["phase"] in ("SUCCEEDED", "FAILED", "CANCELLED") for j in final):
                    break
                assert time.time() < deadline, "the jobs did not all end"
                time.sleep(0.3)
            audit, after = [], 0
            while batch := c.audit(after=after, limit=1000):
                audit += batch
                after = batch[-1]["id"]
            books = c.verify_ledger()
        assert len(final) == JOBS and {j["phase"] for j in final} == {"SUCCEEDED"}
        for j in final:
            ran = (state / "checkpoints" / j["id"] / "ran").read_text()
            assert ran == "ran\n", f"{j['id']} ran {ran.count('ran')} times"
            assert j["attempt"] == 1
        ends = sorted(a["target"] for a in audit if a["action"] == "job.succeeded")
        assert ends == sorted(f"job/{j['id']}" for j in final)  # one terminal record each
        assert books["ok"], books
        after_kill = [a["at"] for a in audit if a["at"] > killed_at and a["actor"] == "controller"]
        takeover = min(after_kill) - killed_at
        print(json.dumps({"jobs": JOBS, "takeover_s": round(takeover, 2)}))
        # the figure (2.05 s with a 3 s lease on an idle machine) is printed for the docs; the
        # bound only says that the standby took over: on two cores busy with two test suites
        # it once took 28 s for the standby process to get its turn
        assert takeover < 120
    finally:
        for p in servers:
            stop(p)
        db = Database.open(pg_url)
        _drop_schema(db)
        db.close()


def test_a_deleted_database_stops_the_controller_and_a_restart_refuses(tmp_path: Path) -> None:
    state, port = tmp_path / "state", free_port()
    url = f"http://127.0.0.1:{port}"
    server = spawn_server(state, port, 0.2, log=tmp_path / "server.log")
    try:
        wait_up(url, server)
        token = (state / "admin-token").read_text().strip()
        with Client(url, token) as c:
            c.submit({"id": "long", "member": "huaxia-cloud", "accelerators": "H800:1",
                      "entrypoint": "sleep 60"})  # fmt: skip
            deadline = time.time() + 60
            while c.job("long")["phase"] != "RUNNING":
                assert time.time() < deadline
                time.sleep(0.1)
            for f in state.glob("suanli.db*"):
                f.unlink()
            deadline = time.time() + 30
            while (health := c.http.get("/healthz")).status_code != 503:
                assert time.time() < deadline, "the lost database went unnoticed"
                time.sleep(0.1)
            assert "was deleted" in health.json()["problem"]
            r = c.http.get("/api/v1/jobs")
            assert r.status_code == 503 and "was deleted" in r.json()["message"]
    finally:
        stop(server)
    # a new database over this state directory would forget the job that still runs
    cmd = [sys.executable, "-m", "suanli", "server", "--state-dir", str(state)]
    again = subprocess.run(
        [*cmd, "--port", str(free_port())], capture_output=True, text=True, timeout=60, check=False
    )
    assert again.returncode != 0 and "was the database deleted or moved?" in again.stderr
    assert not (state / "suanli.db").exists()  # (nothing was made over it)
    subprocess.run(["pkill", "-f", str(state)], check=False)  # (the detached run)
