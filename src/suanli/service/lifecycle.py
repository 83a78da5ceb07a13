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
on a job that changed meanwhile (cancelled while the scheduler admitted it) is dropped. Each
writes its audit record and its structured log line once, in the caller's transaction.

``request_stop`` and ``cancel`` only record what is wanted of a running job (``stop_requested``,
``cancel_requested``, the deadline); the run's end, observed by the controller, makes the
transition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from suanli.model.job import JobSpec, Phase, Placement
from suanli.service.audit import record
from suanli.store.codec import placement_to_json, spec_to_json
from suanli.store.tables import JobRow

log = logging.getLogger("suanli.controller")

#: phases a job can still be stopped in (a run is, or may be, under way)
ACTIVE = frozenset({Phase.ADMITTED, Phase.RUNNING})


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


def create(
    s: Session, spec: JobSpec, actor: str, now: float, sealed_secrets: str | None = None
) -> JobRow:
    """A new PENDING job."""
    row = JobRow(
        id=spec.id,
        member=spec.member,
        name=spec.name,
        spec=spec_to_json(spec),
        phase=Phase.PENDING.value,
        reason="submitted; waiting for the next scheduling pass",
        submitted_by=actor,
        submitted_at=now,
        secrets=sealed_secrets,
    )
    s.add(row)
    record(s, now, actor, "job.submit", f"job/{row.id}", member=spec.member)
    return row


def admit(s: Session, row: JobRow, placement: Placement, why: str, actor: str, now: float) -> bool:
    """PENDING -> ADMITTED on ``placement``, as a new attempt."""
    if not _in(row, {Phase.PENDING}) or row.cancel_requested:
        return False
    row.phase = Phase.ADMITTED.value
    row.attempt += 1
    row.placement = placement_to_json(placement)
    row.accounted_until = None
    row.reason = f"admitted: {why}" if why else "admitted"
    row.exit_code = None
    _event(
        s,
        now,
        actor,
        row,
        "job.admit",
        f"admitted on {placement}",
        attempt=row.attempt,
        placement=str(placement),
    )
    return True


def started(row: JobRow, at: float) -> bool:
    """ADMITTED -> RUNNING: its run was seen running (no audit record: the admission and the
    end say what happened)."""
    if not _in(row, {Phase.ADMITTED}):
        return False
    row.phase = Phase.RUNNING.value
    row.started_at = at
    row.reason = "running"
    return True


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
    if not _in(row, ACTIVE):
        return False
    if not row.stop_requested:
        row.stop_requested = True
        row.stop_deadline = deadline
    row.reason = why
    _event(s, now, actor, row, event, why, reason=why)
    return True


def cancel(s: Session, row: JobRow, actor: str, now: float) -> bool:
    """A PENDING job ends CANCELLED at once; an ADMITTED or RUNNING one is asked to stop and
    ends CANCELLED when its run has. False if it had already ended (cancelling twice is not an
    error: the caller says what a cancel of an ended job means)."""
    phase = Phase(row.phase)
    if phase.terminal:
        return False
    row.cancel_requested = True
    if phase is Phase.PENDING:
        row.phase = Phase.CANCELLED.value
        row.finished_at = now
        row.reason = f"cancelled by {actor}"
    else:
        row.stop_requested = True
        row.reason = f"cancel requested by {actor}; stopping"
    _event(s, now, actor, row, "job.cancel", row.reason, phase=phase.value)
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
    code = outcome.exit_code
    if row.cancel_requested:
        phase, why = Phase.CANCELLED, "cancelled; its run stopped"
    elif row.stop_requested:
        phase, why = Phase.PENDING, "preempted; back in the queue, resumes from its checkpoint"
    elif outcome.lost:
        phase = Phase.PENDING
        why = "its run was lost (its node, site or supervisor died); back in the queue"
    elif code == 0:
        phase, why = Phase.SUCCEEDED, "exited 0"
    else:
        phase, why = Phase.FAILED, f"exited {code}"
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
    row.exit_code = code
    row.stop_requested = False
    row.stop_deadline = None
    row.reason = why
    if phase is Phase.PENDING:
        row.phase = Phase.PENDING.value
        row.placement = None
        row.preemptions += 1
    else:
        row.phase = phase.value
        row.finished_at = now
    return phase


def fail(s: Session, row: JobRow, why: str, actor: str, now: float) -> bool:
    """ADMITTED -> FAILED: the job can never run as asked (its executor refuses it)."""
    if not _in(row, {Phase.ADMITTED}):
        return False
    row.phase = Phase.FAILED.value
    row.reason = f"the executor cannot run it: {why}"
    row.finished_at = now
    _event(s, now, actor, row, "job.failed", row.reason, attempt=row.attempt, error=why)
    return True
