"""What the dashboard's pages show, read straight from the database with aggregate queries
(no scheduler snapshot: a page over 2,000 nodes and 10,000 jobs must render in well under a
second). Each function takes the principal and shows it what it may see, as the API does."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from suanli.ledger.record import Kind
from suanli.model.job import Phase
from suanli.model.node import NodeHealth, NodeState
from suanli.service.auth import Principal
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


@dataclass(frozen=True)
class NodeLine:
    node: NodeRow
    vendor: str
    member: str
    busy: int


@dataclass(frozen=True)
class PoolOverview:
    #: aggregates by vendor, model and site
    groups: list[PoolRow]
    #: every node
    nodes: list[NodeLine]


def pool(s: Session, who: Principal) -> PoolOverview:
    """Aggregates by vendor, model and site; and every node with its vendor, member and use
    (the pool is every signed-in user's to see)."""
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
        g.down += n.health != NodeHealth.UP.value
        g.draining += n.state != NodeState.ACTIVE.value
        nodes.append(NodeLine(n, vendor, owner[n.site], used.get(n.id, 0)))
    return PoolOverview([groups[k] for k in sorted(groups)], nodes)


@dataclass(frozen=True)
class Waiting:
    id: str
    member: str
    position: int
    count: int
    models: list[str]
    submitted_at: float
    reason: str


@dataclass(frozen=True)
class WaitingPage:
    items: list[Waiting]
    #: how many wait in all
    total: int


def queue(s: Session, who: Principal, member: str, offset: int, limit: int) -> WaitingPage:
    """Pending jobs ``who`` may see (of ``member`` only, if given) in submit order, with their
    position in their member's queue and the reason the last pass gave."""
    members = who.visible_members({member} if member else None)
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
        Waiting(
            r.id,
            r.member,
            r.pos,
            (r.spec or {}).get("count", 0),
            (r.spec or {}).get("models", []),
            r.submitted_at,
            r.reason or "not examined yet",
        )
        for r in rows
    ]
    return WaitingPage(out, total)


def usage_series(
    s: Session, who: Principal, since: float, until: float, bucket_s: float = 3600.0
) -> tuple[list[float], dict[str, list[float]]]:
    """Average NU each member used per bucket, from the ledger's usage records (the
    members' use of the pool is every signed-in user's to see, as their shares are)."""
    n = max(1, int((until - since) // bucket_s))
    xs = [since + (k + 0.5) * bucket_s for k in range(n)]
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * n)
    rows = s.execute(
        select(LedgerRow.member, LedgerRow.start, LedgerRow.end, LedgerRow.units).where(
            LedgerRow.book == REAL,
            LedgerRow.kind == Kind.USAGE.value,
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


def job_counts(s: Session, who: Principal) -> dict[str, int]:
    """Jobs per phase, of the members ``who`` may see."""
    q = select(JobRow.phase, func.count()).group_by(JobRow.phase)
    members = who.visible_members(None)
    if members is not None:
        q = q.where(JobRow.member.in_(members))
    return {str(p): int(n) for p, n in s.execute(q).all()}


def reports(who: Principal, root: Path | None) -> list[Path]:
    """The simulator's HTML reports under ``root`` (relative paths): public results, for any
    signed-in user."""
    if root is None or not root.is_dir():
        return []
    return sorted(p.relative_to(root) for p in root.rglob("*.html"))


def report_file(who: Principal, root: Path | None, path: str) -> Path | None:
    """One file under ``root``, never outside it (None: no such file)."""
    if root is None or "\0" in path:
        return None
    base = root.resolve()
    try:  # (a name too long for the file system is no file either)
        target = (base / path).resolve()
        return target if target.is_relative_to(base) and target.is_file() else None
    except OSError:
        return None


@dataclass(frozen=True)
class MemberUse:
    id: str
    kind: str
    tier: str
    #: NU it is entitled to now
    entitled_nu: float
    #: NU it used, one value per bucket
    used_nu: list[float]


def member_use(
    s: Session, who: Principal, since: float, until: float
) -> tuple[list[float], list[MemberUse]]:
    """Each member's entitlement against its use, hourly (the bucket's middle times first)."""
    alliance = read_alliance(s)[0]
    entitled = alliance.entitlement_nu()
    xs, used = usage_series(s, who, since, until)
    return xs, [
        MemberUse(
            m,
            alliance.members[m].kind.value,
            alliance.members[m].tier.value,
            entitled.get(m, 0.0),
            used.get(m, [0.0] * len(xs)),
        )
        for m in sorted(alliance.members)
    ]
