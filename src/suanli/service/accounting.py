"""The controller's bookkeeping: usage and capacity records into the ledger's real book.

- When a run ends, its usage since it was last accounted is recorded (one record per member
  whose nodes it ran on: the job's member borrowed from them, or used its own).
- Every ``interval_s`` (and so within the statement's period, whatever its length), the usage
  of every running job so far, and the capacity every active, healthy node offered since the
  last time, one record per member and model.

Records are written in the transaction that changes the job, so a crash records a run's
usage once or not at all; ``accounted_until`` on the job says how far its current attempt is
in the books.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli.ledger.record import Kind, Record, units_of
from suanli.model.alliance import Alliance
from suanli.model.ids import NodeId
from suanli.model.job import Phase
from suanli.model.node import NodeHealth, NodeState
from suanli.store.alliance_rows import read_alliance
from suanli.store.codec import placement_from_json
from suanli.store.ledger_rows import REAL, append, head
from suanli.store.tables import JobRow, NodeRow

log = logging.getLogger("suanli.accounting")


def usage_records(
    row: JobRow, alliance: Alliance, start: float, end: float, book: str = REAL
) -> list[Record]:
    if row.placement is None or end <= start:
        return []
    placement = placement_from_json(row.placement)
    devices: dict[str, int] = defaultdict(int)
    units: dict[str, float] = defaultdict(float)
    for node_id, devs in placement.assignments:
        node = alliance.nodes.get(NodeId(node_id))
        if node is None:
            log.warning("job %s ran on node %s, which is no longer in the pool", row.id, node_id)
            continue
        provider = alliance.owner(node)
        devices[provider] += len(devs)
        units[provider] += units_of(len(devs), alliance.nu_per_device(node), end - start)
    return [
        Record(
            book,
            Kind.USAGE,
            row.member,
            provider,
            placement.model,
            devices[provider],
            start,
            end,
            units[provider],
            row.id,
            row.attempt,
        )
        for provider in sorted(devices)
    ]


class Accountant:
    def __init__(self, interval_s: float = 300.0) -> None:
        self.interval_s = interval_s
        self._last: float | None = None

    def run_ended(self, s: Session, row: JobRow, started: float | None, end: float) -> None:
        """Record the usage of ``row``'s current attempt, which ran from ``started`` (None if
        it never started) to ``end``."""
        if started is None:
            return
        start = max(started, row.accounted_until or started)
        append(s, usage_records(row, read_alliance(s)[0], start, end))
        row.accounted_until = end

    def flush(self, s: Session, now: float, force: bool = False) -> None:
        if not force and self._last is not None and now - self._last < self.interval_s:
            return
        self._last = now
        alliance = read_alliance(s)[0]
        records: list[Record] = []
        for row in s.scalars(select(JobRow).where(JobRow.phase == Phase.RUNNING.value)):
            if row.started_at is None:
                continue
            start = max(row.started_at, row.accounted_until or row.started_at)
            records += usage_records(row, alliance, start, now)
            row.accounted_until = now
        h = head(s, REAL)
        since = h.capacity_until
        if since is not None and now > since:
            devices: dict[tuple[str, str], int] = defaultdict(int)
            units: dict[tuple[str, str], float] = defaultdict(float)
            offering = select(NodeRow.id).where(
                NodeRow.state == NodeState.ACTIVE.value, NodeRow.health == NodeHealth.UP.value
            )
            for node_id in s.scalars(offering):
                node = alliance.nodes.get(NodeId(node_id))
                if node is None:
                    continue
                key = (alliance.owner(node), node.model)
                devices[key] += node.devices
                units[key] += units_of(node.devices, alliance.nu_per_device(node), now - since)
            records += [
                Record(REAL, Kind.CAPACITY, m, m, model, devices[(m, model)], since, now, u)
                for (m, model), u in sorted(units.items())
            ]
        h.capacity_until = now
        append(s, records)
