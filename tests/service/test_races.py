"""Promises under races, with real concurrent transactions (SQLite and PostgreSQL): a cancel
answered CANCELLED is final, whatever the controller decided meanwhile."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from suanli.errors import ConflictError
from suanli.executors.local import LocalProcessExecutor
from suanli.sched.policy import get_policy
from suanli.service import jobs, lifecycle
from suanli.service.controller import Controller
from suanli.service.pool import create_alliance
from suanli.spec.alliance_file import loads_alliance
from suanli.store.database import Database
from suanli.store.tables import AuditRow, JobRow

from ..builders import admin

pytestmark = pytest.mark.slow  # real servers, clusters or browsers: pytest -m "not slow" skips them

POOL = """
alliance: race
members:
  - {id: lab, kind: institute}
sites:
  - {id: s, member: lab}
nodes:
  - {id: n, site: s, model: H800-80GB, devices: 8, cpu: 64, memory_gb: 512, count: 4}
"""
JOBS = 1000


def test_a_cancel_answered_cancelled_is_final_while_the_controller_admits(
    db: Database, tmp_path: Path
) -> None:
    with db.session() as s:
        create_alliance(s, loads_alliance(POOL), "t", time.time())
        doc = {
            "jobs": [
                {
                    "id": f"r{i:04d}",
                    "member": "lab",
                    "accelerators": "H800:1",
                    "entrypoint": 'echo ran > "$SUANLI_CHECKPOINT_DIR/ran"',
                }
                for i in range(JOBS)
            ]
        }
        jobs.submit(s, admin(), doc, time.time())
    ex = LocalProcessExecutor(tmp_path / "exec")
    ctl = Controller(db, ex, get_policy("fifo"))
    stop = threading.Event()

    def control() -> None:
        while not stop.is_set():
            ctl.step()

    thread = threading.Thread(target=control)
    thread.start()
    answered: dict[str, str] = {}
    rng = random.Random(1)
    order = [f"r{i:04d}" for i in range(JOBS)]
    rng.shuffle(order)
    try:
        for jid in order:
            try:
                with db.session() as s:
                    answered[jid] = jobs.cancel(s, admin(), jid, time.time()).phase
            except ConflictError:
                answered[jid] = "ENDED"
    finally:
        stop.set()
        thread.join(timeout=120)
    for _ in range(60):  # let what was asked to stop stop
        ctl.step()
        time.sleep(0.05)
    final = [j for j, phase in answered.items() if phase == "CANCELLED"]
    assert len(final) > JOBS // 2, "the race was not run: almost everything was admitted first"
    with db.session() as s:
        audit = list(s.scalars(select(AuditRow).order_by(AuditRow.id)))
    admitted_after: list[str] = []
    cancelled_at: dict[str, int] = {}
    for a in audit:
        jid = a.target.removeprefix("job/")
        if a.action == "job.cancel" and answered.get(jid) == "CANCELLED":
            cancelled_at[jid] = a.id
        elif a.action == "job.admit" and jid in cancelled_at:
            admitted_after.append(jid)
    ran = [j for j in final if (ex.checkpoint_dir(j) / "ran").exists()]  # type: ignore[arg-type]
    assert admitted_after == [] and ran == []
    with db.session() as s:
        assert {jobs.get(s, admin(), j).phase for j in final} == {"CANCELLED"}


def test_a_cancel_between_the_decision_and_the_admission_wins(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced interleaving: right after the controller read a job it decided to admit, another
    transaction cancels it and commits; the admission, which would overwrite the row it read,
    must be dropped (the job is CANCELLED, never ADMITTED, never run)."""
    with db.session() as s:
        create_alliance(s, loads_alliance(POOL), "t", time.time())
        jobs.submit(
            s,
            admin(),
            {"id": "x", "member": "lab", "accelerators": "H800:1", "entrypoint": "true"},
            time.time(),
        )
    real = lifecycle.admit
    answers: list[str] = []

    def cancel_elsewhere(job_id: str) -> None:
        with db.session() as s:
            answers.append(jobs.cancel(s, admin(), job_id, time.time()).phase)

    def admit_after_a_cancel(s: object, row: JobRow, *args: object, **kwargs: object) -> bool:
        if not answers:
            t = threading.Thread(target=cancel_elsewhere, args=(row.id,))
            t.start()
            t.join()
        return real(s, row, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lifecycle, "admit", admit_after_a_cancel)
    ctl = Controller(db, LocalProcessExecutor(tmp_path / "exec"), get_policy("fifo"))
    report = ctl.step()
    assert answers == ["CANCELLED"] and report.admitted == []
    with db.session() as s:
        row = s.scalars(select(JobRow).where(JobRow.id == "x")).one()
        assert (row.phase, row.attempt) == ("CANCELLED", 0)
    assert ctl.executor.observe() == {}
