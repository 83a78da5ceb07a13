"""Service benchmarks (issue 4).

1. Job submissions per second with 8 concurrent clients on loopback, against a real
   ``suanli server`` process, on SQLite (WAL) and on PostgreSQL (a throwaway server started
   with initdb when no ``--pg-url`` is given); p50 and p99 latency of one submission.
2. One scheduling pass over 10,000 pending jobs from the database: read the alliance, build the
   snapshot from the rows, run ``schedule()``, on the scheduler benchmark's pool (2,000 nodes).

    uv run python benchmarks/bench_service.py [--seconds 10] [--clients 8] [--pending 10000]
    uv run python benchmarks/bench_service.py --compare OTHER_CHECKOUT [--rounds 3]

Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402
from tests.builders import admin  # noqa: E402
from tests.live import free_port  # noqa: E402
from tests.pg import postgres_server  # noqa: E402

from suanli.sched.policy import get_policy  # noqa: E402
from suanli.sched.schedule import schedule  # noqa: E402
from suanli.service import jobs  # noqa: E402
from suanli.service.pool import create_alliance  # noqa: E402
from suanli.store.alliance_rows import read_alliance  # noqa: E402
from suanli.store.database import Database  # noqa: E402
from suanli.store.snapshot import build_snapshot  # noqa: E402


def _server(
    state: Path, port: int, db_url: str | None, src: Path | None
) -> subprocess.Popen[bytes]:
    """A ``suanli server`` without controller passes; ``src``: another checkout's package."""
    cmd = [sys.executable, "-m", "suanli", "server", "--state-dir", str(state)]
    cmd += ["--port", str(port), "--interval", "3600"] + (["--db", db_url] if db_url else [])
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def submissions(
    db_url: str | None, label: str, seconds: float, clients: int, src: Path | None = None
) -> dict[str, object]:
    state = Path(tempfile.mkdtemp(prefix="suanli-bench-"))
    port = free_port()
    server = _server(state, port, db_url, src)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        token = (state / "admin-token").read_text().strip()
        latencies: list[float] = []
        lock = threading.Lock()
        stop = time.perf_counter() + seconds
        members = ["huaxia-cloud", "pengcheng-lab", "zhiyuan-ai", "qinghe-univ"]
        accel = ["H800:1", "Ascend910B:2", "MLU370:1", "RTX4090:1"]

        def client(k: int) -> None:
            mine: list[float] = []
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
                i = 0
                while time.perf_counter() < stop:
                    body = {
                        "member": members[i % 4],
                        "accelerators": accel[i % 4],
                        "entrypoint": "true",
                    }
                    t0 = time.perf_counter()
                    r = c.post("/api/v1/jobs", json=body)
                    mine.append(time.perf_counter() - t0)
                    assert r.status_code == 201, r.text
                    i += 1
            with lock:
                latencies.extend(mine)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        latencies.sort()
        return {
            "bench": "submit",
            "db": label,
            "clients": clients,
            "submissions": len(latencies),
            "per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 2),
            "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
        }
    finally:
        server.terminate()
        server.wait(timeout=20)


def pass_from_db(db_url: str, label: str, pending: int) -> dict[str, object]:
    from bench_sim import alliance_from_bench_pool

    alliance = alliance_from_bench_pool(0)
    db = Database.open(db_url)
    rng = random.Random(0)
    members = sorted(alliance.members)
    models = sorted({n.model for n in alliance.nodes.values()})
    with db.session() as s:
        create_alliance(s, alliance, "bench", time.time())
    t0 = time.perf_counter()
    for start in range(0, pending, 1000):
        docs = [
            {
                "id": f"p{i}",
                "member": members[rng.randrange(len(members))],
                "accelerators": f"{models[rng.randrange(len(models))]}:{rng.choice([2, 4, 8])}",
            }
            for i in range(start, min(pending, start + 1000))
        ]
        with db.session() as s:
            jobs.submit(s, admin(), {"jobs": docs}, time.time())
    load_s = time.perf_counter() - t0
    policy = get_policy("alliance")
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        with db.session() as s:
            a, draining = read_alliance(s)
            t1 = time.perf_counter()
            snap = build_snapshot(s, a, draining, time.time())
            t2 = time.perf_counter()
        result = schedule(snap, policy)
        t3 = time.perf_counter()
        runs.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2, len(result.admits)))
    db.close()
    best = min(runs)
    return {
        "bench": "pass_from_db",
        "db": label,
        "pending": pending,
        "nodes": len(alliance.nodes),
        "insert_s": round(load_s, 2),
        "pass_total_s": round(best[0], 3),
        "read_alliance_s": round(best[1], 3),
        "build_snapshot_s": round(best[2], 3),
        "schedule_s": round(best[3], 3),
        "admitted": best[4],
    }


def _clean(url: str) -> None:
    """An empty PostgreSQL database for the next server."""
    db = Database.open(url, upgrade=False)
    from suanli.store.tables import Base

    with db.engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    db.close()


def compare(
    before: Path, seconds: float, clients: int, rounds: int, pg: str | None
) -> list[dict[str, object]]:
    """Submissions by this checkout and by the one at ``before`` (its ``src``), on SQLite and
    on PostgreSQL, alternating (ABAB...) so that the machine's noise falls on both; the
    medians' ratios."""
    out = []
    for db_url, label in [(None, "sqlite"), (pg, "postgresql")]:
        if label == "postgresql" and not db_url:
            continue
        runs: dict[str, list[dict[str, object]]] = {"before": [], "after": []}
        for _ in range(rounds):
            for name, src in (("before", before / "src"), ("after", None)):
                r = submissions(db_url, f"{label}-{name}", seconds, clients, src)
                if db_url:
                    _clean(db_url)
                runs[name].append(r)
                print(json.dumps(r), flush=True)

        def median(name: str, key: str, runs: dict[str, list[dict[str, object]]] = runs) -> float:
            return statistics.median(float(str(r[key])) for r in runs[name])

        b, a = median("before", "per_s"), median("after", "per_s")
        pb, pa = median("before", "p99_ms"), median("after", "p99_ms")
        res = {"bench": "submit_compare", "db": label, "rounds": rounds}
        res |= {"before_per_s": b, "after_per_s": a, "per_s_ratio": round(a / b, 3)}
        res |= {"before_p99_ms": pb, "after_p99_ms": pa, "p99_ratio": round(pa / pb, 3)}
        print(json.dumps(res), flush=True)
        out.append(res)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="service benchmarks")
    ap.add_argument(
        "--compare",
        type=Path,
        metavar="CHECKOUT",
        help="only compare submissions with another checkout (git worktree add DIR REV)",
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--pending", type=int, default=10000)
    ap.add_argument("--pg-url", help="PostgreSQL URL (default: a throwaway server)")
    args = ap.parse_args()
    with postgres_server() as started:
        if args.compare:
            compare(args.compare, args.seconds, args.clients, args.rounds, args.pg_url or started)
            return
        pg = args.pg_url or started
        tmp = Path(tempfile.mkdtemp(prefix="suanli-bench-"))
        targets: list[tuple[str | None, str]] = [(None, "sqlite")]
        if pg:
            targets.append((pg, "postgresql"))
        for url, label in targets:
            print(json.dumps(submissions(url, label, args.seconds, args.clients)), flush=True)
            if url:  # a clean database for the next benchmark
                db = Database.open(url)
                from suanli.store.tables import Base

                with db.engine.begin() as conn:
                    Base.metadata.drop_all(conn)
                    conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
                db.close()
        for url, label in [(f"sqlite:///{tmp / 'pass.db'}", "sqlite"), (pg, "postgresql")]:
            if url:
                print(json.dumps(pass_from_db(url, label, args.pending)), flush=True)


if __name__ == "__main__":
    main()
