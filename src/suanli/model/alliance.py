"""Alliance: the aggregate of members, sites, nodes, datasets and the shares derived from them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from suanli.catalog.accelerator import Catalog
from suanli.errors import CalibrationRequiredError, Problem
from suanli.model.dataset import Dataset
from suanli.model.ids import DatasetId, MemberId, ModelId, NodeId, SiteId
from suanli.model.job import JobSpec
from suanli.model.member import Member
from suanli.model.node import Node
from suanli.model.share import Grant, Share
from suanli.model.site import Site


@dataclass(frozen=True, slots=True)
class ShareLimits:
    """Per-member limits declared in the alliance file (devices; None: unlimited)."""

    borrowing_limit: int | None = None
    lending_limit: int | None = None


@dataclass(frozen=True)
class Alliance:
    """A validated pool. Build it with :func:`suanli.spec.alliance_file.load_alliance`."""

    name: str
    catalog: Catalog
    members: Mapping[MemberId, Member]
    sites: Mapping[SiteId, Site]
    nodes: Mapping[NodeId, Node]
    datasets: Mapping[DatasetId, Dataset]
    grants: tuple[Grant, ...] = ()
    limits: Mapping[tuple[MemberId, ModelId], ShareLimits] = field(default_factory=dict)

    def owner(self, node: Node) -> MemberId:
        return self.sites[node.site].member

    def nu_per_device(self, node: Node) -> float:
        """Normalized units per device of ``node``: its calibration, else the catalog figure."""
        if node.calibrated_tflops is not None:
            return node.calibrated_tflops / 1000.0
        nu = self.catalog.get(node.model).nu_per_device
        if nu is None:  # load_alliance rejects such nodes; this guards hand-built alliances
            raise CalibrationRequiredError(
                [Problem(f"nodes.{node.id}.calibrated_tflops", "required for this model")]
            )
        return nu

    def contributed(self) -> dict[tuple[MemberId, ModelId], int]:
        """Devices each member contributed, per model."""
        out: dict[tuple[MemberId, ModelId], int] = defaultdict(int)
        for node in self.nodes.values():
            out[(self.owner(node), node.model)] += node.devices
        return dict(out)

    def shares(self) -> dict[tuple[MemberId, ModelId], Share]:
        """Nominal = contributed + grants received − grants given, per member and model."""
        nominal: dict[tuple[MemberId, ModelId], int] = defaultdict(int)
        for key, devices in self.contributed().items():
            nominal[key] += devices
        for g in self.grants:
            nominal[(g.member, g.model)] += g.devices
            if g.donor is not None:
                nominal[(g.donor, g.model)] -= g.devices
        keys = set(nominal) | set(self.limits)
        out: dict[tuple[MemberId, ModelId], Share] = {}
        for key in sorted(keys):
            lim = self.limits.get(key, ShareLimits())
            out[key] = Share(
                key[0], key[1], nominal.get(key, 0), lim.borrowing_limit, lim.lending_limit
            )
        return out

    def entitlement_nu(self) -> dict[MemberId, float]:
        """Each member's guarantee in normalized units: its nominal devices at the pool's
        average NU per device of each model (calibrations included)."""
        nu_sum: dict[ModelId, float] = defaultdict(float)
        dev_sum: dict[ModelId, int] = defaultdict(int)
        for node in self.nodes.values():
            nu_sum[node.model] += self.nu_per_device(node) * node.devices
            dev_sum[node.model] += node.devices
        out = dict.fromkeys(self.members, 0.0)
        for (member, model), share in self.shares().items():
            if dev_sum.get(model):
                out[member] += share.nominal * nu_sum[model] / dev_sum[model]
        return out

    def allowed_sites(self, datasets: tuple[DatasetId, ...]) -> frozenset[SiteId] | None:
        """Sites where a job reading ``datasets`` may run (None: anywhere)."""
        allowed: frozenset[SiteId] | None = None
        for ds_id in datasets:
            ds = self.datasets[ds_id]
            if not ds.restricted:
                continue
            here = set(ds.resident_sites)
            here.update(s.id for s in self.sites.values() if s.member in ds.resident_members)
            allowed = frozenset(here) if allowed is None else allowed & frozenset(here)
        return allowed

    def sites_for(self, spec: JobSpec) -> frozenset[SiteId] | None:
        """Sites where ``spec`` may run (None: anywhere): where its datasets may be processed,
        and for a job bound to its own nodes (a federated part) its member's sites only."""
        allowed = self.allowed_sites(spec.datasets)
        if not spec.own_nodes:
            return allowed
        own = frozenset(s.id for s in self.sites.values() if s.member == spec.member)
        return own if allowed is None else own & allowed
