"""The static side of the pool, flattened for speed: one integer index per node."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from suanli.model.alliance import Alliance
from suanli.model.ids import MemberId, ModelId, NodeId, SiteId
from suanli.model.job import JobSpec, Placement
from suanli.model.node import Node

_MASKS: dict[tuple[int, ...], int] = {}


def mask_of(devices: Iterable[int]) -> int:
    """The bit mask of ``devices`` (a tuple's is remembered: placements repeat a few)."""
    if type(devices) is tuple:
        m = _MASKS.get(devices)
        if m is not None:
            return m
    m = 0
    for d in devices:
        m |= 1 << d
    if type(devices) is tuple and len(_MASKS) < 1 << 16:
        _MASKS[devices] = m
    return m


@dataclass(frozen=True, slots=True)
class PoolNode:
    index: int
    id: NodeId
    site: SiteId
    zone: str
    owner: MemberId
    model: ModelId
    devices: int
    cpu: float
    memory_gb: float
    group_masks: tuple[int, ...]
    max_group: int
    alloc_unit: int
    nu_per_device: float
    #: whether a dataset resides at the node's site (jobs held to their data may need it)
    at_data_site: bool = False
    #: the node's (model, site) group: its index in :attr:`Pool.groups`
    group: int = 0
    #: nodes of one shape (devices, topology groups, allocation unit) share a number: a
    #: choice of devices made on one is the choice on all (:attr:`Pool.picks`)
    shape: int = 0
    #: every device's bit (a wholly free node's free mask)
    full_mask: int = field(init=False)
    #: every device's index (a whole node's placement)
    every: tuple[int, ...] = field(init=False)
    #: the placement of a job on the whole node (made once: placements are values)
    whole: Placement = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "full_mask", (1 << self.devices) - 1)
        object.__setattr__(self, "every", tuple(range(self.devices)))
        object.__setattr__(self, "whole", Placement(self.model, ((self.id, self.every),)))


class Pool:
    """Nodes with their owners, NU per device and topology masks; immutable."""

    def __init__(
        self,
        nodes: Iterable[Node],
        owner: Mapping[SiteId, MemberId],
        nu_per_device: Mapping[NodeId, float],
        alloc_unit: Mapping[ModelId, int],
        zone: Mapping[SiteId, str] | None = None,
        data_sites: Iterable[SiteId] = (),
    ):
        """``zone``: the fabric a site's nodes share with other sites (its region); a
        multi-node gang stays inside one zone. Default: every site is its own zone.
        ``data_sites``: the sites where datasets reside (see :attr:`PoolNode.at_data_site`)."""
        held = frozenset(data_sites)
        self.nodes: list[PoolNode] = []
        self.index: dict[NodeId, int] = {}
        #: the (model, site) pairs that have nodes, in the order first met
        self.groups: dict[tuple[ModelId, SiteId], int] = {}
        shapes: dict[tuple[object, ...], int] = {}
        for i, n in enumerate(nodes):
            groups = n.groups
            group = self.groups.setdefault((n.model, n.site), len(self.groups))
            masks = tuple(mask_of(g) for g in groups)
            unit = alloc_unit.get(n.model, 1)
            shape = shapes.setdefault((n.devices, masks, unit), len(shapes))
            self.nodes.append(
                PoolNode(
                    i,
                    n.id,
                    n.site,
                    (zone or {}).get(n.site) or n.site,
                    owner[n.site],
                    n.model,
                    n.devices,
                    n.cpu,
                    n.memory_gb,
                    masks,
                    max(len(g) for g in groups),
                    unit,
                    nu_per_device[n.id],
                    n.site in held,
                    group,
                    shape,
                )
            )
            self.index[n.id] = i
        self.models: tuple[ModelId, ...] = tuple(sorted({n.model for n in self.nodes}))
        self.max_devices: dict[ModelId, int] = {}
        self.devices_by_model: dict[ModelId, int] = {}
        self.nu_by_model: dict[ModelId, float] = {}
        for p in self.nodes:
            self.max_devices[p.model] = max(self.max_devices.get(p.model, 0), p.devices)
            self.devices_by_model[p.model] = self.devices_by_model.get(p.model, 0) + p.devices
            self.nu_by_model[p.model] = (
                self.nu_by_model.get(p.model, 0.0) + p.devices * p.nu_per_device
            )
        self.total_nu = sum(self.nu_by_model.values())
        #: whether some node is at a data site (else placement need not look)
        self.data_sites = any(p.at_data_site for p in self.nodes)
        #: each group's nodes (ascending); each model's groups at data sites; the models
        #: with nodes at no data site
        members: list[list[int]] = [[] for _ in self.groups]
        for p in self.nodes:
            members[p.group].append(p.index)
        self.group_nodes: list[tuple[int, ...]] = [tuple(x) for x in members]
        self.data_groups: dict[ModelId, tuple[int, ...]] = dict.fromkeys(self.models, ())
        for (m, _), g in self.groups.items():
            if self.nodes[self.group_nodes[g][0]].at_data_site:
                self.data_groups[m] += (g,)
        self.away_models = frozenset(p.model for p in self.nodes if not p.at_data_site)
        self._model_nu = {m: self.nu_by_model[m] / self.devices_by_model[m] for m in self.models}
        #: :meth:`model_nu` of every model, for loops that read it per model
        self.nu_per_device: Mapping[ModelId, float] = self._model_nu
        #: NU per device of the models whose nodes all have the same (most: a node's own
        #: calibration is rare), so that a placement's NU is one product
        self.uniform_nu: dict[ModelId, float] = {}
        per_model: dict[ModelId, set[float]] = {}
        for p in self.nodes:
            per_model.setdefault(p.model, set()).add(p.nu_per_device)
        for m, values in per_model.items():
            if len(values) == 1:
                self.uniform_nu[m] = next(iter(values))
        #: the devices a placement takes on a node of a shape, given its free mask and how
        #: many it needs (None: none fit), remembered (:meth:`FreeState._pick_devices`)
        self.picks: dict[tuple[int, int, int], tuple[int, ...] | None] = {}
        self._hosts: dict[tuple[object, ...], bool] = {}
        self._present: dict[tuple[object, ...], tuple[ModelId, ...]] = {}
        self._cheapest: dict[tuple[object, ...], float] = {}
        self._by_site: dict[tuple[ModelId, SiteId], list[int]] = {}
        for p in self.nodes:
            self._by_site.setdefault((p.model, p.site), []).append(p.index)
        #: each node's site, and the sites that have nodes of each model (in site order)
        self.site_of: dict[NodeId, SiteId] = {p.id: p.site for p in self.nodes}
        self.sites_of_model: dict[ModelId, tuple[SiteId, ...]] = {
            m: tuple(sorted(s for f, s in self._by_site if f == m)) for m in self.models
        }
        self._at: dict[tuple[ModelId, frozenset[SiteId]], tuple[int, ...]] = {}

    def nodes_at(self, model: ModelId, sites: frozenset[SiteId]) -> tuple[int, ...]:
        """Indexes of the nodes of ``model`` at ``sites``, ascending (cached per pair)."""
        key = (model, sites)
        got = self._at.get(key)
        if got is None:
            got = self._at[key] = tuple(
                sorted(i for s in sites for i in self._by_site.get((model, s), ()))
            )
        return got

    def could_host(self, spec: JobSpec, model: ModelId) -> bool:
        """Whether the empty pool could place ``spec`` on ``model``: a node with the devices,
        CPU and memory (one node), or enough such whole nodes in one zone (a gang). Sites and
        the current load are not looked at; the answer is cached per shape."""
        gang = spec.gang
        key = (model, gang, spec.cpu, spec.memory_gb)
        got = self._hosts.get(key)
        if got is None:
            ok = [
                n
                for n in self.nodes
                if n.model == model
                and n.cpu >= spec.cpu
                and n.memory_gb >= spec.memory_gb
                and (n.devices >= gang.per_node if gang.nodes == 1 else n.devices == gang.per_node)
            ]
            zones = Counter(n.zone for n in ok)
            got = self._hosts[key] = bool(ok) and max(zones.values()) >= gang.nodes
        return got

    def present(self, spec: JobSpec, sites: frozenset[SiteId] | None = None) -> tuple[ModelId, ...]:
        """``spec``'s acceptable models that the pool could host it on, in id order; for a job
        held to ``sites``, those of them with nodes there (cached per shape and sites)."""
        key = (spec.models, spec.gang, spec.cpu, spec.memory_gb, sites)
        got = self._present.get(key)
        if got is None:
            ok = (m for m in spec.models if m in self.devices_by_model)
            got = tuple(sorted(m for m in ok if self.could_host(spec, m)))
            if sites is not None:
                got = tuple(m for m in got if self.nodes_at(m, sites))
            self._present[key] = got
        return got

    def cheapest_nu(self, spec: JobSpec, sites: frozenset[SiteId] | None = None) -> float:
        """The NU ``spec`` holds on its cheapest present model (at ``sites``, for a job held
        to them; infinite: none; cached per shape and sites)."""
        key = (spec.models, spec.gang, spec.cpu, spec.memory_gb, sites)
        got = self._cheapest.get(key)
        if got is None:
            got = self._cheapest[key] = min(
                (spec.count * self._model_nu[m] for m in self.present(spec, sites)),
                default=math.inf,
            )
        return got

    def model_nu(self, model: ModelId) -> float:
        """Average NU per device of ``model`` in this pool."""
        return self._model_nu[model]

    def node(self, node_id: NodeId) -> PoolNode:
        return self.nodes[self.index[node_id]]

    @classmethod
    def from_alliance(cls, alliance: Alliance) -> Pool:
        return cls(
            alliance.nodes.values(),
            {s.id: s.member for s in alliance.sites.values()},
            {n.id: alliance.nu_per_device(n) for n in alliance.nodes.values()},
            {m.id: m.alloc_unit for m in alliance.catalog},
            {s.id: s.region for s in alliance.sites.values()},
            {s for d in alliance.datasets.values() for s in d.resident_sites},
        )
