"""The pass context: what a policy reads and the only way it acts.

A policy never touches the snapshot; it asks the context to fit, admit, preempt, reclaim or
record why a job waits. The context keeps a working copy of free devices and usage so that a
pass sees its own admissions, and it does trial removals with undo for reclaim.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from suanli.model.ids import JobId, MemberId, ModelId, NodeId, SiteId
from suanli.model.job import JobSpec, Placement
from suanli.sched.decision import Admit, Decision, Preempt
from suanli.sched.placement import Gains
from suanli.sched.snapshot import Kind, QueuedJob, RunningJob, Snapshot

#: a reclaim's candidates per model, in the order given
ByModel = dict[ModelId, list[RunningJob]]
#: the jobs a reclaim on one model tries, in order, and what removing them all would free
Trial = tuple[list[RunningJob], Gains]


class Candidates:
    """Running jobs a reclaim may stop, in order, read per model and set of sites: what a
    policy's victims are, without the reclaim having to walk them all. ``on(model, sites)``
    is the candidates on ``model`` in their order (those that hold devices at one of
    ``sites``, if given), the same list object for the same arguments. ``name()`` tells
    the candidates of one key in one pass apart (equal names, the same jobs). A policy may
    keep its own structure (see ``alliance``); a plain list is wrapped in
    :class:`ListCandidates`."""

    def name(self) -> Hashable:
        raise NotImplementedError

    def on(self, model: ModelId, sites: frozenset[SiteId] | None) -> list[RunningJob]:
        raise NotImplementedError


class ListCandidates(Candidates):
    """The candidates of one ordered list: split by model once, then by site once per model
    (each set of sites, one per member's data and many in a pass, reads its sites only)."""

    def __init__(self, victims: Sequence[RunningJob], site_of: Mapping[NodeId, SiteId]) -> None:
        self.victims = victims
        self._site_of = site_of
        self._by_model: ByModel | None = None
        self._by_site: dict[ModelId, dict[SiteId, list[int]]] = {}
        self._at: dict[tuple[ModelId, frozenset[SiteId]], list[RunningJob]] = {}

    def name(self) -> Hashable:
        # (a policy's victims of one key only get more in a pass: their count names them)
        return len(self.victims)

    def on(self, model: ModelId, sites: frozenset[SiteId] | None) -> list[RunningJob]:
        if self._by_model is None:
            self._by_model = {}
            for v in self.victims:
                self._by_model.setdefault(v.placement.model, []).append(v)
        here = self._by_model.get(model)
        if here is None:
            here = self._by_model[model] = []
        if sites is None:
            return here
        got = self._at.get((model, sites))
        if got is None:
            groups = self._by_site.get(model)
            if groups is None:
                groups = self._by_site[model] = by_site(here, self._site_of)
            got = self._at[(model, sites)] = [here[i] for i in positions_at(sites, groups)]
        return got


class WithMoves(Candidates):
    """A policy's victims, then jobs that may be moved away, on each model."""

    def __init__(
        self, first: Candidates, then: Sequence[RunningJob], site_of: Mapping[NodeId, SiteId]
    ) -> None:
        self.first = first
        self.then = ListCandidates(then, site_of)
        self._on: dict[tuple[ModelId, frozenset[SiteId] | None], list[RunningJob]] = {}

    def name(self) -> Hashable:
        return (self.first.name(), self.then.name())

    def on(self, model: ModelId, sites: frozenset[SiteId] | None) -> list[RunningJob]:
        got = self._on.get((model, sites))
        if got is None:
            got = self._on[(model, sites)] = [
                *self.first.on(model, sites),
                *self.then.on(model, sites),
            ]
        return got


def by_site(
    jobs: Iterable[RunningJob], site_of: Mapping[NodeId, SiteId]
) -> dict[SiteId, list[int]]:
    """The positions of ``jobs`` grouped by each site they hold devices at, in order (a gang
    across sites is in each of its sites' groups)."""
    got: dict[SiteId, list[int]] = {}
    for k, r in enumerate(jobs):
        a = r.placement.assignments
        if len(a) == 1:
            s = site_of[a[0][0]]
            if (g := got.get(s)) is None:
                got[s] = [k]
            else:
                g.append(k)
        else:
            for s in dict.fromkeys(site_of[n] for n, _ in a):
                got.setdefault(s, []).append(k)
    return got


def positions_at(sites: frozenset[SiteId], groups: Mapping[SiteId, list[int]]) -> list[int]:
    """The positions of :func:`by_site`'s groups at ``sites``, in order and each once."""
    at = [g for s in sites if (g := groups.get(s))]
    if len(at) <= 1:
        return at[0] if at else []
    return sorted(set().union(*at))


def shape(q: QueuedJob) -> str:
    g = q.spec.gang
    return f"{q.spec.count} device(s)" if g.nodes == 1 else f"{g.nodes}x{g.per_node} whole nodes"


def describe(q: QueuedJob) -> str:
    return f"{shape(q)} of {'|'.join(sorted(q.spec.models))}"


class PassContext:
    """Working state of one pass."""

    def __init__(self, snapshot: Snapshot, held: Mapping[JobId, str] | None = None) -> None:
        self.snap = snapshot
        #: pending jobs this pass must leave alone, and why (a group that cannot start)
        self.held: Mapping[JobId, str] = held or {}
        self.now = snapshot.now
        self.free = snapshot.free.copy()
        self.used_devices = dict(snapshot.used_devices)
        self.used_nu = dict(snapshot.used_nu)
        self.fixed_nu = dict(snapshot.fixed_nu)
        self.decisions: list[Decision] = []
        self.reasons: dict[JobId, str] = {}
        self.admitted: set[JobId] = set()
        #: pending jobs a reclaim in this pass made room for: they start once victims stop
        self.reserved: set[JobId] = set()
        #: running jobs that are or will be stopping (issued earlier, or in this pass)
        self.stopping: set[JobId] = set(snapshot.stopping)
        #: stopping jobs already counted on by a reclaim in this pass
        self.claimed: set[JobId] = set()
        #: per member, why its queue stopped being served (for jobs the pass did not reach)
        self.member_blocked: dict[MemberId, str] = {}
        self.end_reason = ""
        self.examined = 0
        #: bumped whenever usage in the pass changes, so policies may cache sums over it
        self.version = 0
        #: bumped whenever the pass's free devices of a model change (reclaim's work on one
        #: model outlives admissions on others)
        self.model_version: dict[ModelId, int] = {}
        #: bumped whenever the stopping or the claimed jobs change
        self.stop_version = 0
        #: scratch space for a policy's per-pass caches (keyed by the policy's name)
        self.cache: dict[Hashable, Any] = {}
        self._no_fit: set[tuple[object, ...]] = set()
        #: reclaims found hopeless: (shape on a model, the candidates' key and count, how many
        #: jobs were stopping and claimed)
        self._no_reclaim: set[tuple[object, ...]] = set()
        #: where the jobs that reclaimed in this pass will run (the next pass holds it for them)
        self.reservations: dict[JobId, Placement] = {}
        #: the last pass's reservations, held from every other job until their own job is
        #: looked at: the free devices taken out, the jobs stopping on them claimed
        self._holding: dict[JobId, tuple[Placement, frozenset[JobId]]] = {}
        #: the stopping jobs a job's reservation counted on, once it is looked at again
        self._released: dict[JobId, frozenset[JobId]] = {}
        if snapshot.reservations:
            self._hold_reservations()

    @staticmethod
    def signature(q: QueuedJob) -> tuple[object, ...]:
        """What makes two jobs of a member interchangeable for placement."""
        s = q.spec
        return (s.member, s.gang, s.models, s.cpu, s.memory_gb, q.allowed_sites)

    # -- queues ----------------------------------------------------------------------------
    def fifo_queue(self) -> Iterator[QueuedJob]:
        """The pending jobs by submit time, less those held."""
        if not self.held:
            return self.snap.fifo_queue()
        return (q for q in self.snap.fifo_queue() if q.id not in self.held)

    def member_queue(self, member: MemberId) -> Iterator[QueuedJob]:
        """The member's pending jobs (:meth:`Snapshot.member_key` order), less those held."""
        if not self.held:
            return self.snap.member_queue(member)
        return (q for q in self.snap.member_queue(member) if q.id not in self.held)

    def kind_queues(self, member: MemberId) -> dict[Kind, Iterator[QueuedJob]]:
        """The member's pending jobs per kind (acceptable models and sites), each in queue
        order, less those held."""
        got = self.snap.kind_queues(member)
        if not self.held:
            return got
        held = self.held
        return {k: (q for q in it if q.id not in held) for k, it in got.items()}

    # -- placement -------------------------------------------------------------------------
    def _shape(self, q: QueuedJob, model: ModelId) -> tuple[object, ...]:
        s = q.spec
        return (model, s.gang, s.cpu, s.memory_gb, q.allowed_sites)

    def fit(self, q: QueuedJob, model: ModelId) -> Placement | None:
        """Where ``q`` fits on ``model`` now. Failures are remembered for the pass: free
        capacity only shrinks during a pass, so a shape that did not fit never will."""
        shape = self._shape(q, model)
        if shape in self._no_fit:
            return None
        p = self.free.fit(q.spec, model, q.allowed_sites)
        if p is None:
            self._no_fit.add(shape)
        return p

    def fit_away(self, q: QueuedJob, model: ModelId) -> Placement | None:
        """Where ``q`` fits on ``model`` now at no data site (failures remembered likewise)."""
        return self._remembered(q, model, "away", self.free.fit_away)

    def fit_sparing(self, q: QueuedJob, model: ModelId) -> Placement | None:
        """Where ``q`` (no one can move it) fits on ``model`` now at a data site sparing the
        site's nodes no such job holds (:meth:`FreeState.fit_sparing`; failures remembered
        likewise: a node such a job takes later in the pass becomes one this one could
        share, which the next pass looks at)."""
        return self._remembered(q, model, "sparing", self.free.fit_sparing)

    def fit_unkept(self, q: QueuedJob, model: ModelId) -> Placement | None:
        """Where ``q`` fits on ``model`` now outside the groups kept for jobs held to their
        sites (:attr:`FreeState.kept`), or None. For a job that may run anywhere a placement
        in those groups means none elsewhere (it takes them last, and free capacity only
        shrinks in a pass): remembered as a failure too."""
        if self._shape(q, model) in self._no_fit:
            return None
        if q.allowed_sites is not None:  # (its sites' groups, kept or not, are one choice)
            p = self.fit(q, model)
            return None if p is None or self.free.keeps(p) else p
        return self._remembered(q, model, "unkept", self._fit_unkept)

    def _fit_unkept(self, spec: JobSpec, model: ModelId) -> Placement | None:
        p = self.free.fit(spec, model, None)
        return None if p is None or self.free.keeps(p) else p

    def unfit(self, q: QueuedJob, model: ModelId) -> bool:
        """Whether ``q`` is known in this pass to fit nowhere on ``model`` (outside the kept
        groups, for :meth:`fit_unkept`): a check before the work of weighing a move."""
        shape = self._shape(q, model)
        return shape in self._no_fit or (*shape, "unkept") in self._no_fit

    def _remembered(
        self,
        q: QueuedJob,
        model: ModelId,
        kind: str,
        fit: Callable[[JobSpec, ModelId], Placement | None],
    ) -> Placement | None:
        shape = (*self._shape(q, model), kind)
        if shape in self._no_fit:
            return None
        p = fit(q.spec, model)
        if p is None:
            self._no_fit.add(shape)
        return p

    def fit_any(self, q: QueuedJob, models: Sequence[ModelId]) -> Placement | None:
        for m in models:
            p = self.fit(q, m)
            if p is not None:
                return p
        return None

    def nu_of(self, placement: Placement) -> float:
        return self.snap.nu_of(placement)

    def job_nu(self, q: QueuedJob, model: ModelId) -> float:
        return q.spec.count * self.snap.pool.model_nu(model)

    def has_free(self) -> bool:
        return self.free.free_count > 0

    # -- actions ---------------------------------------------------------------------------
    def admit(self, q: QueuedJob, placement: Placement, reason: str = "") -> None:
        self.free.take(placement, q.spec.cpu, q.spec.memory_gb, not q.spec.preemptible)
        key = (q.member, placement.model)
        self.used_devices[key] = self.used_devices.get(key, 0) + placement.devices
        nu = self.nu_of(placement)
        self.used_nu[q.member] = self.used_nu.get(q.member, 0.0) + nu
        if not q.spec.preemptible:
            self.fixed_nu[q.member] = self.fixed_nu.get(q.member, 0.0) + nu
        self.version += 1
        self._touched(placement.model)
        self.decisions.append(Admit(q.id, placement, reason))
        self.admitted.add(q.id)
        self.reasons.pop(q.id, None)

    def preempt(self, r: RunningJob, reason: str, grace_s: float) -> None:
        if r.id in self.stopping:
            return
        self.stopping.add(r.id)
        self.version += 1
        self.stop_version += 1
        if self.snap.instant_switch:  # (its devices are free for the rest of this pass)
            self._touched(r.placement.model)
            if r.id not in self.claimed:  # (a reclaim handed a victim's devices on already)
                self.free.give(r.placement, r.spec.cpu, r.spec.memory_gb, not r.spec.preemptible)
            key = (r.member, r.placement.model)
            self.used_devices[key] = self.used_devices.get(key, 0) - r.placement.devices
            self.used_nu[r.member] = self.used_nu.get(r.member, 0.0) - r.nu
            if not r.spec.preemptible:
                self.fixed_nu[r.member] = self.fixed_nu.get(r.member, 0.0) - r.nu
            self.claimed.add(r.id)
            self._no_fit.clear()
            self._no_reclaim.clear()
            grace_s = 0.0
        self.decisions.append(Preempt(r.id, reason, grace_s))

    def wait(self, q: QueuedJob, reason: str) -> None:
        self.reasons[q.id] = reason

    def hold(self, placement: Placement, spec: JobSpec) -> None:
        """``placement``'s devices are taken for the rest of the pass without an admission
        (they wait for a job that moves there once it has stopped)."""
        self.free.take(placement, spec.cpu, spec.memory_gb, not spec.preemptible)
        self._touched(placement.model)

    def _touched(self, model: ModelId) -> None:
        self.model_version[model] = self.model_version.get(model, 0) + 1

    # -- reservations ----------------------------------------------------------------------
    def _hold_reservations(self) -> None:
        """A job that reclaimed devices in the last pass waits for its victims to stop; the
        devices it counted on (free ones, and those of the jobs stopping for it) are its own
        until it is looked at again, so that no other job (nor another reclaim) takes them in
        the meantime and sends it to reclaim again."""
        snap = self.snap
        index = snap.pool.index
        wanted: dict[tuple[NodeId, int], JobId] = {}
        for jid, placement in sorted(snap.reservations.items()):
            q = snap.pending.get(jid)
            if q is None or jid in self.held:
                continue
            free_part: list[tuple[NodeId, tuple[int, ...]]] = []
            for node, devices in placement.assignments:
                i = index.get(node)
                if i is None or not self.free.schedulable[i]:
                    continue
                mask = self.free.free[i]
                kept = tuple(d for d in devices if mask >> d & 1)
                if kept:
                    free_part.append((node, kept))
                wanted.update(((node, d), jid) for d in devices)
            part = Placement(placement.model, tuple(free_part))
            self.free.take(part, q.spec.cpu, q.spec.memory_gb, not q.spec.preemptible)
            self._holding[jid] = (part, frozenset())
        stopping_for: dict[JobId, set[JobId]] = {}
        running = snap.running
        for rid in sorted(self.stopping):
            for node, devices in running[rid].placement.assignments:
                owner = next((o for d in devices if (o := wanted.get((node, d)))), None)
                if owner is not None:
                    stopping_for.setdefault(owner, set()).add(rid)
                    break
        for jid, rids in stopping_for.items():
            self._holding[jid] = (self._holding[jid][0], frozenset(rids))
            self.claimed |= rids

    def release(self, q: QueuedJob) -> None:
        """``q`` is looked at: what the last pass reserved for it is free again, for it
        first (its policy tries it now)."""
        got = self._holding.pop(q.id, None)
        if got is None:
            return
        part, rids = got
        self.free.give(part, q.spec.cpu, q.spec.memory_gb, not q.spec.preemptible)
        self.claimed -= rids
        self._released[q.id] = rids
        self.version += 1
        self.stop_version += 1
        self._touched(part.model)
        self._no_fit.clear()  # (free capacity grew: what did not fit may now)
        self._no_reclaim.clear()

    # -- reclaim ---------------------------------------------------------------------------
    def reclaim(
        self,
        q: QueuedJob,
        models: Sequence[ModelId],
        victims: Sequence[RunningJob] | Candidates,
        key: Hashable | None = None,
    ) -> tuple[ModelId, list[RunningJob]] | None:
        """Find the fewest victims, in the order given, whose removal lets ``q`` fit on one of
        ``models``. Jobs already stopping (and not claimed by another reclaim in this pass)
        are removed first at no cost. Nothing is changed; the caller preempts the victims.
        Returns the model and the victims that still need a preemption (may be empty: then
        the job only waits for stopping jobs to end). ``key``, if given, names ``victims``
        for this state of the pass (same key, same victims), so that the candidates per model
        and their counting bound are computed once. ``victims`` may be a policy's
        :class:`Candidates` (the same victims, read per model and sites)."""
        cands = self.candidates(victims, key)
        for model in models:
            # During a pass free devices only get fewer, and the candidates of one key only
            # more (their name tells them apart), as do the stopping and claimed jobs: a shape
            # that found no victims enough finds none until one of the three grows.
            seen = (self._shape(q, model), key, cands.name(), len(self.stopping), len(self.claimed))
            if key is not None and seen in self._no_reclaim:
                continue
            trial, gains = self._trial(model, cands, key, q.allowed_sites)
            # Cheap bound first: no node would be free enough even with every candidate gone
            # (where the job fits nowhere now, only a node that gains can take it).
            nowhere = self.fit(q, model) is None
            if nowhere and not self.free.might_fit(q.spec, model, gains, nowhere, q.allowed_sites):
                removed = None
            else:
                removed = self._enough(q, model, trial)
            if removed is None:
                if key is not None:
                    self._no_reclaim.add(seen)
            else:
                # drop victims that turned out unnecessary, from the last-added backwards
                needed = self._minimize(q, model, removed)
                self.claimed.update(r.id for r in needed)
                self.stop_version += 1
                self._reserve(q, model, needed)
                return model, [r for r in needed if r.id not in self.stopping]
        return None

    def await_stopping(
        self, q: QueuedJob, models: Sequence[ModelId], own: bool = False
    ) -> ModelId | None:
        """The first of ``models`` where the stopping jobs no reclaim counts on yet (``own``:
        of those, the ones ``q``'s reservation from the last pass counted on) make room for
        ``q``: reserved for it, as a reclaim's (no victim needs a preemption); None if there
        is none. A job whose reservation counted on stopping jobs trades them only for jobs
        that stop no later: else it would give up its own victims, which stop within its
        grace period, for jobs preempted after them, and start late (its own are taken by the
        call with ``own``)."""
        if len(self.claimed) >= len(self.stopping):  # (nothing loose: the claimed stop)
            return None
        loose = self.stopping - self.claimed
        mine = self._released.get(q.id, frozenset())
        if own:
            loose &= mine
        running, sites = self.snap.running, q.allowed_sites
        # (when the jobs it counted on free its devices: the last of them to stop)
        by = max((running[j].stop_at for j in mine & loose), default=math.inf)
        for model in models:
            on = sorted(
                (
                    r
                    for j in loose
                    if (r := running[j]).placement.model == model
                    and (sites is None or self._holds_at(r, sites))
                ),
                key=lambda r: (r.stop_at, r.id),
            )
            if not on:
                continue
            freed = ((r.placement, r.spec.cpu, r.spec.memory_gb) for r in on)
            k = self.free.first_fitting(q.spec, model, sites, freed)
            if k is None or (k and on[k - 1].stop_at > by):
                continue  # (the first k stop by the k-th's time: sorted so)
            needed = self._minimize(q, model, on[:k])
            self.claimed.update(r.id for r in needed)
            self.stop_version += 1
            self._reserve(q, model, needed)
            return model
        return None

    def _enough(
        self, q: QueuedJob, model: ModelId, trial: list[RunningJob]
    ) -> list[RunningJob] | None:
        """The shortest prefix of ``trial`` whose removal lets ``q`` fit on ``model``."""
        if self.free.fit(q.spec, model, q.allowed_sites) is not None:
            return []
        freed = ((r.placement, r.spec.cpu, r.spec.memory_gb) for r in trial)
        k = self.free.first_fitting(q.spec, model, q.allowed_sites, freed)
        return None if k is None else trial[:k]

    def _trial(
        self,
        model: ModelId,
        victims: Sequence[RunningJob] | Candidates,
        key: Hashable | None,
        sites: frozenset[SiteId] | None = None,
    ) -> Trial:
        """Stopping jobs not yet claimed (those that stop first, first: a job that reclaimed
        in an earlier pass finds its own victims again, or some that stop sooner), then the
        candidates, on ``model``; and their bound. For a job held to ``sites``, only the jobs
        that hold devices there: removing the others frees nothing it may take (and the
        fewest victims, found in order and minimized, are the same without them). (Worked out
        again only when the candidates on ``model``, its free devices, or the stopping jobs
        change.)"""
        on = self.candidates(victims, key).on(model, sites)
        ck = ("trial", key, model, sites)
        state = (on, self.model_version.get(model, 0), self.stop_version)
        if key is not None:
            hit: tuple[tuple[object, ...], Trial] | None = self.cache.get(ck)
            if hit is not None and hit[0][0] is on and hit[0][1:] == state[1:]:
                return hit[1]
        running, stopping = self.snap.running, self.stopping
        free_running = sorted(
            (
                r
                for j in stopping - self.claimed
                if (r := running[j]).placement.model == model
                and (sites is None or self._holds_at(r, sites))
            ),
            key=lambda r: (r.stop_at, r.id),
        )
        trial = [*free_running, *(r for r in on if r.id not in stopping)]
        out = (trial, self._gains(model, trial, sites))
        if key is not None:
            self.cache[ck] = (state, out)
        return out

    def candidates(
        self, victims: Sequence[RunningJob] | Candidates, key: Hashable | None
    ) -> Candidates:
        """``victims`` read per model and sites: a list is wrapped once per key and state of
        the pass, or as long as the policy gives the same list (those that have begun to
        stop since are still listed: a trial leaves them out)."""
        if isinstance(victims, Candidates):
            return victims
        ck = ("candidates", key)
        if key is not None:
            hit: tuple[Sequence[RunningJob], int, Candidates] | None = self.cache.get(ck)
            if hit is not None and (hit[0] is victims or hit[1] == self.version):
                return hit[2]
        got = ListCandidates(victims, self.snap.pool.site_of)
        if key is not None:
            self.cache[ck] = (victims, self.version, got)
        return got

    def _holds_at(self, r: RunningJob, sites: frozenset[SiteId]) -> bool:
        """Whether ``r`` holds devices at one of ``sites``."""
        site_of = self.snap.pool.site_of
        return any(site_of[n] in sites for n, _ in r.placement.assignments)

    def _gains(
        self, model: ModelId, trial: list[RunningJob], sites: frozenset[SiteId] | None = None
    ) -> Gains:
        """What removing ``trial`` would free on ``model`` (at ``sites``, if given): the order
        of the jobs does not matter, so it is reused while the same jobs (however ordered,
        for whichever candidates' key) and the model's free devices stay the same.
        (Borrowers' order changes with most admissions, the set of their jobs on a model
        seldom.)"""
        jobs = frozenset(map(id, trial))  # (the jobs live as long as the pass)
        ck = ("gains", model, jobs, sites)
        version = self.model_version.get(model, 0)
        hit: tuple[int, Gains] | None = self.cache.get(ck)
        if hit is not None and hit[0] == version:
            return hit[1]
        got = self.free.gains(model, (r.placement for r in trial), sites)
        self.cache[ck] = (version, got)
        return got

    def _reserve(self, q: QueuedJob, model: ModelId, victims: list[RunningJob]) -> None:
        """For the rest of the pass, the victims' devices belong to the reclaiming job: in the
        working free state they go from the victims to ``q``, so no other job (and no other
        reclaim) counts on them. ``q`` also counts against its member's share, so that a
        member cannot reclaim beyond its guarantee with several jobs in one pass."""
        for r in victims:
            self.free.give(r.placement, r.spec.cpu, r.spec.memory_gb, not r.spec.preemptible)
        placement = self.free.fit(q.spec, model, q.allowed_sites)
        if placement is None:  # _minimize checked this exact state
            raise AssertionError(f"reclaim for {q.id} lost its placement")
        self.free.take(placement, q.spec.cpu, q.spec.memory_gb, not q.spec.preemptible)
        # Devices of the victims that q does not take stay busy until the victims stop, and
        # so do their CPU and memory on every node they hold (q's come on top).
        mine = {(n, d) for n, devs in placement.assignments for d in devs}
        for r in victims:
            rest = tuple(
                (n, tuple(d for d in devs if (n, d) not in mine))
                for n, devs in r.placement.assignments
            )
            self.free.take(
                Placement(model, rest), r.spec.cpu, r.spec.memory_gb, not r.spec.preemptible
            )
        key = (q.member, model)
        self.version += 1
        self._touched(model)
        self.reserved.add(q.id)
        self.reservations[q.id] = placement
        self.used_devices[key] = self.used_devices.get(key, 0) + q.spec.count
        nu = self.job_nu(q, model)
        self.used_nu[q.member] = self.used_nu.get(q.member, 0.0) + nu
        if not q.spec.preemptible:
            self.fixed_nu[q.member] = self.fixed_nu.get(q.member, 0.0) + nu

    def _minimize(
        self, q: QueuedJob, model: ModelId, removed: list[RunningJob]
    ) -> list[RunningJob]:
        """Drop victims that turned out unnecessary, in one backward pass: with every victim
        removed, put each one back (last added first) and keep it running if q still fits."""
        for r in removed:
            self.free.give(r.placement, r.spec.cpu, r.spec.memory_gb, not r.spec.preemptible)
        keep: list[RunningJob] = []
        for r in reversed(removed):
            self.free.take(r.placement, r.spec.cpu, r.spec.memory_gb, not r.spec.preemptible)
            if self.free.fit(q.spec, model, q.allowed_sites) is None:
                self.free.give(r.placement, r.spec.cpu, r.spec.memory_gb, not r.spec.preemptible)
                keep.append(r)
        for r in keep:  # undo: the victims still hold their devices
            self.free.take(r.placement, r.spec.cpu, r.spec.memory_gb, not r.spec.preemptible)
        keep.reverse()
        return keep
