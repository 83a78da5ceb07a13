"""Service functions for the pool: the alliance, its members, sites and nodes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic
from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli.errors import ConflictError, NotFoundError, Problem, ValidationError
from suanli.model.alliance import Alliance
from suanli.model.ids import MemberId, NodeId
from suanli.model.node import NodeState
from suanli.sched.policy import Policy
from suanli.sched.schedule import schedule
from suanli.sched.snapshot import Snapshot
from suanli.service import lifecycle
from suanli.service.audit import record
from suanli.service.auth import Principal
from suanli.spec.alliance_file import DatasetEntry, NodeEntry
from suanli.spec.common import pydantic_problems
from suanli.store.alliance_rows import (
    bump_revision,
    has_alliance,
    node_row,
    parse_rows,
    read_alliance,
    write_alliance,
)
from suanli.store.snapshot import ACTIVE, build_snapshot
from suanli.store.tables import (
    AuditRow,
    DatasetRow,
    JobRow,
    MemberRow,
    NodeRow,
    ShareRow,
    SiteRow,
)


def create_alliance(s: Session, alliance: Alliance, actor: str, now: float) -> None:
    """Load a validated alliance into an empty database."""
    if has_alliance(s):
        raise ConflictError("the database already holds an alliance")
    write_alliance(s, alliance, now)
    record(
        s,
        now,
        actor,
        "alliance.create",
        f"alliance/{alliance.name}",
        members=len(alliance.members),
        nodes=len(alliance.nodes),
    )


# -- reads ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemberView:
    id: str
    name: str
    kind: str
    tier: str
    weight: float
    entitled_nu: float
    used_nu: float
    pending: int


@dataclass(frozen=True)
class SiteView:
    id: str
    member: str
    region: str
    #: the address of the site's own Ray cluster ("": the server's executor)
    executor: str
    #: what runs the site's jobs: ``slurm`` (the member's Slurm cluster), ``ray`` (its own
    #: Ray cluster) or ``server`` (the server's executor: local processes or embedded Ray)
    engine: str
    #: a Slurm site's partition ("" elsewhere, or Slurm's default partition)
    partition: str


@dataclass(frozen=True)
class NodeView:
    id: str
    site: str
    member: str
    model: str
    devices: int
    used: int
    cpu: float
    memory_gb: float
    state: str
    #: ``up``, or ``down`` (its Ray node died or its site is unreachable), and why
    health: str
    health_reason: str | None


@dataclass(frozen=True)
class ShareView:
    member: str
    model: str
    nominal: int
    borrowing_limit: int | None
    lending_limit: int | None
    used: int


@dataclass(frozen=True)
class DatasetView:
    id: str
    owner: str
    readers: list[str]
    residency_sites: list[str]
    residency_members: list[str]
    #: where its files lie, relative to DATA_ROOT/OWNER on the nodes of its sites
    path: str
    #: members whose federated runs may train on it without reading it
    federated_with: list[str]

    @classmethod
    def of(cls, r: DatasetRow) -> DatasetView:
        return cls(
            r.id,
            r.owner,
            r.readers,
            r.residency_sites,
            r.residency_members,
            r.path or r.id,
            r.federated_with or [],
        )


@dataclass(frozen=True)
class QueueEntry:
    id: str
    member: str
    position: int
    priority: int
    count: int
    models: list[str]
    submitted_at: float
    reason: str


@dataclass(frozen=True)
class AuditView:
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


def _snapshot(s: Session, now: float) -> tuple[Alliance, set[NodeId], Snapshot]:
    alliance, draining = read_alliance(s)
    return alliance, draining, build_snapshot(s, alliance, draining, now)


def members(s: Session, who: Principal, now: float) -> list[MemberView]:
    """Every member with its entitlement, its use (NU) and its queue (anyone signed in)."""
    _, _, snap = _snapshot(s, now)
    return [
        MemberView(
            m.id,
            m.name,
            m.kind,
            m.tier,
            m.weight,
            round(snap.entitlement_nu.get(MemberId(m.id), 0.0), 6),
            round(snap.used_nu.get(MemberId(m.id), 0.0), 6),
            snap.pending_count(MemberId(m.id)),
        )
        for m in s.scalars(select(MemberRow).order_by(MemberRow.id))
    ]


def sites(s: Session, who: Principal) -> list[SiteView]:
    return [
        SiteView(
            x.id,
            x.member,
            x.region,
            x.executor,
            "slurm" if x.slurm is not None else "ray" if x.executor else "server",
            str((x.slurm or {}).get("partition", "")),
        )
        for x in s.scalars(select(SiteRow).order_by(SiteRow.id))
    ]


def _node_usage(snap: Snapshot) -> dict[str, int]:
    """Devices in use per node."""
    used: dict[str, int] = {}
    for r in snap.running.values():
        for n, devs in r.placement.assignments:
            used[n] = used.get(n, 0) + len(devs)
    return used


def _node_view(s: Session, row: NodeRow, used: int = 0) -> NodeView:
    site = s.get(SiteRow, row.site)
    assert site is not None
    return NodeView(
        row.id,
        row.site,
        site.member,
        row.model,
        row.devices,
        used,
        row.cpu,
        row.memory_gb,
        row.state,
        row.health,
        row.health_reason,
    )


def nodes(s: Session, who: Principal, now: float) -> list[NodeView]:
    """Every node with its owner, use, state and health (anyone signed in)."""
    _, _, snap = _snapshot(s, now)
    used = _node_usage(snap)
    rows = s.scalars(select(NodeRow).order_by(NodeRow.id))
    return [_node_view(s, n, used.get(n.id, 0)) for n in rows]


def shares(s: Session, who: Principal, now: float) -> list[ShareView]:
    """Each member's share per model: nominal devices, limits and use (anyone signed in)."""
    _, _, snap = _snapshot(s, now)
    return [
        ShareView(
            member,
            model,
            sh.nominal,
            sh.borrowing_limit,
            sh.lending_limit,
            snap.used_devices.get((member, model), 0),
        )
        for (member, model), sh in sorted(snap.shares.items())
    ]


def queue(s: Session, who: Principal, policy: Policy, now: float) -> list[QueueEntry]:
    """Every pending job ``who`` may see, with its position in its member's queue and why it
    waits, from a dry pass of the scheduler over the current state (nothing is decided or
    changed)."""
    _, _, snap = _snapshot(s, now)
    result = schedule(snap, policy)
    admitted = {d.job for d in result.admits}
    visible = who.visible_members(None)
    return [
        QueueEntry(
            q.id,
            q.member,
            snap.queue_position(q.id),
            q.spec.priority,
            q.spec.count,
            sorted(q.spec.models),
            q.submitted_at,
            "would start at the next pass" if q.id in admitted else result.reason(snap, q.id),
        )
        for q in snap.fifo_queue()
        if visible is None or q.member in visible
    ]


# -- changes ----------------------------------------------------------------------------------
def _check(s: Session) -> None:
    """The changed alliance must still be valid as a whole (or the transaction rolls back);
    its revision moves so that every process re-reads it."""
    s.flush()
    parse_rows(s)
    bump_revision(s)


def register_node(s: Session, by: Principal, entry: dict[str, Any], now: float) -> NodeView:
    site = s.get(SiteRow, str(entry.get("site", "")))
    if site is None:
        raise NotFoundError(f"no site {entry.get('site')!r}")
    by.require_member_admin(site.member, "register nodes at sites")
    if s.get(NodeRow, str(entry.get("id", ""))) is not None:
        raise ConflictError(f"node {entry.get('id')!r} already exists")
    try:
        doc = NodeEntry.model_validate(entry)
    except pydantic.ValidationError as exc:
        raise ValidationError(pydantic_problems(exc), "node") from None
    if doc.count != 1:
        raise ValidationError([Problem("count", "register one node at a time")], "node")
    row = node_row(
        doc.id,
        doc.site,
        doc.model,
        doc.devices,
        doc.cpu,
        doc.memory_gb,
        doc.topology,
        doc.calibrated_tflops,
    )
    s.add(row)
    _check(s)
    record(s, now, by.name, "node.register", f"node/{doc.id}", model=doc.model)
    return _node_view(s, row)


def _node(s: Session, node_id: str) -> tuple[NodeRow, SiteRow]:
    row = s.get(NodeRow, node_id)
    if row is None:
        raise NotFoundError(f"no node {node_id!r}")
    site = s.get(SiteRow, row.site)
    assert site is not None
    return row, site


def drain_node(s: Session, by: Principal, node_id: str, on: bool, now: float) -> NodeView:
    """Close a node to new jobs (its running jobs stay), or open it again."""
    row, site = _node(s, node_id)
    by.require_member_admin(site.member, "drain nodes of sites")
    row.state = NodeState.DRAINING.value if on else NodeState.ACTIVE.value
    bump_revision(s)
    record(s, now, by.name, "node.drain" if on else "node.undrain", f"node/{node_id}")
    return _node_view(s, row)


def remove_node(s: Session, by: Principal, node_id: str, now: float) -> None:
    row, site = _node(s, node_id)
    by.require_member_admin(site.member, "remove nodes of sites")
    busy = [
        j.id
        for j in s.scalars(select(JobRow).where(JobRow.phase.in_(ACTIVE)))
        if j.placement and any(n == node_id for n, _ in j.placement["assignments"])
    ]
    if busy:
        raise ConflictError(
            f"node {node_id!r} runs {len(busy)} job(s) ({', '.join(busy[:5])}): drain it first"
        )
    before = {"site": row.site, "model": row.model, "devices": row.devices}
    s.delete(row)
    _check(s)
    record(s, now, by.name, "node.remove", f"node/{node_id}", **before)


def datasets(s: Session, by: Principal) -> list[DatasetView]:
    """The datasets ``by`` may see: alliance admins all; members those they own or read."""
    rows = list(s.scalars(select(DatasetRow).order_by(DatasetRow.id)))
    if by.admin:
        return [DatasetView.of(d) for d in rows]
    if by.member is None:
        return []
    return [DatasetView.of(d) for d in rows if d.owner == by.member or by.member in d.readers]


def create_dataset(s: Session, by: Principal, entry: dict[str, Any], now: float) -> DatasetView:
    try:
        doc = DatasetEntry.model_validate(entry)
    except pydantic.ValidationError as exc:
        raise ValidationError(pydantic_problems(exc), "dataset") from None
    by.require_member_admin(doc.owner, "create datasets")
    if s.get(MemberRow, doc.owner) is None:
        raise ValidationError([Problem("owner", f"no member {doc.owner!r}")], "dataset")
    if s.get(DatasetRow, doc.id) is not None:
        raise ConflictError(f"dataset {doc.id!r} already exists")
    row = DatasetRow(
        id=doc.id,
        owner=doc.owner,
        readers=sorted(doc.readers),
        federated_with=sorted(doc.federated_with),
        residency_sites=sorted(doc.residency.sites),
        residency_members=sorted(doc.residency.members),
        path=doc.path or "",
    )
    s.add(row)
    _check(s)
    record(s, now, by.name, "dataset.create", f"dataset/{doc.id}", owner=doc.owner)
    return DatasetView.of(row)


def set_share_limits(
    s: Session,
    by: Principal,
    member: str,
    model: str,
    borrowing_limit: int | None,
    lending_limit: int | None,
    now: float,
) -> ShareView:
    """An alliance admin sets a member's borrowing and lending limits for a model."""
    by.require_admin("change shares")
    if s.get(MemberRow, member) is None:
        raise NotFoundError(f"no member {member!r}")
    row = s.get(ShareRow, (member, model))
    if row is None:
        row = ShareRow(member=member, model=model)
        s.add(row)
    row.borrowing_limit = borrowing_limit
    row.lending_limit = lending_limit
    _check(s)
    record(
        s,
        now,
        by.name,
        "share.set",
        f"share/{member}/{model}",
        borrowing_limit=borrowing_limit,
        lending_limit=lending_limit,
    )
    for view in shares(s, by, now):
        if view.member == member and view.model == model:
            return view
    return ShareView(member, model, 0, borrowing_limit, lending_limit, 0)


def audit(s: Session, by: Principal, after: int = 0, limit: int = 100) -> list[AuditView]:
    by.require_admin("read the audit log")
    q = select(AuditRow).where(AuditRow.id > after).order_by(AuditRow.id).limit(limit)
    return [AuditView(r.id, r.at, r.actor, r.action, r.target, r.detail) for r in s.scalars(q)]


@dataclass(frozen=True)
class Move:
    job: str
    to: list[str]


@dataclass(frozen=True)
class Stay:
    job: str
    reason: str


@dataclass(frozen=True)
class DrainReport:
    nodes: list[str]
    moving: list[Move]
    staying: list[Stay]


def drain_many(
    s: Session,
    by: Principal,
    vendor: str | None,
    model: str | None,
    grace_s: float,
    now: float,
) -> DrainReport:
    """A supply-chain drill: drain every node of a vendor (or of a model) and move the jobs on
    them: each running job that accepts another model still in service is stopped with the
    grace period to checkpoint, then requeued (the scheduler places it elsewhere and it resumes
    from its checkpoint); the others keep running, and the report says why."""
    by.require_admin("drain by vendor or model")
    if (vendor is None) == (model is None):
        raise ValidationError([Problem("vendor", "give exactly one of vendor and model")])
    alliance, draining = read_alliance(s)
    catalog = alliance.catalog
    if vendor is not None:
        targets = {m.id for m in catalog if m.vendor.lower() == vendor.lower()}
        if not targets:
            raise NotFoundError(f"no accelerator model of vendor {vendor!r} in the catalog")
    else:
        targets = set(catalog.resolve(model or ""))
        if not targets:
            raise NotFoundError(f"unknown accelerator model {model!r}")
    nodes = {n.id for n in alliance.nodes.values() if n.model in targets}
    for row in s.scalars(select(NodeRow).where(NodeRow.id.in_(nodes))):
        row.state = NodeState.DRAINING.value
    bump_revision(s)
    still = {
        n.model
        for n in alliance.nodes.values()
        if n.model not in targets and n.id not in draining and n.id not in nodes
    }
    moving: list[Move] = []
    staying: list[Stay] = []
    for job in s.scalars(select(JobRow).where(JobRow.phase.in_(ACTIVE)).order_by(JobRow.seq)):
        if not job.placement or job.placement["model"] not in targets:
            continue
        others = sorted(set(job.spec["models"]) & still)
        if not others:
            accepts = ", ".join(job.spec["models"])
            why = f"no other acceptable model is in service (it accepts {accepts})"
            staying.append(Stay(job.id, why))
            continue
        if not job.spec.get("preemptible", True):
            staying.append(Stay(job.id, "not preemptible"))
            continue
        if not job.stop_requested:
            why = f"moving off drained {job.placement['model']} (to {', '.join(others)})"
            lifecycle.request_stop(s, job, why, now + grace_s, by.name, now, event="job.move")
        moving.append(Move(job.id, others))
    record(
        s,
        now,
        by.name,
        "pool.drain",
        f"pool/{vendor or model}",
        nodes=len(nodes),
        moving=len(moving),
        staying=len(staying),
    )
    return DrainReport(sorted(nodes), moving, staying)
