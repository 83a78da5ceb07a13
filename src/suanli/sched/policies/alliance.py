"""``alliance``: the flagship policy. See docs/policies.md for the math.

1. Guarantee. Member m's entitlement E_m is what it contributed plus grants, in NU. While its
   usage U_m (NU held now) is below E_m it is served first, lowest U_m/E_m first; a job that
   keeps U_m + job ≤ E_m on a model it may run on (one with nodes at its sites, for a job
   held to them) is *guaranteed*: if it cannot fit, it reclaims by preempting borrowers'
   preemptible jobs, which get ``grace_s`` to checkpoint.
2. Lending. Idle capacity goes to anyone, in fair-tree order: the lowest
   (H_m + U_m·τ) / S_m first, where H_m is decayed past usage (NU-seconds, half-life set by the
   usage feed), τ = half-life / ln 2, and S_m = E_m·w_m (commons members: a floor share). So
   a member that borrowed much yields first, and reclaim takes from it first.
3. Placement. A job goes to the acceptable model where it runs fastest (measured throughput
   if known, else its NU); on ties, a model its member contributed, then the emptiest model;
   other models in that order if the best is full. (Speed per NU is what a member pays per
   unit of work; it is no reason to leave faster devices idle.) A job tries last the models
   that jobs of a narrower kind (fewer acceptable models) wait for: those can run nowhere
   else, it can (a flexible job that takes a contested chip leaves a job idle, not a chip).
   Likewise a job that may run anywhere takes last, on each model, the nodes at sites where
   jobs held there wait for more devices than are free, and no upgrade moves a job there: a
   site's nodes empty for the jobs that may run only there as its other jobs end.
4. Upgrades. Once every waiting job had its chance, devices still idle take running jobs from
   slower models: a preemptible job moves to the fastest model where it now fits when the
   time it saves there is worth the move. With switching free (the simulator's Gavel physics)
   every such move is; otherwise the job's past run time predicts what remains (a job that
   ran for T tends to run for about T more), and the move must save at least
   ``upgrade_factor`` grace periods: R·(1 − v_old/v_new) ≥ k·grace, and a borrower (a member
   over its entitlement after the move) moves only while ``upgrade_reserve`` of the model stays
   idle, for the lenders' next jobs (which would otherwise reclaim and wait a grace period).
   The job checkpoints within its grace period and is placed again (on the faster model,
   which nothing else was waiting for). Upgrades are looked for in every pass, or at most
   once per ``upgrade_every_s`` where that is set (never less often when switching is free).
5. Non-preemptible jobs run only within the guarantee: its member's non-preemptible jobs,
   counted alone, stay within E_m. The member's preemptible jobs beyond that are borrowed
   (reclaim may take them), so a member whose own borrowed jobs took it past E_m still starts
   its non-preemptible jobs, by reclaim from the borrowers (itself among them) if it must;
   within E_m, its own preemptible jobs are the last of their victims.
6. Moves. A guaranteed job that borrowers' jobs cannot make room for may move jobs of members
   within their guarantees, which checkpoint within the grace period and start again
   elsewhere: for a job held to its sites (its data may stay only there), the preemptible jobs
   that run there but are not held there (``residency_moves``: jobs that may run anywhere
   yield to jobs that may run only here); for a gang, preemptible one-node jobs held nowhere,
   those on the emptiest nodes first, so that whole nodes free up (``gang_moves``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable
from typing import ClassVar

from suanli.model.ids import MemberId, ModelId, SiteId
from suanli.model.job import Placement
from suanli.model.member import Tier
from suanli.sched.context import Candidates, PassContext
from suanli.sched.policy import register
from suanli.sched.rounds import GuaranteedSharing, present_models, speed
from suanli.sched.snapshot import QueuedJob, RunningJob, Snapshot

EPS = 1e-9


#: a running job behind its key, newest first (then by id)
Newest = tuple[float, str, RunningJob]
#: a member's preemptible jobs on a model sorted, with the snapshot and version of them it was
#: sorted at
_Kept = tuple[Snapshot, int, list[Newest]]
#: a job's models in tiers of equal speed, fastest first; the order when there are no ties;
#: the number naming the tiers
_Speeds = tuple[list[list[ModelId]], list[ModelId] | None, int]


@register
class AlliancePolicy(GuaranteedSharing):
    name: ClassVar[str] = "alliance"

    def __init__(
        self,
        grace_s: float = 300.0,
        half_life_s: float = 7 * 86400.0,
        commons_share: float = 0.02,
        max_skips: int = 64,
        upgrade_factor: float = 4.0,
        upgrade_reserve: float = 0.2,
        upgrade_every_s: float = 0.0,
        residency_moves: bool = True,
        gang_moves: bool = True,
        leave_wanted: bool = True,
    ) -> None:
        """``commons_share``: the fair-tree share of each commons member, as a fraction of
        the pool's NU (weighted by its weight); contributors' shares are their entitlements.
        ``upgrade_every_s``: look for upgrades at most this often (always every pass when
        switching is free). 0, the default, looks in every pass: on the msr jobs under
        suanli's physics looking once per grace period (5 min) cost 2.6 % of mean JCT (40.67
        to 41.72 h) and saved half the simulator's time (48.7 to 22.4 s); a pool of
        thousands of running jobs may trade the other way (a look scans them all)."""
        super().__init__(grace_s, max_skips)
        self.upgrade_every_s = upgrade_every_s or 0.0
        self._upgraded_at = -math.inf
        self.tau = half_life_s / math.log(2)
        self.commons_share = commons_share
        self.upgrade_factor = upgrade_factor
        self.upgrade_reserve = upgrade_reserve
        self.residency_moves = residency_moves
        self.gang_moves = gang_moves
        self.leave_wanted = leave_wanted
        #: per job, its models in tiers of equal speed, fastest first; the order itself when
        #: no two are equally fast (then nothing is sorted per pass); and a number naming the
        #: tiers (jobs with the same tiers share it: their orders are the same in one state)
        self._by_speed: dict[tuple[str, int], _Speeds] = {}
        self._tier_ids: dict[tuple[object, ...], int] = {}
        self._tier_base = 0
        #: per (member, model), its preemptible running jobs sorted, with the snapshot and
        #: the version of them it was sorted at
        self._preemptible_kept: dict[tuple[MemberId, ModelId], _Kept] = {}

    def _share(self, ctx: PassContext, m: MemberId) -> float:
        member = ctx.snap.members[m]
        e = ctx.snap.entitlement_nu.get(m, 0.0)
        if member.tier is Tier.COMMONS or e <= 0:
            e = max(e, self.commons_share * ctx.snap.pool.total_nu)
        return e * member.weight

    def _fairtree(self, ctx: PassContext, m: MemberId) -> float:
        usage = ctx.snap.usage_history.get(m, 0.0) + ctx.used_nu.get(m, 0.0) * self.tau
        return usage / self._share(ctx, m)

    def key(self, ctx: PassContext, q: QueuedJob) -> tuple[float, ...]:
        """Guaranteed heads first (lowest U/E), then borrowing heads in fair-tree order."""
        m = q.member
        e = ctx.snap.entitlement_nu.get(m, 0.0)
        u = self._counted(ctx, q)
        if u + ctx.snap.pool.cheapest_nu(q.spec, q.allowed_sites) <= e + EPS:
            return (0.0, u / e)
        return (1.0, self._fairtree(ctx, m))

    @staticmethod
    def _counted(ctx: PassContext, q: QueuedJob) -> float:
        """The usage ``q``'s guarantee is counted on: its member's, or for a non-preemptible
        job its member's non-preemptible jobs' only (the member's preemptible jobs beyond its
        entitlement are borrowed, and yield to it like anyone's)."""
        if q.spec.preemptible:
            return ctx.used_nu.get(q.member, 0.0)
        return ctx.fixed_nu.get(q.member, 0.0)

    def _speeds(self, ctx: PassContext, q: QueuedJob) -> _Speeds:
        """The job's models in tiers of equal speed, kept per job (and per measurement)."""
        key = (q.id, id(ctx.snap.throughput.get(q.id)))
        got = self._by_speed.get(key)
        if got is None:
            if len(self._by_speed) > 8 * (len(ctx.snap.pending) + len(ctx.snap.running)) + 1024:
                self._by_speed.clear()  # (jobs come and go)
            # (speed(ctx, q, f) for each model, inlined: once per job, but every job)
            known = ctx.snap.throughput.get(q.id) or {}
            nu = ctx.snap.pool.nu_per_device
            ranked = sorted(
                [(-known[f] if f in known else -nu[f], f) for f in present_models(ctx, q)]
            )
            order = [f for _, f in ranked]
            tiers: list[list[ModelId]] = []
            flat: list[ModelId] | None = order
            named: tuple[object, ...] = tuple(order)
            if len({v for v, _ in ranked}) < len(ranked):  # (ties: sorted in each pass)
                flat = None
                last = math.nan
                for v, f in ranked:
                    if v == last:
                        tiers[-1].append(f)
                    else:
                        tiers.append([f])
                        last = v
                named = tuple(map(tuple, tiers))
            ids = self._tier_ids
            # (numbers are never reused, so a pass never mistakes one order for another)
            n = ids.get(named)
            if n is None:
                if len(ids) > 100_000:
                    self._tier_base += len(ids)
                    ids.clear()
                n = ids[named] = self._tier_base + len(ids)
            got = self._by_speed[key] = (tiers, flat, n)
        return got

    def order_key(self, ctx: PassContext, q: QueuedJob) -> int:
        """The job's tiers of equal speed: beside its signature (member, shape, models) and
        the pass's state, they are all that decides its order and its guaranteed models."""
        return self._speeds(ctx, q)[2]

    def _models(self, ctx: PassContext, q: QueuedJob) -> list[ModelId]:
        """Fastest first; among equally fast models, one the member contributed, then the
        emptiest. (The order by speed is the job's own, kept per job: only ties are sorted in
        each pass.)"""
        tiers, flat, _ = self._speeds(ctx, q)
        if flat is not None:
            return list(flat)
        mine = self._contributed(ctx, q.member)
        free = ctx.free.by_model
        out: list[ModelId] = []
        for tier in tiers:
            n = len(tier)
            if n == 1:
                out.append(tier[0])
            elif n == 2:  # (the common tie, compared in place: a tier is in id order)
                a, b = tier
                ka, kb = (a not in mine, -free.get(a, 0)), (b not in mine, -free.get(b, 0))
                out.extend((b, a) if kb < ka else tier)
            else:
                out.extend(sorted(tier, key=lambda f: (f not in mine, -free.get(f, 0), f)))
        return out

    @staticmethod
    def _contributed(ctx: PassContext, m: MemberId) -> frozenset[ModelId]:
        """The models ``m`` contributed devices of (all members' read once per pass)."""
        every: dict[MemberId, frozenset[ModelId]] | None = ctx.cache.get("alliance-contributed")
        if every is None:
            sets: dict[MemberId, set[ModelId]] = {}
            for (who, f), share in ctx.snap.shares.items():
                if share.nominal > 0:
                    sets.setdefault(who, set()).add(f)
            every = ctx.cache["alliance-contributed"] = {
                who: frozenset(fs) for who, fs in sets.items()
            }
        return every.get(m, frozenset())

    def models(self, ctx: PassContext, q: QueuedJob) -> tuple[list[ModelId], set[ModelId]]:
        e = ctx.snap.entitlement_nu.get(q.member, 0.0)
        u = self._counted(ctx, q)
        order = self._models(ctx, q)
        nu, count = ctx.snap.pool.nu_per_device, q.spec.count  # (ctx.job_nu, inlined)
        guaranteed = {f for f in order if u + count * nu[f] <= e + EPS}
        if self.leave_wanted and len(order) > 1:
            wanted = self._wanted(ctx, q.spec.models)
            if wanted:  # (left to the jobs that can run only there)
                order = [f for f in order if f not in wanted] + [f for f in order if f in wanted]
        return order, guaranteed

    @staticmethod
    def _wanted(ctx: PassContext, models: frozenset[ModelId]) -> frozenset[ModelId]:
        """Models among ``models`` that jobs of a narrower kind wait for: a set of models,
        smaller than ``models``, whose pending jobs ask at least as many devices as it had
        free when the pass began. (Counted once per pass and kind.)"""
        ck = ("alliance-wanted", models)
        got: frozenset[ModelId] | None = ctx.cache.get(ck)
        if got is None:
            free = ctx.snap.free.free_devices
            out: set[ModelId] = set()
            for kind, want in ctx.snap.pending_devices.items():
                if kind < models and not kind <= out and want >= sum(map(free, kind)):
                    out |= kind
            got = ctx.cache[ck] = frozenset(out)
        return got

    def below_guarantee(self, ctx: PassContext, member: MemberId) -> bool:
        e = ctx.snap.entitlement_nu.get(member, 0.0) - EPS
        return ctx.used_nu.get(member, 0.0) < e or (
            ctx.snap.pending_fixed.get(member, 0) > 0 and ctx.fixed_nu.get(member, 0.0) < e
        )

    def refusal(self, ctx: PassContext, q: QueuedJob, model: ModelId, guaranteed: bool) -> str:
        if guaranteed or q.spec.preemptible:
            return ""
        m = q.member
        used = ctx.fixed_nu.get(m, 0.0)
        ck = ("alliance-refusal", m, model, q.spec.count, used)
        got: str | None = ctx.cache.get(ck)
        if got is None:  # (the same words for the member's jobs alike, while its usage holds)
            got = ctx.cache[ck] = (
                f"non-preemptible and {model} would take {m}'s non-preemptible jobs past its "
                f"guarantee ({used:.3f}+{ctx.job_nu(q, model):.3f} > "
                f"{ctx.snap.entitlement_nu.get(m, 0.0):.3f} NU)"
            )
        return got

    def _borrowers(self, ctx: PassContext) -> tuple[tuple[MemberId, ...], ...]:
        """Members over their entitlements, highest fair-tree key first, in groups of equal
        keys (whose jobs are merged)."""
        used, e = ctx.used_nu, ctx.snap.entitlement_nu
        ranked = sorted(
            (-self._fairtree(ctx, m), m)
            for m in ctx.snap.members
            if used.get(m, 0.0) > e.get(m, 0.0) + EPS
        )
        return tuple(
            tuple(m for _, m in tied) for _, tied in itertools.groupby(ranked, key=lambda x: x[0])
        )

    def own_victims(self, ctx: PassContext, q: QueuedJob) -> tuple[MemberId, bool] | None:
        """A non-preemptible job's member's own preemptible jobs are among its victims (it is
        within its guarantee on its non-preemptible jobs alone). First when they take it past
        its entitlement: those are borrowed now, so that no one else loses for it. Else last,
        after every borrower's: the member's own work, which may run anywhere and start again,
        yields to its job that can run only within the guarantee (without them, such a job
        whose borrowers' jobs were all claimed by the pass's other reclaims waited for
        another pass, and the reclaims of its member's later jobs went first)."""
        if q.spec.preemptible:
            return None
        m = q.member
        e = ctx.snap.entitlement_nu.get(m, 0.0)
        past = ctx.used_nu.get(m, 0.0) + ctx.snap.pool.cheapest_nu(q.spec, q.allowed_sites)
        return (m, past > e + EPS)

    def _groups(self, ctx: PassContext, q: QueuedJob) -> tuple[tuple[MemberId, ...], ...]:
        groups = self._borrowers(ctx)
        own = self.own_victims(ctx, q)
        if own is None:
            return groups
        m, first = own
        rest = tuple(mine for tied in groups if (mine := tuple(x for x in tied if x != m)))
        return ((m,), *rest) if first else (*rest, (m,))

    def candidates(self, ctx: PassContext, q: QueuedJob, models: list[ModelId]) -> Candidates:
        """:meth:`victims`, read per model and sites from each member's sorted jobs (the
        same candidates while the borrowers' order holds)."""
        groups = self._groups(ctx, q)
        ck = ("alliance-candidates", tuple(models), self.own_victims(ctx, q))
        hit: tuple[tuple[tuple[MemberId, ...], ...], Candidates] | None = ctx.cache.get(ck)
        if hit is not None and hit[0] == groups:
            return hit[1]
        got = _Borrowed(self, ctx, groups, models)
        ctx.cache[ck] = (groups, got)
        return got

    def victims(self, ctx: PassContext, q: QueuedJob, models: list[ModelId]) -> list[RunningJob]:
        """Borrowers' preemptible jobs: highest fair-tree key first, newest first (the
        member's own first, for a job of :meth:`own_victims`)."""
        groups = self._groups(ctx, q)
        # Each member's own order is fixed for the pass; only the members' order changes, and
        # most admissions leave it as it was: then the list is the same one (the same object,
        # so that reclaim's work on it is reused too)
        ck = ("alliance-victims", tuple(models), self.own_victims(ctx, q))
        hit: tuple[tuple[tuple[MemberId, ...], ...], list[RunningJob]] | None = ctx.cache.get(ck)
        if hit is not None and hit[0] == groups:
            return hit[1]
        out: list[RunningJob] = []
        for tied in groups:
            mine = [got for m in tied if (got := self._preemptible(ctx, models, m))]
            if not mine:
                continue
            # (merged on their keys, compared in C: ids are unique, so jobs never are)
            keyed = mine[0] if len(mine) == 1 else sorted(itertools.chain.from_iterable(mine))
            out.extend(r for *_, r in keyed)
        ctx.cache[ck] = (groups, out)
        return out

    def movable(self, ctx: PassContext, q: QueuedJob, models: list[ModelId]) -> list[RunningJob]:
        """Jobs of members within their guarantees that may move for ``q`` (rule 6b): for a
        job held to its sites, the preemptible jobs that run there but are not held there,
        newest first; for a gang that may run anywhere, the preemptible one-node jobs that are
        held nowhere, those on the emptiest nodes first (so that whole nodes free up)."""
        sites = q.allowed_sites
        if sites is not None:
            if not self.residency_moves:
                return []
        elif q.spec.gang.nodes == 1 or not self.gang_moves:
            return []
        snap = ctx.snap
        e = snap.entitlement_nu
        own = self.own_victims(ctx, q)  # (its jobs are among the victims already)
        mine = own[0] if own is not None else None
        out: list[RunningJob] = []
        for f in models:
            ck = ("alliance-movable", f, sites)
            here: list[tuple[float, float, str, RunningJob]] | None = ctx.cache.get(ck)
            if here is None:
                here = self._movable_on(snap, f, sites)
                ctx.cache[ck] = here
            out.extend(
                r
                for *_, r in here
                if ctx.used_nu.get(r.member, 0.0) <= e.get(r.member, 0.0) + EPS and r.member != mine
            )
        return out

    @staticmethod
    def _movable_on(
        snap: Snapshot, model: ModelId, sites: frozenset[SiteId] | None
    ) -> list[tuple[float, float, str, RunningJob]]:
        """The candidates of :meth:`movable` on ``model``, behind their sort keys (the
        running jobs do not change during a pass)."""
        at = snap.running_at
        if sites is not None:
            # (a job at several of these sites is listed once)
            here = {r.id: r for s in sites for r in at.get((model, s), {}).values()}
            return sorted(
                (0.0, -r.started_at, r.id, r)
                for r in here.values()
                if r.spec.preemptible
                and (r.job.allowed_sites is None or not r.job.allowed_sites <= sites)
            )
        index, free = snap.pool.index, snap.free.free
        return sorted(
            (-free[index[r.placement.assignments[0][0]]].bit_count(), -r.started_at, r.id, r)
            for s in snap.pool.sites_of_model.get(model, ())
            for r in at.get((model, s), {}).values()
            if r.spec.preemptible and r.spec.gang.nodes == 1 and r.job.allowed_sites is None
        )

    def _preemptible(
        self, ctx: PassContext, models: list[ModelId], member: MemberId
    ) -> list[Newest]:
        """``member``'s preemptible running jobs on ``models``, newest first, each behind its
        sort key. Sorted once per member and model while the member's running jobs on that
        model stay the same (the running jobs do not change during a pass, and most members'
        seldom between two)."""
        per_model = [got for f in models if (got := self._sorted(ctx, member, f))]
        if len(per_model) <= 1:
            return per_model[0] if per_model else []
        return sorted(itertools.chain.from_iterable(per_model))

    def _sorted(self, ctx: PassContext, member: MemberId, model: ModelId) -> list[Newest]:
        """``member``'s preemptible running jobs on ``model`` sorted, kept while they stay
        the same."""
        ck = ("alliance-preemptible", member, model)
        got: list[Newest] | None = ctx.cache.get(ck)
        if got is None:
            snap = ctx.snap
            version = snap.running_by_version.get((member, model), 0)
            kept = self._preemptible_kept.get((member, model))
            if kept is not None and kept[0] is snap and kept[1] == version:
                got = kept[2]
            else:
                got = [
                    (-r.started_at, r.id, r)
                    for r in snap.running_by.get((member, model), {}).values()
                    if r.spec.preemptible
                ]
                got.sort()
                self._preemptible_kept[(member, model)] = (snap, version, got)
            ctx.cache[ck] = got
        return got

    @staticmethod
    def _sorted_at(ctx: PassContext, model: ModelId, site: SiteId) -> dict[MemberId, list[Newest]]:
        """The preemptible jobs that hold devices of ``model`` at ``site``, per member, sorted
        as :meth:`_sorted` (once per pass: a site holds few of a model's jobs)."""
        ck = ("alliance-at", model, site)
        got: dict[MemberId, list[Newest]] | None = ctx.cache.get(ck)
        if got is None:
            got = {}
            for r in ctx.snap.running_at.get((model, site), {}).values():
                if r.spec.preemptible:
                    if (mine := got.get(r.member)) is None:
                        got[r.member] = [(-r.started_at, r.id, r)]
                    else:
                        mine.append((-r.started_at, r.id, r))
            for mine in got.values():
                mine.sort()
            ctx.cache[ck] = got
        return got

    def run(self, ctx: PassContext) -> None:
        if self.leave_wanted and ctx.snap.pending_held:
            ctx.free.kept = self._kept(ctx)
        super().run(ctx)
        self._upgrade(ctx)

    @staticmethod
    def _kept(ctx: PassContext) -> dict[ModelId, frozenset[int]]:
        """Per model, its (model, site) groups that jobs held to those sites wait for: the
        groups a kind of held job (sites and models) may use, when its pending jobs ask at
        least as many devices as those groups have free. A job that may run anywhere takes
        them last (rule 3)."""
        pool = ctx.snap.pool
        groups, room = pool.groups, ctx.free.by_group
        out: dict[ModelId, set[int]] = {}
        for (sites, models), want in ctx.snap.pending_held.items():
            mine = [(f, g) for f in models for s in sites if (g := groups.get((f, s))) is not None]
            if mine and want >= sum(room[g] for _, g in mine):
                for f, g in mine:
                    out.setdefault(f, set()).add(g)
        return {f: frozenset(gs) for f, gs in out.items()}

    def _upgrade(self, ctx: PassContext) -> None:
        """Idle faster devices take running jobs from slower models (rule 4): the largest
        speed-ups first. A job only moves to a model of more NU per device than its own (the
        pool's measure of speed) where it also runs faster."""
        if not ctx.has_free():
            return
        snap = ctx.snap
        if not snap.instant_switch:
            if 0 <= ctx.now - self._upgraded_at < self.upgrade_every_s:
                return
            self._upgraded_at = ctx.now
        pool = snap.pool
        free = {m for m in pool.models if ctx.free.free_devices(m)}
        nu = pool.nu_per_device
        top = max(nu[m] for m in free)
        stopping = ctx.stopping
        moves: list[tuple[float, float, str, RunningJob, list[tuple[ModelId, float]]]] = []
        # Only jobs that some idle faster model could take are sorted and weighed (_worth):
        # while the scan goes on no NU is counted anew (a move waits for its job to stop)
        # and devices only get taken, so a model closed to a job now stays closed to it.
        # Closed: too short a run so far for any saving to be worth a move, or a borrower's
        # move to a model already within its reserve. (Exact: no job left out could move.)
        lean = not snap.instant_switch
        used, ent = ctx.used_nu, snap.entitlement_nu
        free_now = {f: ctx.free.free_devices(f) for f in free}
        reserve = {f: self.upgrade_reserve * pool.devices_by_model[f] for f in free}
        bar = self.upgrade_factor * self.grace_s * (1.0 - 1e-9)
        now = ctx.now
        # Models a borrower may still move to: a reserve left after even a one-device job.
        # A borrower (over its entitlement by more than rounding) moves to no other unless
        # switching is free: on a model whose nodes all have one NU per device its job holds
        # count * nu[model] NU, and any faster model would add more.
        open_ = {f for f in free if free_now[f] - 1 >= reserve[f]}
        uniform = pool.uniform_nu
        reach: dict[tuple[ModelId, frozenset[ModelId]], tuple[bool, bool]] = {}
        # (every running job on a slower model that accepts a faster one with free devices,
        # of a member that may move there: the scan is the upgrade's cost, kept lean; most
        # jobs of a busy pool accept none, and most of the rest are borrowers')
        for (model, accepts, member), jobs in snap.running_by_accepts.items():
            here = nu[model]
            if not jobs or here >= top:
                continue
            up = reach.get((model, accepts))
            if up is None:
                faster_free = [f for f in accepts & free if nu[f] > here]
                up = reach[(model, accepts)] = (
                    bool(faster_free),
                    any(f in open_ for f in faster_free),
                )
            if not up[0]:
                continue
            if (
                lean
                and not up[1]
                and model in uniform
                and used.get(member, 0.0) > ent.get(member, 0.0) + EPS
            ):
                continue
            for jid, r in jobs.items():
                if jid in stopping or not r.spec.preemptible:
                    continue
                faster = r.memo.get("alliance-faster")
                if faster is None:
                    faster = self._faster(ctx, r)
                first: float | None = None  # (the largest saving among the idle models)
                may, ran = not lean, 0.0
                for f, saved in faster:
                    if f not in free:
                        continue
                    if first is None:
                        first = saved
                        if may:
                            break
                        before = r.memo.get("alliance-ran")
                        if before is None:  # (its earlier runs': constant while it runs)
                            before = r.memo["alliance-ran"] = sum(r.job.attained_s.values())
                        ran = before + now - r.started_at
                    if ran * saved < bar:
                        break  # (smaller savings follow)
                    count = r.spec.count
                    if (
                        used.get(r.member, 0.0) + count * nu[f] - r.nu
                        <= ent.get(r.member, 0.0) + EPS
                        or free_now[f] - count >= reserve[f]
                    ):
                        may = True
                        break
                if may and first is not None:
                    moves.append((-first, r.started_at, jid, r, faster))
        moves.sort(key=lambda m: m[:3])
        for _, _, _, r, faster in moves:
            for f, _ in faster:
                if f not in free or ctx.unfit(r.job, f) or not self._worth(ctx, r, f):
                    continue
                # (not onto devices kept for the jobs held to their site: a move can wait)
                placement = ctx.fit_unkept(r.job, f)
                if placement is not None:
                    self._move(ctx, r, placement)
                    break

    def _faster(self, ctx: PassContext, r: RunningJob) -> list[tuple[ModelId, float]]:
        """The models of more NU where ``r`` runs faster than where it runs, fastest first,
        each with the share of time a move there saves (remembered for the run)."""
        got: list[tuple[ModelId, float]] | None = r.memo.get("alliance-faster")
        if got is None:
            pool = ctx.snap.pool
            here = speed(ctx, r.job, r.placement.model)
            nu = pool.model_nu(r.placement.model)
            got = sorted(
                (
                    (f, 1.0 - here / v)
                    for f in present_models(ctx, r.job)
                    if pool.model_nu(f) > nu and (v := speed(ctx, r.job, f)) > here * (1 + EPS)
                ),
                key=lambda x: (-x[1], x[0]),
            )
            r.memo["alliance-faster"] = got
        return got

    def _worth(self, ctx: PassContext, r: RunningJob, model: ModelId) -> bool:
        if ctx.snap.instant_switch:
            return True
        # A borrower moves only while a reserve of the model stays idle for its lenders (a
        # lender's next job would otherwise have to reclaim and wait out a grace period)
        more = ctx.job_nu(r.job, model) - r.nu
        if ctx.used_nu.get(r.member, 0.0) + more > ctx.snap.entitlement_nu.get(r.member, 0.0) + EPS:
            left = ctx.free.free_devices(model) - r.spec.count
            if left < self.upgrade_reserve * ctx.snap.pool.devices_by_model[model]:
                return False
        ran = sum(r.job.attained_s.values()) + ctx.now - r.started_at
        saved = ran * (1.0 - speed(ctx, r.job, r.placement.model) / speed(ctx, r.job, model))
        return saved >= self.upgrade_factor * self.grace_s

    def _move(self, ctx: PassContext, r: RunningJob, placement: Placement) -> None:
        why = f"upgrade: {placement.model} is idle and faster for it than {r.placement.model}"
        ctx.preempt(r, why, self.grace_s)
        if ctx.snap.instant_switch:  # (switching is free: it runs there from this pass)
            ctx.admit(r.job, placement, why)
        else:  # (the devices wait for it: nobody else wanted them this pass)
            ctx.hold(placement, r.spec)


class _Borrowed(Candidates):
    """alliance's victims on some models, read per model and sites: the borrowers in groups
    of equal fair-tree keys (highest first), each group's jobs merged newest first. Built
    from each member's sorted jobs (at the sites asked for), never as one whole list."""

    def __init__(
        self,
        policy: AlliancePolicy,
        ctx: PassContext,
        groups: tuple[tuple[MemberId, ...], ...],
        models: list[ModelId],
    ) -> None:
        self._policy = policy
        self._ctx = ctx
        self._groups = groups
        self._models = frozenset(models)
        self._on: dict[tuple[ModelId, frozenset[SiteId] | None], list[RunningJob]] = {}
        self._name: frozenset[MemberId] | None = None

    def name(self) -> Hashable:
        # (in one pass the borrowers only get more: the same borrowers, the same jobs)
        if self._name is None:
            self._name = frozenset(m for tied in self._groups for m in tied)
        return self._name

    def on(self, model: ModelId, sites: frozenset[SiteId] | None) -> list[RunningJob]:
        got = self._on.get((model, sites))
        if got is not None:
            return got
        got = self._on[(model, sites)] = []
        if model not in self._models:
            return got
        ctx, policy = self._ctx, self._policy
        if sites is None:
            for tied in self._groups:
                mine = [x for m in tied if (x := policy._sorted(ctx, m, model))]
                if mine:
                    keyed = mine[0] if len(mine) == 1 else sorted(itertools.chain(*mine))
                    got.extend(r for *_, r in keyed)
            return got
        at = [policy._sorted_at(ctx, model, s) for s in sites]
        for tied in self._groups:
            here = [y for m in tied for per in at if (y := per.get(m))]
            if not here:
                continue
            if len(here) == 1:
                at_one = here[0]
            else:  # (a gang across two of the sites is listed at both: once)
                at_one = sorted({k[1]: k for k in itertools.chain(*here)}.values())
            got.extend(r for *_, r in at_one)
        return got
