"""The alliance in the database: written from a validated :class:`Alliance`, read back through
the same validation as an alliance file (so a database edited by hand cannot smuggle in what a
file could not say)."""

from __future__ import annotations

import secrets
import threading
import weakref
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from suanli.catalog.accelerator import Catalog
from suanli.errors import NotFoundError
from suanli.model.alliance import Alliance
from suanli.model.ids import NodeId
from suanli.model.node import NodeHealth, NodeState
from suanli.model.site import SlurmSite
from suanli.spec.alliance_file import parse_alliance
from suanli.store.database import per_engine
from suanli.store.tables import (
    AllianceRow,
    DatasetRow,
    GrantRow,
    MemberRow,
    NodeRow,
    ShareRow,
    SiteRow,
)


def slurm_document(slurm: SlurmSite | None) -> dict[str, Any] | None:
    """A Slurm site's settings as the alliance file writes them."""
    if slurm is None:
        return None
    return {
        "partition": slurm.partition,
        "account": slurm.account,
        "qos": slurm.qos,
        "command": list(slurm.command),
        "gres": dict(slurm.gres),
        "names": dict(slurm.names),
        "run_dir": slurm.run_dir,
    }


def write_alliance(s: Session, alliance: Alliance, now: float) -> None:
    """Insert every entity of ``alliance`` (into an empty database)."""
    s.add(AllianceRow(id=alliance.name, created_at=now, revision=1))
    for m in alliance.members.values():
        s.add(
            MemberRow(id=m.id, name=m.name, kind=m.kind.value, tier=m.tier.value, weight=m.weight)
        )
    s.flush()
    for site in alliance.sites.values():
        s.add(
            SiteRow(
                id=site.id,
                member=site.member,
                region=site.region,
                executor=site.executor,
                slurm=slurm_document(site.slurm),
            )
        )
    s.flush()
    for n in alliance.nodes.values():
        s.add(
            node_row(
                n.id,
                n.site,
                n.model,
                n.devices,
                n.cpu,
                n.memory_gb,
                n.topology,
                n.calibrated_tflops,
            )
        )
    for (member, model), lim in alliance.limits.items():
        s.add(
            ShareRow(
                member=member,
                model=model,
                borrowing_limit=lim.borrowing_limit,
                lending_limit=lim.lending_limit,
            )
        )
    for g in alliance.grants:
        s.add(GrantRow(member=g.member, model=g.model, devices=g.devices, donor=g.donor))
    for d in alliance.datasets.values():
        s.add(
            DatasetRow(
                id=d.id,
                owner=d.owner,
                readers=sorted(d.readers),
                federated_with=sorted(d.federated_with),
                residency_sites=sorted(d.resident_sites),
                residency_members=sorted(d.resident_members),
                path=d.path,
            )
        )


def node_row(
    nid: str,
    site: str,
    model: str,
    devices: int,
    cpu: float,
    memory_gb: float,
    topology: tuple[tuple[int, ...], ...] | list[list[int]],
    calibrated_tflops: float | None,
) -> NodeRow:
    return NodeRow(
        id=nid,
        site=site,
        model=model,
        devices=devices,
        cpu=cpu,
        memory_gb=memory_gb,
        topology=[list(g) for g in topology],
        calibrated_tflops=calibrated_tflops,
        state=NodeState.ACTIVE.value,
    )


def alliance_document(s: Session) -> dict[str, Any]:
    """The alliance as an alliance-file document, from the rows."""
    head = s.scalars(select(AllianceRow)).first()
    if head is None:
        raise NotFoundError("the database holds no alliance yet")
    return {
        "alliance": head.id,
        "members": [
            {"id": m.id, "name": m.name, "kind": m.kind, "tier": m.tier, "weight": m.weight}
            for m in s.scalars(select(MemberRow).order_by(MemberRow.id))
        ],
        "sites": [
            {
                "id": x.id,
                "member": x.member,
                "region": x.region,
                "executor": x.executor,
                **({"slurm": x.slurm} if x.slurm is not None else {}),
            }
            for x in s.scalars(select(SiteRow).order_by(SiteRow.id))
        ],
        "nodes": [
            {
                "id": n.id,
                "site": n.site,
                "model": n.model,
                "devices": n.devices,
                "cpu": n.cpu,
                "memory_gb": n.memory_gb,
                "topology": n.topology,
                "calibrated_tflops": n.calibrated_tflops,
            }
            for n in s.scalars(select(NodeRow).order_by(NodeRow.id))
        ],
        "shares": [
            {
                "member": x.member,
                "model": x.model,
                "borrowing_limit": x.borrowing_limit,
                "lending_limit": x.lending_limit,
            }
            for x in s.scalars(select(ShareRow).order_by(ShareRow.member, ShareRow.model))
        ],
        "grants": [
            {"member": g.member, "model": g.model, "devices": g.devices, "donor": g.donor}
            for g in s.scalars(select(GrantRow).order_by(GrantRow.id))
        ],
        "datasets": [
            {
                "id": d.id,
                "owner": d.owner,
                "readers": d.readers,
                "federated_with": d.federated_with or [],
                "residency": {"sites": d.residency_sites, "members": d.residency_members},
                **({"path": d.path} if d.path else {}),
            }
            for d in s.scalars(select(DatasetRow).order_by(DatasetRow.id))
        ],
    }


def parse_rows(s: Session, catalog: Catalog | None = None) -> tuple[Alliance, set[NodeId]]:
    """The alliance as the rows say now, and the nodes that take no new jobs (draining, or
    down)."""
    alliance = parse_alliance(alliance_document(s), "database", catalog)
    closed = {
        NodeId(n)
        for n in s.scalars(
            select(NodeRow.id).where(
                (NodeRow.state != NodeState.ACTIVE.value) | (NodeRow.health != NodeHealth.UP.value)
            )
        )
    }
    return alliance, closed


def bump_revision(s: Session) -> None:
    """Record that the alliance changed (in the transaction that changes it). The revision is
    random, never a counter: a rolled-back change's revision can never come back and be taken
    for a committed one."""
    s.execute(update(AllianceRow).values(revision=secrets.randbits(62)))


class AllianceCache:
    """The parsed alliance, re-read only when the database's revision moved (one small query
    per use instead of parsing every row)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revision: int | None = None
        self._value: tuple[Alliance, set[NodeId]] | None = None

    def get(self, s: Session) -> tuple[Alliance, set[NodeId]]:
        rev = s.scalar(select(AllianceRow.revision))
        if rev is None:
            raise NotFoundError("the database holds no alliance yet")
        with self._lock:
            if self._value is not None and rev == self._revision:
                return self._value
        value = parse_rows(s)
        with self._lock:
            self._revision, self._value = rev, value
        return value


_caches: weakref.WeakKeyDictionary[Engine, AllianceCache] = weakref.WeakKeyDictionary()


def read_alliance(s: Session) -> tuple[Alliance, set[NodeId]]:
    """The alliance and its closed nodes (draining or down), cached per database until its
    revision moves."""
    return per_engine(s, _caches, AllianceCache).get(s)


def has_alliance(s: Session) -> bool:
    return s.scalars(select(AllianceRow.id)).first() is not None
