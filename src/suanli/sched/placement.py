"""Free devices and where a job can go: gang, node, topology-group and residency rules.

Rules (all hard):
- a job gets devices of exactly one model, all or nothing;
- a single-node job stays on one node, and inside one topology group when it fits in one;
- a multi-node gang takes whole nodes whose device count equals its per-node size, all in one
  zone (sites of one region share a fabric; a site without a region is a zone of its own);
- devices of models with an allocation unit > 1 go in aligned units (an Ascend 910C's pair);
- every node is at a site the job's datasets allow.

Free state is indexed per model by each node's count of free devices, so a best-fit search
looks only at nodes that could hold the job, and a full pool answers in O(devices per node).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

from suanli.model.ids import ModelId, NodeId, SiteId
from suanli.model.job import Gang, JobSpec, Placement
from suanli.sched.pool import Pool, PoolNode, mask_of


class Gains(NamedTuple):
    """What giving back some placements of one model would free, counted per node."""

    #: the most free devices one gaining node would have
    best: int
    #: gaining nodes that would be wholly free, by their device count
    whole: Counter[int]
    #: the most free devices one gaining node of each site would have
    best_at: dict[SiteId, int]
    #: gaining nodes that would be wholly free, by (device count, zone)
    whole_in: Counter[tuple[int, str]]


def _bits(mask: int) -> list[int]:
    out = []
    i = 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return out


def _units(avail: int, unit: int, devices: int) -> list[int]:
    """Aligned unit start indexes whose devices are all in ``avail``."""
    if unit == 1:
        return _bits(avail)
    whole = (1 << unit) - 1
    return [s for s in range(0, devices, unit) if (avail >> s) & whole == whole]


#: choices of devices remembered at most (a pool of many shapes of wide nodes)
_PICKS_MAX = 1 << 18
#: (what a choice not remembered reads as)
_UNSEEN: tuple[int, ...] = (-1,)


def _pick(node: PoolNode, n: int, free: int) -> tuple[int, ...] | None:
    """``n`` devices of ``node`` in ``free``, by the topology and allocation-unit rules."""
    unit = node.alloc_unit
    if n == node.devices and n % unit == 0:  # (the whole node: all or nothing)
        return tuple(range(n)) if free == node.full_mask else None
    need = n // unit
    if n <= node.max_group:
        best: list[int] | None = None
        for g in node.group_masks:
            starts = _units(free & g, unit, node.devices)
            if len(starts) >= need and (best is None or len(starts) < len(best)):
                best = starts
                if len(best) == need:
                    break
        if best is None:
            return None
        chosen = best[:need]
    else:
        # Spans groups: fill the emptiest groups first so that fewer groups are split.
        per_group = sorted(
            ((_units(free & g, unit, node.devices)) for g in node.group_masks),
            key=lambda s: -len(s),
        )
        chosen = []
        for starts in per_group:
            chosen.extend(starts[: need - len(chosen)])
            if len(chosen) == need:
                break
        if len(chosen) < need:
            return None
    return tuple(sorted(d for s in chosen for d in range(s, s + unit)))


class FreeState:
    """Free devices, CPU and memory per node, with per-model buckets by free-device count.

    ``buckets[model][k]`` is an insertion-ordered set (a dict) of node indexes with exactly
    ``k`` free devices; iteration order is deterministic for a given history of changes.
    """

    __slots__ = (
        "_own",
        "buckets",
        "by_group",
        "by_model",
        "cpu",
        "free",
        "free_count",
        "kept",
        "mem",
        "pinned",
        "pinned_by_group",
        "pool",
        "schedulable",
    )

    def __init__(self, pool: Pool, schedulable: Iterable[bool] | None = None) -> None:
        self.pool = pool
        self.free = [n.full_mask for n in pool.nodes]
        self.cpu = [n.cpu for n in pool.nodes]
        self.mem = [n.memory_gb for n in pool.nodes]
        self.schedulable = (
            list(schedulable) if schedulable is not None else [True] * len(pool.nodes)
        )
        self.buckets: dict[ModelId, list[dict[int, None]]] = {
            m: [{} for _ in range(pool.max_devices[m] + 1)] for m in pool.models
        }
        self.free_count = 0
        #: free devices on schedulable nodes, per model
        self.by_model: dict[ModelId, int] = dict.fromkeys(pool.models, 0)
        #: free devices on schedulable nodes, per (model, site) group (:attr:`Pool.groups`)
        self.by_group: list[int] = [0] * len(pool.groups)
        #: models whose buckets this state alone holds (a copy shares the others until one
        #: of the two changes them: a pass's copy of the free state costs nothing per model)
        self._own: set[ModelId] = set(pool.models)
        #: per model, the (model, site) groups a job that may run anywhere takes last (jobs
        #: held to those sites wait for them: set for a pass by its policy)
        self.kept: dict[ModelId, frozenset[int]] = {}
        #: devices held by jobs no one can move (non-preemptible) per node, and the nodes
        #: that hold any per (model, site) group: no reclaim frees them
        self.pinned: list[int] = [0] * len(pool.nodes)
        self.pinned_by_group: list[int] = [0] * len(pool.groups)
        for n in pool.nodes:
            if self.schedulable[n.index]:
                self.buckets[n.model][n.devices][n.index] = None
                self.free_count += n.devices
                self.by_model[n.model] += n.devices
                self.by_group[n.group] += n.devices

    def copy(self) -> FreeState:
        new = FreeState.__new__(FreeState)
        new.pool = self.pool
        new.free = self.free.copy()
        new.cpu = self.cpu.copy()
        new.mem = self.mem.copy()
        new.schedulable = self.schedulable.copy()
        new.free_count = self.free_count
        new.by_model = self.by_model.copy()
        new.by_group = self.by_group.copy()
        new.buckets = self.buckets.copy()
        new.kept = self.kept
        new.pinned = self.pinned.copy()
        new.pinned_by_group = self.pinned_by_group.copy()
        new._own = set()
        self._own = set()  # (both copy a model's buckets before they change them)
        return new

    def _mine(self, model: ModelId) -> list[dict[int, None]]:
        """``model``'s buckets, copied first if they are shared with a copy."""
        bs = self.buckets[model]
        if model not in self._own:
            bs = self.buckets[model] = [b.copy() for b in bs]
            self._own.add(model)
        return bs

    # -- changes ---------------------------------------------------------------------------
    def take(self, placement: Placement, cpu: float, mem: float, pinned: bool = False) -> None:
        self._change(placement, cpu, mem, True, pinned)

    def give(self, placement: Placement, cpu: float, mem: float, pinned: bool = False) -> None:
        self._change(placement, cpu, mem, False, pinned)

    def _change(
        self, placement: Placement, cpu: float, mem: float, take: bool, pinned: bool
    ) -> None:
        """Take (or give back) ``placement``'s devices, CPU and memory, moving each node to
        the bucket of its new free count (every start and stop of a simulation passes here,
        twice: written for speed). ``pinned``: for (or from) a job no one can move."""
        index, nodes, free, on = self.pool.index, self.pool.nodes, self.free, self.schedulable
        model: ModelId | None = None
        buckets: list[dict[int, None]] = []
        for node_id, devices in placement.assignments:
            i = index[node_id]
            old = free[i]
            m = mask_of(devices)
            if take:
                if old & m != m:
                    raise ValueError(f"devices {devices} of node {node_id} are not free")
                new = old & ~m
                self.cpu[i] -= cpu
                self.mem[i] -= mem
            else:
                if old & m:
                    raise ValueError(f"devices {devices} of node {node_id} are already free")
                new = old | m
                self.cpu[i] += cpu
                self.mem[i] += mem
            if new == old:  # (no devices: only CPU and memory)
                continue
            if pinned:  # (the nodes such jobs hold, per group)
                k = self.pinned[i]
                self.pinned[i] = k + (len(devices) if take else -len(devices))
                if not k or not self.pinned[i]:
                    self.pinned_by_group[nodes[i].group] += 1 if take else -1
            if on[i]:
                node = nodes[i]
                if node.model != model:  # (once per placement: one model)
                    model = node.model
                    buckets = self._mine(model)
                k_old, k_new = old.bit_count(), new.bit_count()
                del buckets[k_old][i]
                buckets[k_new][i] = None
                self.free_count += k_new - k_old
                self.by_model[model] += k_new - k_old
                self.by_group[node.group] += k_new - k_old
            free[i] = new

    def set_schedulable(self, node_id: NodeId, on: bool) -> None:
        """Drain (``on=False``) or re-enable a node. Running jobs keep their devices."""
        i = self.pool.index[node_id]
        if self.schedulable[i] == on:
            return
        node = self.pool.nodes[i]
        k = self.free[i].bit_count()
        if on:
            self._mine(node.model)[k][i] = None
            self.free_count += k
            self.by_model[node.model] += k
            self.by_group[node.group] += k
        else:
            del self._mine(node.model)[k][i]
            self.free_count -= k
            self.by_model[node.model] -= k
            self.by_group[node.group] -= k
        self.schedulable[i] = on

    # -- queries ---------------------------------------------------------------------------
    def free_devices(self, model: ModelId) -> int:
        return self.by_model.get(model, 0)

    def gains(
        self,
        model: ModelId,
        freed: Iterable[Placement],
        sites: frozenset[SiteId] | None = None,
    ) -> Gains:
        """What giving back ``freed`` (placements on ``model``) would leave, by counting only:
        the most free devices on one schedulable node that gains (in all and per site), and
        how many gaining nodes would be wholly free, by their size (in all and per zone).
        ``sites``: count only the nodes there (for a job held to them). Input to
        :meth:`might_fit`."""
        gain: dict[int, int] = {}
        index = self.pool.index
        for p in freed:
            for node_id, devices in p.assignments:
                i = index[node_id]
                gain[i] = gain.get(i, 0) + len(devices)
        nodes, free, on = self.pool.nodes, self.free, self.schedulable
        if sites is not None:
            gain = {i: k for i, k in gain.items() if nodes[i].site in sites}
        best = 0
        best_at: dict[SiteId, int] = {}
        whole: Counter[int] = Counter()
        whole_in: Counter[tuple[int, str]] = Counter()
        for i, k in gain.items():
            if on[i]:
                node = nodes[i]
                avail = free[i].bit_count() + k
                best = max(best, avail)
                if avail > best_at.get(node.site, 0):
                    best_at[node.site] = avail
                if avail == node.devices:
                    whole[avail] += 1
                    whole_in[(avail, node.zone)] += 1
        return Gains(best, whole, best_at, whole_in)

    def might_fit(
        self,
        spec: JobSpec,
        model: ModelId,
        gains: Gains,
        nowhere: bool = False,
        sites: frozenset[SiteId] | None = None,
    ) -> bool:
        """A necessary condition, by counting only, for ``spec`` to fit on ``model`` once the
        placements summarized by ``gains`` are given back: some node would have enough free
        devices (one node), or enough nodes of one zone would be wholly free (a multi-node
        gang). False means no trial can succeed; True promises nothing (CPU, memory and
        topology are not looked at). ``nowhere``: the job fits on no node now, so for one
        node only a node that gains can take it; ``sites``: where the job may run (None:
        anywhere)."""
        buckets = self.buckets.get(model)
        gang = spec.gang
        n = gang.per_node
        if buckets is None or n >= len(buckets):
            return False
        if gang.nodes == 1:
            if nowhere and sites is not None:
                return max((gains.best_at.get(s, 0) for s in sites), default=0) >= n
            return gains.best >= n or (
                not nowhere and any(buckets[k] for k in range(n, len(buckets)))
            )
        if len(buckets[n]) + gains.whole[n] < gang.nodes:
            return False
        # one zone must hold them all: its wholly free nodes now and those that would be
        zones: Counter[str] = Counter()
        for (size, zone), c in gains.whole_in.items():
            if size == n:
                zones[zone] += c
        nodes = self.pool.nodes
        for i in buckets[n]:
            node = nodes[i]
            if node.devices == n and (sites is None or node.site in sites):
                zones[node.zone] += 1
        return any(c >= gang.nodes for c in zones.values())

    def _pick_devices(
        self, node: PoolNode, n: int, free: int | None = None
    ) -> tuple[int, ...] | None:
        """``n`` devices of ``node`` in its free mask (or in ``free``), by the topology and
        allocation-unit rules, or None (the same for every node of its shape: remembered)."""
        if free is None:
            free = self.free[node.index]
        picks = self.pool.picks
        key = (node.shape, free, n)
        got = picks.get(key, _UNSEEN)
        if got is _UNSEEN:
            got = _pick(node, n, free)
            if len(picks) < _PICKS_MAX:
                picks[key] = got
        return got

    def first_fitting(
        self,
        spec: JobSpec,
        model: ModelId,
        sites: frozenset[SiteId] | None,
        freed: Iterable[tuple[Placement, float, float]],
    ) -> int | None:
        """For a job that does not fit on ``model`` now: how many of ``freed`` (placements
        with their CPU and memory per node, in order) must be given back before it fits, or
        None if all of them are not enough. Nothing changes: the freed devices are counted per
        node, and only a node that just gained is looked at (the job fitted nowhere before).
        A one-node job fits on a node with the devices (by the topology rules), a gang once a
        zone has enough wholly free nodes."""
        gang = spec.gang
        n = gang.per_node
        nodes, index, on = self.pool.nodes, self.pool.index, self.schedulable
        gained: dict[int, tuple[int, float, float]] = {}
        whole: dict[str, int] = {}
        if gang.nodes > 1:  # the zones' wholly free nodes now
            buckets = self.buckets.get(model)
            for i in buckets[n] if buckets is not None and n < len(buckets) else ():
                node = nodes[i]
                if (
                    node.devices == n
                    and (sites is None or node.site in sites)
                    and self.cpu[i] >= spec.cpu
                    and self.mem[i] >= spec.memory_gb
                ):
                    whole[node.zone] = whole.get(node.zone, 0) + 1
        for k, (p, p_cpu, p_mem) in enumerate(freed):
            for node_id, devices in p.assignments:
                i = index[node_id]
                mask, cpu, mem = gained.get(i, (0, 0.0, 0.0))
                before = self.free[i] | mask
                mask |= mask_of(devices)
                cpu += p_cpu
                mem += p_mem
                gained[i] = (mask, cpu, mem)
                node = nodes[i]
                avail = self.free[i] | mask
                if (
                    not on[i]
                    or (sites is not None and node.site not in sites)
                    or self.cpu[i] + cpu < spec.cpu
                    or self.mem[i] + mem < spec.memory_gb
                ):
                    continue
                if gang.nodes == 1:
                    if avail.bit_count() >= n and self._pick_devices(node, n, avail) is not None:
                        return k + 1
                elif node.devices == n and avail == node.full_mask != before:
                    whole[node.zone] = whole.get(node.zone, 0) + 1
                    if whole[node.zone] >= gang.nodes:
                        return k + 1
        return None

    def fit(
        self, spec: JobSpec, model: ModelId, sites: frozenset[SiteId] | None
    ) -> Placement | None:
        """A placement for ``spec`` on ``model`` in the current free state, or None."""
        buckets = self.buckets.get(model)
        if buckets is None:
            return None
        if sites is not None:  # (the few nodes at those sites, not every free one)
            return self._fit_at(spec, model, self.pool.nodes_at(model, sites))
        if not spec.preemptible and self.pool.data_sites:
            # a job no one can move, and that may run anywhere, goes where no data resides
            # while there is room (at a data site it could keep the data's owner out for
            # good), else where its model has the most free devices at one site
            return self._fit_away(spec, model, buckets)
        kept = self.kept.get(model) if self.kept else None
        if kept:  # (the sites whose held jobs wait for this model: last)
            room = self.by_group
            if self.by_model[model] - sum(room[g] for g in kept) >= spec.count:
                p = self._fit_any(spec, model, buckets, kept)
                if p is not None:
                    return p
            # (too few free devices elsewhere: no need to look there first)
        return self._fit_any(spec, model, buckets)

    def keeps(self, placement: Placement) -> bool:
        """Whether ``placement`` takes devices of a group kept for jobs held to its site."""
        kept = self.kept.get(placement.model) if self.kept else None
        if not kept:
            return False
        index, nodes = self.pool.index, self.pool.nodes
        return any(nodes[index[n]].group in kept for n, _ in placement.assignments)

    def _fit_any(
        self,
        spec: JobSpec,
        model: ModelId,
        buckets: list[dict[int, None]],
        skip: frozenset[int] | None = None,
    ) -> Placement | None:
        """Best fit by free devices on any node (a gang: the first whole nodes of one zone),
        leaving out the nodes of the groups in ``skip``."""
        gang: Gang = spec.gang
        nodes = self.pool.nodes
        if gang.nodes == 1:
            n = gang.per_node
            for k in range(n, len(buckets)):
                for i in buckets[k]:
                    node = nodes[i]
                    if self.cpu[i] < spec.cpu or self.mem[i] < spec.memory_gb:
                        continue
                    if skip is not None and node.group in skip:
                        continue
                    if k == n == node.devices and n % node.alloc_unit == 0:
                        return node.whole
                    devices = self._pick_devices(node, n)
                    if devices is not None:
                        return Placement(model, ((node.id, devices),))
            return None
        if gang.per_node >= len(buckets):
            return None
        whole = buckets[gang.per_node]
        if skip is not None:
            return self._gang(spec, model, (i for i in whole if nodes[i].group not in skip))
        return self._gang(spec, model, whole)

    def _fit_away(
        self, spec: JobSpec, model: ModelId, buckets: list[dict[int, None]]
    ) -> Placement | None:
        """:meth:`_fit_any` among the nodes at no data site; failing that, at a data site
        (:meth:`_fit_data`)."""
        away = self._away(spec, model, buckets)
        return away if away is not None else self._fit_data(spec, model, buckets, False)

    def fit_sparing(self, spec: JobSpec, model: ModelId) -> Placement | None:
        """For a job no one can move: a placement at a data site that spares the site's
        nodes no such job holds (:meth:`_fit_data`), or None."""
        buckets = self.buckets.get(model)
        if buckets is None or not self.pool.data_sites:
            return None
        return self._fit_data(spec, model, buckets, True)

    def _fit_data(
        self, spec: JobSpec, model: ModelId, buckets: list[dict[int, None]], sparing: bool
    ) -> Placement | None:
        """A placement at a data site for a job no one can move. The (model, site) groups
        with the most nodes no such job holds go first (a gang held to a site's data can
        start only on such nodes, and no reclaim frees the others: a two-node site loses
        its gangs to one such job, a site of two hundred nodes nothing), then the roomiest;
        in a group, a node such jobs hold already first (the others stay whole), then best
        fit by free devices. ``sparing``: only on a node such jobs hold already, or in a
        group that keeps more than half its nodes free of them. A group's nodes are read,
        not every free node of the model: a full pool answers in O(group)."""
        nodes = self.pool.nodes
        gang = spec.gang
        room, held, groups = self.by_group, self.pinned_by_group, self.pool.group_nodes
        kept = self.kept.get(model, frozenset())
        more = gang.nodes

        def order(g: int) -> tuple[bool, int, int]:
            return (g in kept, held[g] + more - len(groups[g]), -room[g])

        def spares(g: int) -> bool:
            return not sparing or 2 * (len(groups[g]) - held[g] - more) > len(groups[g])

        if gang.nodes > 1:
            if gang.per_node >= len(buckets):
                return None
            whole = (i for i in buckets[gang.per_node] if spares(nodes[i].group))
            return self._gang(spec, model, sorted(whole, key=lambda i: order(nodes[i].group)))
        n = gang.per_node
        cpu, mem = self.cpu, self.mem
        free, on, pinned = self.free, self.schedulable, self.pinned
        for g in sorted((g for g in self.pool.data_groups[model] if room[g] >= n), key=order):
            clean = spares(g)
            fits = sorted(
                (not pinned[i], k, i)
                for i in groups[g]
                if on[i]
                and (clean or pinned[i])
                and (k := free[i].bit_count()) >= n
                and cpu[i] >= spec.cpu
                and mem[i] >= spec.memory_gb
            )
            for _, _, i in fits:
                devices = self._pick_devices(nodes[i], n)
                if devices is not None:
                    return Placement(model, ((nodes[i].id, devices),))
        return None

    def fit_away(self, spec: JobSpec, model: ModelId) -> Placement | None:
        """A placement for ``spec`` on ``model`` at no data site (best fit; a gang: the first
        whole nodes of one zone), or None."""
        buckets = self.buckets.get(model)
        return None if buckets is None else self._away(spec, model, buckets)

    def _away(
        self, spec: JobSpec, model: ModelId, buckets: list[dict[int, None]]
    ) -> Placement | None:
        nodes = self.pool.nodes
        gang = spec.gang
        n = gang.per_node
        if gang.nodes > 1:
            if n >= len(buckets):
                return None
            return self._gang(spec, model, (i for i in buckets[n] if not nodes[i].at_data_site))
        if model not in self.pool.away_models:
            return None
        cpu, mem = self.cpu, self.mem
        for k in range(n, len(buckets)):
            for i in buckets[k]:
                node = nodes[i]
                if node.at_data_site or cpu[i] < spec.cpu or mem[i] < spec.memory_gb:
                    continue
                devices = self._pick_devices(node, n)
                if devices is not None:
                    return Placement(model, ((node.id, devices),))
        return None

    def _gang(self, spec: JobSpec, model: ModelId, candidates: Iterable[int]) -> Placement | None:
        """The first ``gang.nodes`` wholly free nodes of one zone among ``candidates``."""
        gang = spec.gang
        nodes, free, on = self.pool.nodes, self.free, self.schedulable
        per_zone: dict[str, list[int]] = {}
        for i in candidates:
            node = nodes[i]
            if (
                not on[i]
                or node.devices != gang.per_node
                or free[i] != node.full_mask
                or self.cpu[i] < spec.cpu
                or self.mem[i] < spec.memory_gb
            ):
                continue
            chosen = per_zone.setdefault(node.zone, [])
            chosen.append(i)
            if len(chosen) == gang.nodes:
                return Placement(model, tuple([(nodes[j].id, nodes[j].every) for j in chosen]))
        return None

    def _fit_at(self, spec: JobSpec, model: ModelId, at: tuple[int, ...]) -> Placement | None:
        """:meth:`fit` among the nodes ``at`` (ascending indexes): best fit for one node (the
        fewest free devices that hold the job, then the lowest index), the lowest indexes
        of one zone for a gang."""
        gang = spec.gang
        nodes, free, on = self.pool.nodes, self.free, self.schedulable
        n = gang.per_node
        if gang.nodes == 1:
            best: tuple[int, PoolNode, tuple[int, ...]] | None = None
            for i in at:
                k = free[i].bit_count()
                if (
                    not on[i]
                    or k < n
                    or (best is not None and k >= best[0])
                    or self.cpu[i] < spec.cpu
                    or self.mem[i] < spec.memory_gb
                ):
                    continue
                devices = self._pick_devices(nodes[i], n)
                if devices is not None:
                    best = (k, nodes[i], devices)
                    if k == n:
                        break
            return None if best is None else Placement(model, ((best[1].id, best[2]),))
        return self._gang(spec, model, at)
