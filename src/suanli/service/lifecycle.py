"""A job's life, in one place: every change of a job's phase (and of what is asked of it)
happens here, and nowhere else.

```
             admit                 started
  PENDING ----------> ADMITTED ------------> RUNNING
     ^  |                |  \\                  |
     |  | cancel         |   \\ fail (it can   |  ended: exit 0 -> SUCCEEDED
     |  v                |    v  never run)    |         exit n -> FAILED
     | CANCELLED         |   FAILED            |         cancel asked -> CANCELLED
     |                   |                     |
     +-------------------+---------------------+  ended: preempted, or its run lost
```

Each transition names the phases it may leave and does nothing (returns ``False``) from any
other: a job that reached SUCCEEDED, FAILED or CANCELLED never leaves it, and a decision taken
on a job that changed meanwhile (cancelled while the scheduler admitted it) is dropped. The
check is in the database, not in the row the caller read: every transition is one conditional
``UPDATE ... WHERE phase IN (...)``, so of a cancel and an admission racing in two
transactions exactly one wins, whatever each read before. Each writes its audit record and its
structured log line once, in the caller's transaction.

``request_stop`` and ``cancel`` only record what is wanted of a running job (``stop_requested``,
``cancel_requested``, the deadline); the run's end, observed by the controller, makes the
transition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from suanli.model.job import JobSpec, Phase, Placement
from suanli.service.audit import record
from suanli.store.codec import placement_to_json, spec_to_json
from suanli.store.tables import JobRow

log = logging.getLogger("suanli.controller")

#: phases a job can still be stopped in (a run is, or may be, under way)
ACTIVE = frozenset({Phase.ADMITTED, Phase.RUNNING})
#: a job whose runs were lost this many times in a row (each seen running, none seen to
#: exit) fails instead of being tried again: something about it kills its supervisor
MAX_LOST_RUNS = 3


def _event(
    s: Session, now: float, actor: str, row: JobRow, event: str, message: str, **detail: Any
) -> None:
    """The audit record and the log line of one transition."""
    record(s, now, actor, event, f"job/{row.id}", **detail)
    log.info(
        "%s: %s",
        row.id,
        message,
        extra={"event": event, "job": row.id, "member": row.member, **detail},
    )


def _in(row: JobRow, phases: frozenset[Phase] | set[Phase]) -> bool:
    return Phase(row.phase) in phases


def _move(
    s: Session,
    row: JobRow,
    allowed: frozenset[Phase] | set[Phase],
    values: dict[str, Any],
    *also: ColumnElement[bool],
) -> bool:
    """Set ``values`` on ``row`` in one UPDATE, only if the job's phase in the database is still
    one of ``allowed`` (and ``also`` holds); the row object then has them too. False (and the
    row read again) if the job changed meanwhile."""
    if not _in(row, allowed):
        return False
    s.flush()
    stmt = (
        update(JobRow)
        .where(JobRow.seq == row.seq, JobRow.phase.in_([p.value for p in allowed]), *also)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = s.execute(stmt)
    if getattr(result, "rowcount", 0) != 1:
        s.refresh(row)
        return False
    for key, value in values.items():
        if key != "attempt":
            set_committed_value(row, key, value)
    if "attempt" in values:
        s.refresh(row, ["attempt"])
    return True


def create(
    s: Session,
    spec: JobSpec | dict[str, Any],
    actor: str,
    now: float,
    sealed_secrets: str | None = None,
    run: str | None = None,
) -> JobRow:
    """A new PENDING job: a batch job, a part of the federated run ``run``, or (``spec`` its
    stored form, ``kind: federated``) a federated run."""
    stored = spec if isinstance(spec, dict) else spec_to_json(spec)
    kind = "federated" if isinstance(spec, dict) else ("part" if run else "batch")
    row = JobRow(
        id=stored["id"],
        member=stored["member"],
        name=stored.get("name", ""),
        spec=stored,
        kind=kind,
        run=run,
        phase=Phase.PENDING.value,
        reason="submitted; waiting for the next scheduling pass",
        submitted_by=actor,
        submitted_at=now,
        secrets=sealed_secrets,
    )
    s.add(row)
    record(s, now, actor, "job.submit", f"job/{row.id}", member=row.member)
    return row


def admit(
    s: Session, row: JobRow, placement: Placement | None, why: str, actor: str, now: float
) -> bool:
    """PENDING -> ADMITTED on ``placement``, as a new attempt (never a job a cancel reached).
    A federated run holds no devices (``placement`` None): its SuperLink runs beside the
    control plane."""
    if row.cancel_requested:
        return False
    values = {
        "phase": Phase.ADMITTED.value,
        "attempt": JobRow.attempt + 1,
        "placement": placement_to_json(placement) if placement is not None else None,
        "reservation": None,
        "accounted_until": None,
        "reason": f"admitted: {why}" if why else "admitted",
        "exit_code": None,
    }
    if not _move(s, row, {Phase.PENDING}, values, JobRow.cancel_requested.is_(False)):
        return False
    _event(
        s,
        now,
        actor,
        row,
        "job.admit",
        f"admitted on {placement or 'the control plane'}",
        attempt=row.attempt,
        placement=str(placement or "the control plane"),
    )
    return True


def started(s: Session, row: JobRow, at: float) -> bool:
    """ADMITTED -> RUNNING: its run was seen running (no audit record: the admission and the
    end say what happened)."""
    values = {"phase": Phase.RUNNING.value, "started_at": at, "reason": "running"}
    return _move(s, row, {Phase.ADMITTED}, values)


def request_stop(
    s: Session,
    row: JobRow,
    why: str,
    deadline: float,
    actor: str,
    now: float,
    event: str = "job.preempt",
) -> bool:
    """Ask the run of an ADMITTED or RUNNING job to stop by ``deadline`` (a preemption, or a
    move off a drained node: ``event`` says which); it goes back to the queue once it has."""
    values: dict[str, Any] = {"reason": why}
    if not row.stop_requested:
        values.update(stop_requested=True, stop_deadline=deadline)
    if not _move(s, row, ACTIVE, values):
        return False
    _event(s, now, actor, row, event, why, reason=why)
    return True


def cancel(s: Session, row: JobRow, actor: str, now: float, grace_s: float = 0.0) -> bool:
    """A PENDING job ends CANCELLED at once (final: it is never admitted after); an ADMITTED
    or RUNNING one is asked to stop, with ``grace_s`` to checkpoint, and ends CANCELLED when
    its run has. False if it had already ended (cancelling twice is not an error: the caller
    says what a cancel of an ended job means)."""
    before = Phase(row.phase)
    pending = {
        "phase": Phase.CANCELLED.value,
        "cancel_requested": True,
        "finished_at": now,
        "reason": f"cancelled by {actor}",
    }
    if not _move(s, row, {Phase.PENDING}, pending):
        running: dict[str, Any] = {
            "cancel_requested": True,
            "reason": f"cancel requested by {actor}; stopping",
        }
        if not row.stop_requested:
            running.update(stop_requested=True, stop_deadline=now + grace_s)
        if not _move(s, row, ACTIVE, running):
            return False
    _event(s, now, actor, row, "job.cancel", row.reason, phase=before.value)
    return True


@dataclass(frozen=True)
class Outcome:
    """How a run ended: its exit code (None if unknown) and whether the executor lost it."""

    exit_code: int | None
    lost: bool = False


def ended(s: Session, row: JobRow, outcome: Outcome, actor: str, now: float) -> Phase | None:
    """The current attempt of an ADMITTED or RUNNING job is over: CANCELLED if a cancel was
    asked, back to PENDING if it was preempted or its run lost, else SUCCEEDED or FAILED by its
    exit code. Returns the new phase (None if the job was not running)."""
    if not _in(row, ACTIVE):
        return None
    s.flush()
    s.refresh(row)  # (what is asked of it now: a cancel may have come meanwhile)
    if not _in(row, ACTIVE):
        return None
    code = outcome.exit_code
    if row.cancel_requested:
        phase, why = Phase.CANCELLED, "cancelled; its run stopped"
    elif row.concluded is not None:
        phase, why = Phase(row.concluded), row.reason
    elif row.stop_requested:
        phase, why = Phase.PENDING, "preempted; back in the queue, resumes from its checkpoint"
    elif outcome.lost and row.phase == Phase.RUNNING.value and row.losses + 1 >= MAX_LOST_RUNS:
        phase = Phase.FAILED
        why = (
            f"its run was lost {row.losses + 1} times in a row (its node, site or supervisor "
            "died, or its exit could not be recorded); not tried again"
        )
    elif outcome.lost:
        phase = Phase.PENDING
        why = "its run was lost (its node, site or supervisor died); back in the queue"
    elif code == 0:
        phase, why = Phase.SUCCEEDED, "exited 0"
    else:
        phase, why = Phase.FAILED, f"exited {code}"
    # a run seen running and then lost counts; one that never started (its node went down
    # first) does not; one that exited resets the count
    lost_running = outcome.lost and not row.stop_requested and row.phase == Phase.RUNNING.value
    values: dict[str, Any] = {
        "exit_code": code,
        "stop_requested": False,
        "stop_deadline": None,
        "reason": why,
        "phase": phase.value,
        "losses": row.losses + 1 if lost_running else (row.losses if outcome.lost else 0),
    }
    if phase is Phase.PENDING:
        values.update(placement=None, preemptions=row.preemptions + 1)
    else:
        values["finished_at"] = now
    also = [
        JobRow.attempt == row.attempt,
        JobRow.cancel_requested.is_(row.cancel_requested),
        JobRow.concluded.is_(None) if row.concluded is None else JobRow.concluded == row.concluded,
    ]
    if not _move(s, row, ACTIVE, values, *also):
        return ended(s, row, outcome, actor, now)  # a cancel came between: decide again
    _event(
        s,
        now,
        actor,
        row,
        f"job.{phase.value.lower()}",
        f"{phase.value.lower()} (attempt {row.attempt}): {why}",
        attempt=row.attempt,
        exit_code=code,
    )
    return phase


def conclude(
    s: Session, row: JobRow, phase: Phase, why: str, actor: str, now: float, grace_s: float
) -> bool:
    """A part of a federated run that has ended (``phase``) ends with it: a PENDING one at once,
    CANCELLED (it never ran); an ADMITTED or RUNNING one is asked to stop (``grace_s``) and
    ends in ``phase`` once its run has."""
    pending = {"phase": Phase.CANCELLED.value, "finished_at": now, "reason": why}
    if _move(s, row, {Phase.PENDING}, pending):
        _event(s, now, actor, row, "job.cancelled", why, reason=why)
        return True
    values: dict[str, Any] = {"concluded": phase.value, "reason": why}
    if not row.stop_requested:
        values.update(stop_requested=True, stop_deadline=now + grace_s)
    if not _move(s, row, ACTIVE, values, JobRow.concluded.is_(None)):
        return False
    _event(s, now, actor, row, "job.conclude", why, reason=why, phase=phase.value)
    return True


def fail(s: Session, row: JobRow, why: str, actor: str, now: float) -> bool:
    """ADMITTED -> FAILED: the job can never run as asked (its executor refuses it)."""
    values = {
        "phase": Phase.FAILED.value,
        "reason": f"the executor cannot run it: {why}",
        "finished_at": now,
    }
    if not _move(s, row, {Phase.ADMITTED}, values, JobRow.attempt == row.attempt):
        return False
    _event(s, now, actor, row, "job.failed", row.reason, attempt=row.attempt, error=why)
    return True
