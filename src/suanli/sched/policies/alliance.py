"""``alliance``: the flagship policy. See docs/policies.md for the math.

1. Guarantee. Member m's entitlement E_m is what it contributed plus grants, in NU. While its
   usage U_m (NU held now) is below E_m it is served first, lowest U_m/E_m first; a job that
   keeps U_m + job ≤ E_m is *guaranteed*: if it cannot fit, it reclaims by preempting
   borrowers' preemptible jobs, which get ``grace_s`` to checkpoint.
2. Lending. Idle capacity goes to anyone, in fair-tree order: the lowest
   (H_m + U_m·τ) / S_m first, where H_m is decayed past usage (NU-seconds, half-life set by the
   usage feed), τ = half-life / ln 2, and S_m = E_m·w_m (commons members: a floor share). So
   a member that borrowed much yields first, and reclaim takes from it first.
3. Placement. A job goes to the acceptable model where its speed per NU is highest (measured
   throughput if known, else equal); on ties, a model its member contributed, then the
   emptiest model; other models in that order if the best is full.
4. Non-preemptible jobs run only within the guarantee.
"""

from __future__ import annotations

import math
from typing import ClassVar

from suanli.model.ids import MemberId, ModelId
from suanli.model.member import Tier
from suanli.sched.context import PassContext
from suanli.sched.policy import register
from suanli.sched.rounds import GuaranteedSharing, present_models, speed
from suanli.sched.snapshot import QueuedJob, RunningJob

EPS = 1e-9


@register
class AlliancePolicy(GuaranteedSharing):
    name: ClassVar[str] = "alliance"

    def __init__(
        self,
        grace_s: float = 300.0,
        half_life_s: float = 7 * 86400.0,
        commons_share: float = 0.02,
        max_skips: int = 64,
    ) -> None:
        """``commons_share``: the fair-tree share of each commons member, as a fraction of
        the pool's NU (weighted by its weight); contributors' shares are their entitlements."""
        super().__init__(grace_s, max_skips)
        self.tau = half_life_s / math.log(2)
        self.commons_share = commons_share

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
        u = ctx.used_nu.get(m, 0.0)
        pool = ctx.snap.pool
        cheapest = min(
            (q.spec.count * pool.model_nu(f) for f in present_models(ctx, q)), default=float("inf")
        )
        if u + cheapest <= e + EPS:
            return (0.0, u / e)
        return (1.0, self._fairtree(ctx, m))

    def _models(self, ctx: PassContext, q: QueuedJob) -> list[ModelId]:
        pool = ctx.snap.pool
        shares = ctx.snap.shares
        return sorted(
            present_models(ctx, q),
            key=lambda f: (
                -speed(ctx, q, f) / pool.model_nu(f),
                not (shares.get((q.member, f)) and shares[(q.member, f)].nominal > 0),
                -ctx.free.free_devices(f),
                f,
            ),
        )

    def models(self, ctx: PassContext, q: QueuedJob) -> tuple[list[ModelId], set[ModelId]]:
        e = ctx.snap.entitlement_nu.get(q.member, 0.0)
        u = ctx.used_nu.get(q.member, 0.0)
        order = self._models(ctx, q)
        return order, {f for f in order if u + ctx.job_nu(q, f) <= e + EPS}

    def below_guarantee(self, ctx: PassContext, member: MemberId) -> bool:
        return ctx.used_nu.get(member, 0.0) < ctx.snap.entitlement_nu.get(member, 0.0) - EPS

    def refusal(self, ctx: PassContext, q: QueuedJob, model: ModelId, guaranteed: bool) -> str:
        if guaranteed or q.spec.preemptible:
            return ""
        m = q.member
        return (
            f"non-preemptible and {model} would exceed {m}'s guarantee "
            f"({ctx.used_nu.get(m, 0.0):.3f}+{ctx.job_nu(q, model):.3f} > "
            f"{ctx.snap.entitlement_nu.get(m, 0.0):.3f} NU)"
        )

    def victims(self, ctx: PassContext, q: QueuedJob, models: list[ModelId]) -> list[RunningJob]:
        """Borrowers' preemptible jobs: highest fair-tree key first, newest first."""
        rank = {
            m: self._fairtree(ctx, m)
            for m in ctx.snap.members
            if ctx.used_nu.get(m, 0.0) > ctx.snap.entitlement_nu.get(m, 0.0) + EPS
        }
        out = [r for r in ctx.snap.running_of(rank, models) if r.spec.preemptible]
        out.sort(key=lambda r: (-rank[r.member], -r.started_at, r.id))
        return out
