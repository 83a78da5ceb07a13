"""Prometheus metrics scraped from a live API while the controller runs real jobs."""

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from suanli.api.app import create_app
from suanli.executors.local import LocalProcessExecutor
from suanli.sched.policy import get_policy
from suanli.service.auth import create_user
from suanli.service.context import Service
from suanli.service.controller import Controller
from suanli.service.metrics import Metrics
from suanli.service.pool import create_alliance
from suanli.spec.alliance_file import loads_alliance
from suanli.store.database import Database

from ..live import serving
from ..stack import ALLIANCE
from ..stepping import run_until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_queue_admissions_preemptions_and_utilization(
    db: Database, tmp_path: Path
) -> None:
    metrics = Metrics()
    policy = get_policy("alliance", grace_s=5)
    ex = LocalProcessExecutor(tmp_path / "exec")
    ctl = Controller(db, ex, policy, metrics=metrics)
    with db.session() as s:
        create_alliance(s, loads_alliance(ALLIANCE), "t", time.time())
        viewer = create_user(s, None, "prom", "viewer", None, time.time())
        user = create_user(s, None, "su", "member-user", "startup", time.time())
        owner = create_user(s, None, "lu", "member-user", "lab", time.time())
    with serving(create_app(Service(db, policy, ex, metrics=metrics))) as url:
        assert httpx.get(f"{url}/metrics").status_code == 401
        head = {"Authorization": f"Bearer {viewer}"}
        borrower = {
            "id": "startup-b",
            "member": "startup",
            "accelerators": "H800:8",
            "entrypoint": "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        }
        httpx.post(f"{url}/api/v1/jobs", json=borrower, headers={"Authorization": f"Bearer {user}"})
        queued = samples(httpx.get(f"{url}/metrics", headers=head).text)
        assert queued[("suanli_queue_length", (("member", "startup"),))] == 1
        run_until(ctl, db, lambda r: r["startup-b"].phase == "RUNNING")
        busy = samples(httpx.get(f"{url}/metrics", headers=head).text)
        model = (("model", "H800-80GB"),)
        assert busy[("suanli_devices_busy", model)] == 8
        assert busy[("suanli_utilization", model)] == 1.0
        assert busy[("suanli_jobs", (("phase", "RUNNING"),))] == 1
        reclaim = {"id": "lab-o", "member": "lab", "accelerators": "H800:8", "entrypoint": "true"}
        httpx.post(f"{url}/api/v1/jobs", json=reclaim, headers={"Authorization": f"Bearer {owner}"})
        run_until(ctl, db, lambda r: r["lab-o"].phase == "SUCCEEDED", timeout=60)
        after = samples(httpx.get(f"{url}/metrics", headers=head).text)
        assert after[("suanli_admissions_total", ())] >= 3  # b, o, b again
        assert after[("suanli_preemptions_total", ())] == 1
        assert after[("suanli_requeues_total", ())] == 1
        assert after[("suanli_pass_seconds_count", ())] > 0
        assert after[("suanli_nodes", (("health", "up"), ("state", "active")))] == 2
