"""Dashboard pages rendered in a real headless Chromium on a pool of 2,000 nodes and 10,000
jobs (issue 6): the time from navigation start to the load event, as the browser measures it
(Navigation Timing), and the server's share of it (time to the last byte).

The pool: 20 members, each with a site of 100 nodes (H800, Ascend 910B, MLU370 and DCU
hosts); 10,000 jobs from the 20 members, admitted by the real controller (a few thousand run,
the rest wait with the scheduler's reasons) with an executor that starts nothing (this measures
pages, not runs); a week of ledger usage records (100,000) for the plots.

    uv run python benchmarks/bench_dashboard.py [--repeat 5] [--shots out/dashboard]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.builders import admin  # noqa: E402
from tests.service.live import serving  # noqa: E402
from tests.ui.browser import chromium  # noqa: E402

from suanli.api.app import create_app  # noqa: E402
from suanli.executors.base import RunPhase, RunRequest, RunState  # noqa: E402
from suanli.ledger.record import Record, units_of  # noqa: E402
from suanli.model.ids import JobId, NodeId  # noqa: E402
from suanli.sched.policy import get_policy  # noqa: E402
from suanli.service import jobs  # noqa: E402
from suanli.service.auth import create_user  # noqa: E402
from suanli.service.context import Service  # noqa: E402
from suanli.service.controller import Controller  # noqa: E402
from suanli.service.pool import create_alliance  # noqa: E402
from suanli.spec.alliance_file import loads_alliance  # noqa: E402
from suanli.store.database import Database  # noqa: E402
from suanli.store.ledger_rows import append  # noqa: E402

MODELS = ["H800-80GB", "Ascend910B", "MLU370-X8", "DCU-K100-AI"]


class StartsNothing:
    """An executor that reports every started run as running (pages are measured, not runs)."""

    def __init__(self) -> None:
        self.runs: dict[tuple[JobId, int], RunState] = {}

    def start(self, run: RunRequest) -> None:
        self.runs[run.key] = RunState(run.job, run.attempt, RunPhase.RUNNING, None, time.time())

    def stop(self, job: JobId, attempt: int, grace_s: float) -> None:
        self.runs[(job, attempt)] = RunState(job, attempt, RunPhase.EXITED, -15, None, time.time())

    def observe(self) -> dict[tuple[JobId, int], RunState]:
        return dict(self.runs)

    def logs(self, job: JobId, attempt: int, offset: int = 0) -> bytes:
        return b""

    def forget(self, job: JobId, attempt: int) -> None:
        self.runs.pop((job, attempt), None)

    def node_health(self) -> dict[NodeId, str | None]:
        return {}


def alliance_yaml(members: int, per_site: int) -> str:
    lines = ["alliance: bench-ui", "members:"]
    lines += [f"  - {{id: m{i:02d}, kind: institute}}" for i in range(members)]
    lines.append("sites:")
    lines += [f"  - {{id: s{i:02d}, member: m{i:02d}, region: r{i % 3}}}" for i in range(members)]
    lines.append("nodes:")
    for i in range(members):
        for k in range(per_site):
            model = MODELS[(i + k) % len(MODELS)]
            lines.append(
                f"  - {{id: n{i:02d}-{k:03d}, site: s{i:02d}, model: {model}, devices: 8, "
                "cpu: 128, memory_gb: 1024}"
            )
    return "\n".join(lines) + "\n"


def build(db: Database, n_jobs: int, rng: random.Random) -> tuple[Controller, str, str]:
    with db.session() as s:
        create_alliance(s, loads_alliance(alliance_yaml(20, 100)), "bench", time.time())
        token = create_user(s, None, "root", "alliance-admin", None, time.time())
    batch = []
    for j in range(n_jobs):
        batch.append(
            {
                "id": f"job-{j:05d}",
                "member": f"m{rng.randrange(20):02d}",
                "accelerators": f"{rng.choice(MODELS)}:{rng.choice([1, 2, 4, 8])}",
                "entrypoint": "python train.py",
            }
        )
        if len(batch) == 500:
            with db.session() as s:
                jobs.submit(s, admin(), {"jobs": batch}, time.time())
            batch = []
    ctl = Controller(db, StartsNothing(), get_policy("alliance"))  # type: ignore[arg-type]
    for _ in range(3):
        ctl.step()
    now = time.time()
    records = []
    for _ in range(100_000):
        m = f"m{rng.randrange(20):02d}"
        start = now - rng.uniform(0, 7 * 86400)
        devs = rng.choice([1, 2, 4, 8])
        records.append(
            Record(
                "real",
                "usage",
                m,
                m,
                "H800-80GB",
                devs,
                start,
                start + 300,
                units_of(devs, 0.99, 300),
                "old",
                1,
            )
        )
    with db.session() as s:
        append(s, records)
        ctl.accountant.flush(s, now, force=True)
    return ctl, token, "job-00000"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--shots", type=Path, help="save a screenshot of each page here")
    args = ap.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(f"sqlite:///{Path(tmp) / 'ui.db'}")
        t0 = time.perf_counter()
        ctl, token, job = build(db, args.jobs, rng)
        counts = {}
        with db.session() as s:
            from suanli.ui.data import job_counts

            counts = job_counts(s)
        print(f"built in {time.perf_counter() - t0:.0f} s: 2,000 nodes, jobs {counts}")
        period = time.strftime("%Y-%m", time.gmtime())
        pages = {
            "pool": "/ui/",
            "queue": "/ui/queue",
            "jobs": "/ui/jobs",
            "members": "/ui/members",
            "ledger": f"/ui/ledger?member=m07&period={period}",
            "job": f"/ui/jobs/{job}",
        }
        app = create_app(Service(db, ctl.policy, ctl.executor))
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in pages}
        with serving(app) as url, chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/ui/login")
            page.fill("input[name=token]", token)
            page.click("button[type=submit]")
            page.wait_for_url(f"{url}/ui/")
            for _ in range(args.repeat):
                for name, path in pages.items():
                    page.goto(url + path, wait_until="load")
                    nav = page.evaluate(
                        "() => { const n = performance.getEntriesByType('navigation')[0];"
                        " return [n.responseEnd - n.startTime, n.loadEventEnd - n.startTime]; }"
                    )
                    results[name].append((nav[0] / 1000, nav[1] / 1000))
            if args.shots:
                args.shots.mkdir(parents=True, exist_ok=True)
                for name, path in pages.items():
                    page.goto(url + path, wait_until="load")
                    page.screenshot(path=str(args.shots / f"{name}.png"))
        db.close()
    print(
        f"\n{'page':<10}{'server s':>10}{'load s':>9}{'max load s':>12}  (median of "
        f"{args.repeat}; target < 1 s)"
    )
    for name, xs in results.items():
        server = statistics.median(x[0] for x in xs)
        load = statistics.median(x[1] for x in xs)
        print(f"{name:<10}{server:>10.3f}{load:>9.3f}{max(x[1] for x in xs):>12.3f}")


if __name__ == "__main__":
    main()
