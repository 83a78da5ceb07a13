"""Fluent builders for tests, in the manner of Kueue's MakeClusterQueue(...).Cohort(...)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

from suanli.catalog.accelerator import load_catalog
from suanli.model.alliance import Alliance, ShareLimits
from suanli.model.dataset import Dataset
from suanli.model.ids import DatasetId, JobId, MemberId, ModelId, NodeId, SiteId
from suanli.model.job import Gang, JobSpec
from suanli.model.member import Member, MemberKind, Tier
from suanli.model.node import Node
from suanli.model.share import Grant
from suanli.model.site import Site
from suanli.sched.snapshot import Snapshot
from suanli.service.auth import Principal, Role


@dataclass
class AllianceBuilder:
    name: str = "test"
    members: dict[MemberId, Member] = field(default_factory=dict)
    sites: dict[SiteId, Site] = field(default_factory=dict)
    nodes: dict[NodeId, Node] = field(default_factory=dict)
    datasets: dict[DatasetId, Dataset] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)
    limits: dict[tuple[MemberId, ModelId], ShareLimits] = field(default_factory=dict)

    def member(self, mid: str, tier: str = "contributor", weight: float = 1.0) -> Self:
        self.members[MemberId(mid)] = Member(
            MemberId(mid), mid, MemberKind.INSTITUTE, Tier(tier), weight
        )
        return self

    def site(self, sid: str, member: str, region: str = "") -> Self:
        self.sites[SiteId(sid)] = Site(SiteId(sid), MemberId(member), region)
        return self

    def nodes_of(
        self,
        site: str,
        model: str,
        count: int,
        devices: int = 8,
        topology: tuple[tuple[int, ...], ...] = (),
        cpu: float = 64,
        memory_gb: float = 512,
        calibrated: float | None = None,
    ) -> Self:
        for _ in range(count):
            nid = NodeId(f"{site}-n{len(self.nodes):03d}")
            self.nodes[nid] = Node(
                nid, SiteId(site), ModelId(model), devices, cpu, memory_gb, topology, calibrated
            )
        return self

    def dataset(
        self, did: str, owner: str, readers: tuple[str, ...] = (), sites: tuple[str, ...] = ()
    ) -> Self:
        self.datasets[DatasetId(did)] = Dataset(
            DatasetId(did),
            MemberId(owner),
            frozenset(MemberId(r) for r in readers),
            frozenset(SiteId(s) for s in sites),
        )
        return self

    def limit(
        self, member: str, model: str, borrowing: int | None = None, lending: int | None = None
    ) -> Self:
        self.limits[(MemberId(member), ModelId(model))] = ShareLimits(borrowing, lending)
        return self

    def grant(self, member: str, model: str, devices: int, donor: str | None = None) -> Self:
        self.grants.append(
            Grant(MemberId(member), ModelId(model), devices, MemberId(donor) if donor else None)
        )
        return self

    def build(self) -> Alliance:
        return Alliance(
            self.name,
            load_catalog(),
            self.members,
            self.sites,
            self.nodes,
            self.datasets,
            tuple(self.grants),
            self.limits,
        )


def job(
    jid: str,
    member: str,
    count: int,
    *models: str,
    nodes: int = 1,
    preemptible: bool = True,
    priority: int = 0,
    cpu: float = 1.0,
    datasets: tuple[str, ...] = (),
) -> JobSpec:
    return JobSpec(
        JobId(jid),
        MemberId(member),
        count,
        frozenset(ModelId(m) for m in models),
        Gang(nodes, count // nodes),
        cpu=cpu,
        preemptible=preemptible,
        priority=priority,
        datasets=tuple(DatasetId(d) for d in datasets),
    )


def snapshot(alliance: Alliance, *jobs: JobSpec, now: float = 0.0) -> Snapshot:
    snap = Snapshot.from_alliance(alliance, now)
    for i, j in enumerate(jobs):
        snap.submit(j, submitted_at=float(i), allowed_sites=alliance.sites_for(j))
    return snap


def admin(name: str = "tester") -> Principal:
    """An alliance admin, for tests that call service functions directly."""
    return Principal(name, Role.ALLIANCE_ADMIN, None)
