"""What the dashboard's pages show, read straight from the database with aggregate queries
(no scheduler snapshot: a page over 2,000 nodes and 10,000 jobs must render in well under a
second)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanli.model.job import Phase
from suanli.store.alliance_rows import read_alliance
from suanli.store.ledger_rows import REAL
from suanli.store.snapshot import ACTIVE
from suanli.store.tables import JobRow, LedgerRow, NodeRow, SiteRow


@dataclass
class PoolRow:
    vendor: str
    model: str
    site: str
    member: str
    nodes: int
    devices: int
    busy: int
    down: int
    draining: int


def busy_by_node(s: Session) -> dict[str, int]:
    used: dict[str, int] = defaultdict(int)
    for (placement,) in s.execute(select(JobRow.placement).where(JobRow.phase.in_(ACTIVE))):
        for node, devs in (placement or {}).get("assignments", []):
            used[node] += len(devs)
    return used


def pool(s: Session) -> tuple[list[PoolRow], list[tuple[NodeRow, str, str, int]]]:
    """Aggregates by vendor, model and site; and every node with its vendor, member and use."""
    alliance = read_alliance(s)[0]
    owner = dict(s.execute(select(SiteRow.id, SiteRow.member)).all())
    used = busy_by_node(s)
    groups: dict[tuple[str, str, str], PoolRow] = {}
    nodes = []
    for n in s.scalars(select(NodeRow).order_by(NodeRow.id)):
        vendor = alliance.catalog.get(n.model).vendor
        key = (vendor, n.model, n.site)
        g = groups.get(key)
        if g is None:
            g = groups[key] = PoolRow(vendor, n.model, n.site, owner[n.site], 0, 0, 0, 0, 0)
        g.nodes += 1
        g.devices += n.devices
        g.busy += used.get(n.id, 0)
        g.down += n.health != "up"
        g.draining += n.state != "active"
        nodes.append((n, vendor, owner[n.site], used.get(n.id, 0)))
    return [groups[k] for k in sorted(groups)], nodes


def queue(
    s: Session, members: set[str] | None, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Pending jobs in submit order with their position in their member's queue and the
    reason the last pass gave."""
    pos = func.row_number().over(partition_by=JobRow.member, order_by=JobRow.seq).label("pos")
    inner = select(
        JobRow.id, JobRow.member, JobRow.seq, JobRow.spec, JobRow.reason, JobRow.submitted_at, pos
    ).where(JobRow.phase == Phase.PENDING.value)
    if members is not None:
        inner = inner.where(JobRow.member.in_(members))
    sub = inner.subquery()
    total = s.scalar(select(func.count()).select_from(sub)) or 0
    rows = s.execute(select(sub).order_by(sub.c.seq).offset(offset).limit(limit))
    out = [
        {
            "id": r.id,
            "member": r.member,
            "position": r.pos,
            "count": (r.spec or {}).get("count"),
            "models": (r.spec or {}).get("models", []),
            "submitted_at": r.submitted_at,
            "reason": r.reason or "not examined yet",
        }
        for r in rows
    ]
    return out, total


def usage_series(
    s: Session, since: float, until: float, bucket_s: float = 3600.0
) -> tuple[list[float], dict[str, list[float]]]:
    """Average NU each member used per bucket, from the ledger's usage records."""
    n = max(1, int((until - since) // bucket_s))
    xs = [since + (k + 0.5) * bucket_s for k in range(n)]
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * n)
    rows = s.execute(
        select(LedgerRow.member, LedgerRow.start, LedgerRow.end, LedgerRow.units).where(
            LedgerRow.book == REAL,
            LedgerRow.kind == "usage",
            LedgerRow.end > since,
            LedgerRow.start < until,
        )
    )
    for member, start, end, units in rows:
        if end <= start:
            continue
        rate = units * 3600.0 / (end - start)  # NU while it ran
        k0 = max(0, int((start - since) // bucket_s))
        k1 = min(n - 1, int((end - since) // bucket_s))
        for k in range(k0, k1 + 1):
            lo = max(start, since + k * bucket_s)
            hi = min(end, since + (k + 1) * bucket_s)
            if hi > lo:
                series[member][k] += rate * (hi - lo) / bucket_s
    return xs, dict(series)


def job_counts(s: Session) -> dict[str, int]:
    return dict(s.execute(select(JobRow.phase, func.count()).group_by(JobRow.phase)).all())
