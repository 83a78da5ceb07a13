"""``fair``: weighted fair sharing across members with Kueue's cohort semantics.

Each member is a ClusterQueue in one cohort (the alliance); each accelerator model is a
flavor. Per member and model: ``nominal`` devices are guaranteed, up to ``borrowing_limit``
more may be borrowed from others' unused nominal, and at most ``lending_limit`` of a member's
unused nominal may be lent. Members are served in order of their weighted borrowed share
(dominant over models, in NU); a job within its member's nominal that cannot fit reclaims
capacity by preempting borrowers' preemptible jobs, most-borrowing member first, newest job
first. A non-preemptible job runs only within nominal. See docs/policies.md.
"""

from __future__ import annotations

from typing import ClassVar

from suanli.model.ids import MemberId, ModelId
from suanli.sched.context import PassContext
from suanli.sched.policy import register
from suanli.sched.rounds import GuaranteedSharing, present_models
from suanli.sched.snapshot import QueuedJob, RunningJob

INF = float("inf")


@register
class FairPolicy(GuaranteedSharing):
    name: ClassVar[str] = "fair"
    guarantee_word = "nominal quota"

    # -- quota arithmetic ------------------------------------------------------------------
    @staticmethod
    def _nominal(ctx: PassContext, m: MemberId, f: ModelId) -> int:
        share = ctx.snap.shares.get((m, f))
        return share.nominal if share else 0

    @staticmethod
    def _used(ctx: PassContext, m: MemberId, f: ModelId) -> int:
        return ctx.used_devices.get((m, f), 0)

    def _borrowed_nu(self, ctx: PassContext, m: MemberId) -> float:
        pool = ctx.snap.pool
        return sum(
            max(0, self._used(ctx, m, f) - self._nominal(ctx, m, f)) * pool.model_nu(f)
            for f in pool.models
        )

    def key(self, ctx: PassContext, q: QueuedJob) -> tuple[float, ...]:
        """Kueue's order: heads that fit within nominal quota first, then the member with the
        lowest weighted borrowed share, then the lowest weighted usage."""
        m = q.member
        weight = ctx.snap.members[m].weight
        borrows = not any(
            self._used(ctx, m, f) + q.spec.count <= self._nominal(ctx, m, f)
            for f in present_models(ctx, q)
        )
        return (
            float(borrows),
            self._borrowed_nu(ctx, m) / weight,
            ctx.used_nu.get(m, 0.0) / weight,
        )

    def _lend_borrow(self, ctx: PassContext, m: MemberId, f: ModelId) -> tuple[float, float]:
        """What m lends (unused nominal, within its lending limit) and borrows on f."""
        nom, used = self._nominal(ctx, m, f), self._used(ctx, m, f)
        share = ctx.snap.shares.get((m, f))
        limit = share.lending_limit if share and share.lending_limit is not None else INF
        return min(limit, max(0, nom - used)), max(0, used - nom)

    def _cohort(self, ctx: PassContext, f: ModelId) -> tuple[float, float]:
        """Sums over all members of lendable and borrowed devices of f, cached per pass
        version (they change only when the pass admits or reserves)."""
        cache: dict[ModelId, tuple[int, float, float]] = ctx.cache.setdefault(self.name, {})
        hit = cache.get(f)
        if hit is not None and hit[0] == ctx.version:
            return hit[1], hit[2]
        lendable = borrowed = 0.0
        for o in ctx.snap.members:
            lend, borrow = self._lend_borrow(ctx, o, f)
            lendable += lend
            borrowed += borrow
        cache[f] = (ctx.version, lendable, borrowed)
        return lendable, borrowed

    def _quota(self, ctx: PassContext, m: MemberId, f: ModelId, n: int) -> str:
        """Empty if ``m`` may use ``n`` more devices of ``f`` by quota, else why not."""
        nominal, used = self._nominal(ctx, m, f), self._used(ctx, m, f)
        if used + n <= nominal:
            return ""
        extra = used + n - max(nominal, used)
        share = ctx.snap.shares.get((m, f))
        limit = share.borrowing_limit if share and share.borrowing_limit is not None else INF
        if used + n - nominal > limit:
            return f"borrowing limit on {f} reached ({used}+{n} > {nominal}+{limit})"
        total_lend, total_borrow = self._cohort(ctx, f)
        own_lend, own_borrow = self._lend_borrow(ctx, m, f)
        lendable, borrowed = total_lend - own_lend, total_borrow - own_borrow
        if borrowed + extra > lendable:
            return f"the cohort has no lendable {f} left ({lendable - borrowed:.0f} devices)"
        return ""

    # -- the rules ------------------------------------------------------------------------
    def models(self, ctx: PassContext, q: QueuedJob) -> tuple[list[ModelId], set[ModelId]]:
        m, n = q.member, q.spec.count
        models = present_models(ctx, q)
        within = [f for f in models if self._used(ctx, m, f) + n <= self._nominal(ctx, m, f)]
        return [*within, *(f for f in models if f not in within)], set(within)

    def order_key(self, ctx: PassContext, q: QueuedJob) -> tuple[()]:
        """Nothing beside the signature: the order is the member's quota state's."""
        return ()

    def below_guarantee(self, ctx: PassContext, member: MemberId) -> bool:
        return any(
            self._used(ctx, member, f) < self._nominal(ctx, member, f) for f in ctx.snap.pool.models
        )

    def refusal(self, ctx: PassContext, q: QueuedJob, model: ModelId, guaranteed: bool) -> str:
        problem = self._quota(ctx, q.member, model, q.spec.count)
        if not problem and not guaranteed and not q.spec.preemptible:
            problem = "non-preemptible jobs run only within nominal quota"
        return problem

    def victims(self, ctx: PassContext, q: QueuedJob, models: list[ModelId]) -> list[RunningJob]:
        """Borrowers' preemptible jobs on these models: most-borrowing member, newest first."""
        snap = ctx.snap
        rank = {m: self._borrowed_nu(ctx, m) / snap.members[m].weight for m in snap.members}
        out = [
            r
            for f in models
            for r in snap.running_of(snap.members, [f])
            if r.spec.preemptible and self._used(ctx, r.member, f) > self._nominal(ctx, r.member, f)
        ]
        out.sort(key=lambda r: (-rank[r.member], -r.started_at, r.id))
        return out
