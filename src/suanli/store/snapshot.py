"""The scheduler's snapshot, built from the database: the same :class:`Snapshot` the simulator
keeps, filled from rows (pending jobs in submit order, running jobs with their placements,
stopping ones marked, draining nodes unschedulable)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from suanli.model.alliance import Alliance
from suanli.model.ids import JobId, NodeId
from suanli.model.job import Phase, Placement
from suanli.sched.snapshot import Snapshot
from suanli.store.codec import placement_from_json, placement_to_json, spec_from_json
from suanli.store.ledger_rows import usage_history
from suanli.store.tables import JobRow

ACTIVE = (Phase.ADMITTED.value, Phase.RUNNING.value)
#: the kind of a federated run's row (the scheduler sees its parts, never the run)
FEDERATED = "federated"


def build_snapshot(
    s: Session,
    alliance: Alliance,
    draining: set[NodeId],
    now: float,
    outside: Mapping[NodeId, int] | None = None,
) -> Snapshot:
    """``outside``: devices per node busy with work the pool did not start (a member's own
    Slurm jobs), held from every placement."""
    snap = Snapshot.from_alliance(alliance, now)
    for member, nu_s in usage_history(s, now).items():
        if member in snap.usage_history:
            snap.usage_history[member] = nu_s  # type: ignore[index]
    for node in sorted(draining):
        if node in alliance.nodes:
            snap.set_schedulable(node, False)
    rows = s.scalars(
        select(JobRow)
        .where(JobRow.phase.in_((Phase.PENDING.value, *ACTIVE)))
        .where(JobRow.cancel_requested.is_(False) | JobRow.phase.in_(ACTIVE))
        .where(JobRow.kind != FEDERATED)  # (a run holds no devices: its parts do)
        .order_by(JobRow.seq)
    )
    for row in rows:
        spec = spec_from_json(row.spec)
        snap.submit(spec, row.submitted_at, alliance.sites_for(spec))
        if row.phase == Phase.PENDING.value and row.reservation is not None:
            snap.reservations[JobId(row.id)] = placement_from_json(row.reservation)
        if row.phase in ACTIVE and row.placement is not None:
            snap.start(JobId(row.id), placement_from_json(row.placement), row.started_at or now)
            if row.stop_requested:
                snap.mark_stopping(JobId(row.id), row.stop_deadline)
    for node, devices in sorted((outside or {}).items()):
        if node in alliance.nodes:
            snap.hold(node, devices)
    return snap


def set_pending_reasons(s: Session, reasons: dict[str, str]) -> None:
    """Record why each of these jobs waits, if it still does (one bulk UPDATE)."""
    if not reasons:
        return
    table = cast(Table, JobRow.__table__)
    s.connection().execute(
        update(table)
        .where(table.c.id == bindparam("jid"), table.c.phase == Phase.PENDING.value)
        .values(reason=bindparam("why")),
        [{"jid": j, "why": why} for j, why in reasons.items()],
    )


def set_reservations(s: Session, reservations: Mapping[JobId, Placement]) -> None:
    """Keep the pass's reservations for the next one: these pending jobs hold these
    placements, and no other job holds any."""
    table = cast(Table, JobRow.__table__)
    s.connection().execute(
        update(table)
        .where(
            table.c.phase == Phase.PENDING.value,
            table.c.reservation.is_not(None),
            table.c.id.not_in(list(reservations)),
        )
        .values(reservation=None)
    )
    if reservations:
        s.connection().execute(
            update(table)
            .where(table.c.id == bindparam("jid"), table.c.phase == Phase.PENDING.value)
            .values(reservation=bindparam("where")),
            [{"jid": j, "where": placement_to_json(p)} for j, p in reservations.items()],
        )
