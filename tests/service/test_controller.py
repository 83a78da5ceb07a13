"""The controller with a real database (SQLite and PostgreSQL) and real child processes."""

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from suanli.errors import CannotRunError, ConflictError, ValidationError
from suanli.executors.base import RunRequest
from suanli.executors.local import LocalProcessExecutor
from suanli.model.job import Phase
from suanli.sched.policy import get_policy
from suanli.service import jobs
from suanli.service.controller import Controller
from suanli.service.pool import create_alliance
from suanli.spec.alliance_file import loads_alliance
from suanli.store.database import Database
from suanli.store.tables import AuditRow, JobRow

from ..builders import admin
from ..stepping import run_until

ALLIANCE = """
alliance: tiny
members:
  - {id: lab, kind: institute}
  - {id: startup, kind: startup, tier: commons}
sites:
  - {id: lab-site, member: lab, region: r1}
nodes:
  - {id: lab-h800, site: lab-site, model: H800-80GB, devices: 8, cpu: 64, memory_gb: 512}
"""


def setup(db: Database) -> None:
    with db.session() as s:
        create_alliance(s, loads_alliance(ALLIANCE), "admin", time.time())


def submit(db: Database, doc: object) -> list[str]:
    with db.session() as s:
        return [r.id for r in jobs.submit(s, admin(), doc, time.time())]


def read(s):  # type: ignore[no-untyped-def]
    from suanli.store.alliance_rows import read_alliance

    return read_alliance(s)[0]


def finished(rows: dict[str, JobRow]) -> bool:
    return all(Phase(r.phase).terminal for r in rows.values())


def test_jobs_run_to_their_exit_codes_on_their_devices(db: Database, tmp_path: Path) -> None:
    setup(db)
    ex = LocalProcessExecutor(tmp_path / "exec")
    ctl = Controller(db, ex, get_policy("alliance"))
    ids = submit(
        db,
        {
            "jobs": [
                {
                    "id": "ok",
                    "member": "lab",
                    "accelerators": "H800:2",
                    "entrypoint": 'echo "on $CUDA_VISIBLE_DEVICES"',
                },
                {
                    "id": "bad",
                    "member": "startup",
                    "accelerators": "H800:1",
                    "entrypoint": "exit 7",
                },
                {"member": "lab", "accelerators": "H800:4", "entrypoint": "true"},
            ]
        },
    )
    assert ids[:2] == ["ok", "bad"] and ids[2].startswith("lab-")
    named = submit(db, {"name": "my run", "member": "lab", "accelerators": "H800:1"})
    with db.session() as s:
        row = jobs.get(s, admin(), named[0])
        assert row.name == "my run" and row.id.startswith("lab-")
        jobs.cancel(s, admin(), row.id, time.time())
    rows = run_until(ctl, db, finished)
    assert rows["ok"].phase == "SUCCEEDED" and rows["bad"].phase == "FAILED"
    assert rows["bad"].exit_code == 7 and rows[ids[2]].phase == "SUCCEEDED"
    assert ex.logs(rows["ok"].id, 1).startswith(b"on ")  # type: ignore[arg-type]
    with db.session() as s:
        actions = [a.action for a in s.scalars(select(AuditRow).where(AuditRow.target == "job/ok"))]
    assert actions == ["job.submit", "job.admit", "job.succeeded"]


def test_bad_and_duplicate_submissions_change_nothing(db: Database) -> None:
    setup(db)
    submit(db, {"id": "a", "member": "lab", "accelerators": "H800:1"})
    with pytest.raises(ConflictError, match="already exist: a"):
        submit(
            db,
            {
                "jobs": [
                    {"id": "b", "member": "lab", "accelerators": "H800:1"},
                    {"id": "a", "member": "lab", "accelerators": "H800:1"},
                ]
            },
        )
    with pytest.raises(ValidationError) as err:
        submit(
            db,
            {
                "jobs": [
                    {"id": "c", "member": "lab", "accelerators": "H800:1"},
                    {"id": "d", "member": "lab", "accelerators": "H800:64"},
                ]
            },
        )
    assert [p.field for p in err.value.problems] == ["jobs.1.accelerators"]
    with db.session() as s:
        assert [r.id for r in s.scalars(select(JobRow))] == ["a"]


class CrashAfterCommit(LocalProcessExecutor):
    """Dies (like a SIGKILL) right after the controller committed its decisions."""

    def start(self, run: RunRequest) -> None:
        raise KeyboardInterrupt("controller killed")


def test_a_crash_between_recording_and_starting_runs_the_job_exactly_once(
    db: Database, tmp_path: Path
) -> None:
    setup(db)
    marker = tmp_path / "exec" / "checkpoints" / "once" / "runs.txt"
    submit(
        db,
        {
            "id": "once",
            "member": "lab",
            "accelerators": "H800:8",
            "entrypoint": 'echo ran >> "$SUANLI_CHECKPOINT_DIR/runs.txt"',
        },
    )
    with pytest.raises(KeyboardInterrupt):
        Controller(db, CrashAfterCommit(tmp_path / "exec"), get_policy("alliance")).step()
    with db.session() as s:
        assert s.scalars(select(JobRow.phase)).one() == "ADMITTED"
    # a new controller (after restart) starts what was decided, once, with the same attempt
    ctl = Controller(db, LocalProcessExecutor(tmp_path / "exec"), get_policy("alliance"))
    rows = run_until(ctl, db, finished)
    assert rows["once"].phase == "SUCCEEDED" and rows["once"].attempt == 1
    for _ in range(3):
        ctl.step()
    assert marker.read_text() == "ran\n"


def test_cancel_pending_and_running_jobs(db: Database, tmp_path: Path) -> None:
    setup(db)
    ctl = Controller(db, LocalProcessExecutor(tmp_path / "exec"), get_policy("alliance"))
    submit(
        db,
        {
            "jobs": [
                {"id": "long", "member": "lab", "accelerators": "H800:8", "entrypoint": "sleep 60"},
                {"id": "queued", "member": "lab", "accelerators": "H800:8", "entrypoint": "true"},
            ]
        },
    )
    run_until(ctl, db, lambda r: r["long"].phase == "RUNNING")
    with db.session() as s:
        assert jobs.cancel(s, admin(), "queued", time.time()).phase == "CANCELLED"
        jobs.cancel(s, admin(), "long", time.time())
    rows = run_until(ctl, db, finished)
    assert rows["long"].phase == "CANCELLED" and rows["queued"].phase == "CANCELLED"
    submit(db, {"id": "x", "member": "lab", "accelerators": "H800:1", "entrypoint": "true"})
    run_until(ctl, db, finished)
    with db.session() as s, pytest.raises(ConflictError, match="already ended SUCCEEDED"):
        jobs.cancel(s, admin(), "x", time.time())


def test_reclaim_preempts_the_borrower_which_checkpoints_and_resumes(
    db: Database, tmp_path: Path
) -> None:
    setup(db)
    ctl = Controller(
        db, LocalProcessExecutor(tmp_path / "exec"), get_policy("alliance", grace_s=10)
    )
    borrower = (
        'C="$SUANLI_CHECKPOINT_DIR/step"; '
        'if [ -f "$C" ]; then echo "resumed at $(cat "$C")"; exit 0; fi; '
        "trap 'echo 41 > \"$C\"; exit 0' TERM; "
        "while true; do sleep 0.05; done"
    )
    submit(
        db, {"id": "borrow", "member": "startup", "accelerators": "H800:8", "entrypoint": borrower}
    )
    run_until(ctl, db, lambda r: r["borrow"].phase == "RUNNING")
    time.sleep(0.3)  # let the trap be installed
    submit(db, {"id": "owner", "member": "lab", "accelerators": "H800:8", "entrypoint": "true"})
    # while the borrower stops, the owner's reservation is in the database: the next pass
    # (of this controller or of one started after a crash) holds the node for it
    rows = run_until(ctl, db, lambda r: r["owner"].reservation is not None)
    assert rows["owner"].phase == "PENDING" and rows["borrow"].stop_requested
    assert rows["owner"].reservation == {
        "model": "H800-80GB",
        "assignments": [["lab-h800", list(range(8))]],
    }
    rows = run_until(ctl, db, finished, timeout=60)
    assert rows["owner"].phase == "SUCCEEDED" and rows["owner"].reservation is None
    assert rows["borrow"].phase == "SUCCEEDED" and rows["borrow"].preemptions == 1
    assert rows["borrow"].attempt == 2
    ex = ctl.executor
    assert isinstance(ex, LocalProcessExecutor)
    assert ex.logs(rows["borrow"].id, 2) == b"resumed at 41\n"  # type: ignore[arg-type]


class RefusesGangs(LocalProcessExecutor):
    def start(self, run: RunRequest) -> None:
        raise CannotRunError("cannot run this here")


def test_a_job_the_executor_cannot_run_fails_with_the_reason(db: Database, tmp_path: Path) -> None:
    setup(db)
    submit(db, {"id": "x", "member": "lab", "accelerators": "H800:1", "entrypoint": "true"})
    ctl = Controller(db, RefusesGangs(tmp_path / "exec"), get_policy("alliance"))
    ctl.step()
    with db.session() as s:
        row = jobs.get(s, admin(), "x")
        assert row.phase == "FAILED" and "cannot run this here" in row.reason
