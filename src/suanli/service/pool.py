"""Service functions for the pool: the alliance, its members, sites and nodes."""

from __future__ import annotations

from typing import Any

import pydantic
from sqlalchemy import select
from sqlalchemy.orm import Session

from suanli.errors import ConflictError, NotFoundError, Problem, ValidationError
from suanli.model.alliance import Alliance
from suanli.model.ids import NodeId
from suanli.sched.policy import Policy
from suanli.sched.schedule import schedule
from suanli.sched.snapshot import Snapshot
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
def view(s: Session, now: float) -> tuple[Alliance, set[NodeId], Snapshot]:
    alliance, draining = read_alliance(s)
    return alliance, draining, build_snapshot(s, alliance, draining, now)


def nodes(s: Session) -> list[NodeRow]:
    return list(s.scalars(select(NodeRow).order_by(NodeRow.id)))


def node_usage(snap: Snapshot) -> dict[str, int]:
    """Devices in use per node."""
    used: dict[str, int] = {}
    for r in snap.running.values():
        for n, devs in r.placement.assignments:
            used[n] = used.get(n, 0) + len(devs)
    return used


def shares(snap: Snapshot) -> list[dict[str, Any]]:
    out = []
    for (member, model), sh in sorted(snap.shares.items()):
        out.append(
            {
                "member": member,
                "model": model,
                "nominal": sh.nominal,
                "borrowing_limit": sh.borrowing_limit,
                "lending_limit": sh.lending_limit,
                "used": snap.used_devices.get((member, model), 0),
            }
        )
    return out


def usage(snap: Snapshot) -> list[dict[str, Any]]:
    return [
        {
            "member": m,
            "entitled_nu": round(snap.entitlement_nu.get(m, 0.0), 6),
            "used_nu": round(snap.used_nu.get(m, 0.0), 6),
            "pending": snap.pending_count(m),
        }
        for m in sorted(snap.members)
    ]


def queue(s: Session, policy: Policy, now: float) -> list[dict[str, Any]]:
    """Every pending job with its position in its member's queue and why it waits, from a dry
    pass of the scheduler over the current state (nothing is decided or changed)."""
    _, _, snap = view(s, now)
    result = schedule(snap, policy)
    admitted = {d.job for d in result.admits}
    out = []
    for q in snap.fifo_queue():
        out.append(
            {
                "id": q.id,
                "member": q.member,
                "position": snap.queue_position(q.id),
                "priority": q.spec.priority,
                "count": q.spec.count,
                "models": sorted(q.spec.models),
                "submitted_at": q.submitted_at,
                "reason": "would start at the next pass"
                if q.id in admitted
                else result.reason(snap, q.id),
            }
        )
    return out


# -- changes ----------------------------------------------------------------------------------
def _check(s: Session) -> None:
    """The changed alliance must still be valid as a whole (or the transaction rolls back);
    its revision moves so that every process re-reads it."""
    s.flush()
    parse_rows(s)
    bump_revision(s)


def register_node(s: Session, by: Principal, entry: dict[str, Any], now: float) -> NodeRow:
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
    return row


def _node(s: Session, node_id: str) -> tuple[NodeRow, SiteRow]:
    row = s.get(NodeRow, node_id)
    if row is None:
        raise NotFoundError(f"no node {node_id!r}")
    site = s.get(SiteRow, row.site)
    assert site is not None
    return row, site


def drain_node(s: Session, by: Principal, node_id: str, on: bool, now: float) -> NodeRow:
    row, site = _node(s, node_id)
    by.require_member_admin(site.member, "drain nodes of sites")
    row.state = "draining" if on else "active"
    bump_revision(s)
    record(s, now, by.name, "node.drain" if on else "node.undrain", f"node/{node_id}")
    return row


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


def datasets(s: Session, by: Principal) -> list[DatasetRow]:
    rows = list(s.scalars(select(DatasetRow).order_by(DatasetRow.id)))
    if by.admin:
        return rows
    if by.member is None:
        return []
    return [d for d in rows if d.owner == by.member or by.member in d.readers]


def create_dataset(s: Session, by: Principal, entry: dict[str, Any], now: float) -> DatasetRow:
    try:
        doc = DatasetEntry.model_validate(entry)
    except pydantic.ValidationError as exc:
        raise ValidationError(pydantic_problems(exc), "dataset") from None
    by.require_member_admin(doc.owner, "create datasets")
    if s.get(DatasetRow, doc.id) is not None:
        raise ConflictError(f"dataset {doc.id!r} already exists")
    row = DatasetRow(
        id=doc.id,
        owner=doc.owner,
        readers=sorted(doc.readers),
        residency_sites=sorted(doc.residency.sites),
        residency_members=sorted(doc.residency.members),
        path=doc.path or "",
    )
    s.add(row)
    _check(s)
    record(s, now, by.name, "dataset.create", f"dataset/{doc.id}", owner=doc.owner)
    return row


def set_share_limits(
    s: Session,
    by: Principal,
    member: str,
    model: str,
    borrowing_limit: int | None,
    lending_limit: int | None,
    now: float,
) -> ShareRow:
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
    return row


def audit(s: Session, by: Principal, after: int = 0, limit: int = 100) -> list[AuditRow]:
    by.require_admin("read the audit log")
    q = select(AuditRow).where(AuditRow.id > after).order_by(AuditRow.id).limit(limit)
    return list(s.scalars(q))


def drain_many(
    s: Session,
    by: Principal,
    vendor: str | None,
    model: str | None,
    grace_s: float,
    now: float,
) -> dict[str, Any]:
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
        row.state = "draining"
    bump_revision(s)
    still = {
        n.model
        for n in alliance.nodes.values()
        if n.model not in targets and n.id not in draining and n.id not in nodes
    }
    moving, staying = [], []
    for job in s.scalars(select(JobRow).where(JobRow.phase.in_(ACTIVE)).order_by(JobRow.seq)):
        if not job.placement or job.placement["model"] not in targets:
            continue
        others = sorted(set(job.spec["models"]) & still)
        if not others:
            staying.append(
                {
                    "job": job.id,
                    "reason": "no other acceptable model is in service "
                    f"(it accepts {', '.join(job.spec['models'])})",
                }
            )
            continue
        if not job.spec.get("preemptible", True):
            staying.append({"job": job.id, "reason": "not preemptible"})
            continue
        if not job.stop_requested:
            job.stop_requested = True
            job.stop_deadline = now + grace_s
            job.reason = f"moving off drained {job.placement['model']} (to {', '.join(others)})"
        moving.append({"job": job.id, "to": others})
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
    return {"nodes": sorted(nodes), "moving": moving, "staying": staying}
