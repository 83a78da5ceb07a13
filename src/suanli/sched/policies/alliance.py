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
from suanli.sched.context import PassContext, shape
from suanli.sched.policy import register
from suanli.sched.rounds import Outcome, present_models, serve_members, speed
from suanli.sched.snapshot import QueuedJob, RunningJob

EPS = 1e-9


@register
class AlliancePolicy:
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
        self.grace_s = grace_s
        self.tau = half_life_s / math.log(2)
        self.commons_share = commons_share
        self.max_skips = max_skips

    def _share(self, ctx: PassContext, m: MemberId) -> float:
        member = ctx.snap.members[m]
        e = ctx.snap.entitlement_nu.get(m, 0.0)
        if member.tier is Tier.COMMONS or e <= 0:
            e = max(e, self.commons_share * ctx.snap.pool.total_nu)
        return e * member.weight

    def _fairtree(self, ctx: PassContext, m: MemberId) -> float:
        usage = ctx.snap.usage_history.get(m, 0.0) + ctx.used_nu.get(m, 0.0) * self.tau
        return usage / self._share(ctx, m)

    def _key(self, ctx: PassContext, q: QueuedJob) -> tuple[float, ...]:
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

    def _attempt(self, ctx: PassContext, q: QueuedJob, failed: set[tuple[object, ...]]) -> Outcome:
        m = q.member
        e = ctx.snap.entitlement_nu.get(m, 0.0)
        u = ctx.used_nu.get(m, 0.0)
        models = self._models(ctx, q)
        guaranteed = [f for f in models if u + ctx.job_nu(q, f) <= e + EPS]
        why: list[str] = []
        for f in models:
            if f not in guaranteed and not q.spec.preemptible:
                why.append(
                    f"non-preemptible and {f} would exceed {m}'s guarantee "
                    f"({u:.3f}+{ctx.job_nu(q, f):.3f} > {e:.3f} NU)"
                )
                continue
            placement = ctx.fit(q, f)
            if placement is not None:
                ctx.admit(
                    q,
                    placement,
                    "within the member's guarantee"
                    if f in guaranteed
                    else "borrowing idle capacity",
                )
                return Outcome.ADMITTED
            why.append(f"no free {shape(q)} on {f}")
        if guaranteed and ctx.signature(q) not in failed:
            got = ctx.reclaim(q, guaranteed, self._victims(ctx, guaranteed))
            if got is not None:
                model, victims = got
                for v in victims:
                    ctx.preempt(
                        v,
                        f"reclaimed by {m} (within its guarantee) from borrower "
                        f"{v.member}; checkpoint within the grace period",
                        self.grace_s,
                    )
                ctx.wait(
                    q,
                    f"within guarantee; reclaiming {model}: {len(victims)} borrower "
                    f"job(s) preempted, waiting for them to stop",
                )
                return Outcome.WAITING
            failed.add(ctx.signature(q))  # victims only get fewer in this pass: no retry
            why.append(
                "within guarantee, but preempting borrowers' preemptible jobs would "
                "not free a fitting placement"
            )
        ctx.wait(q, "; ".join(dict.fromkeys(why)) or "no acceptable model in the pool")
        return Outcome.WAITING

    def _victims(self, ctx: PassContext, models: list[ModelId]) -> list[RunningJob]:
        rank = {
            m: self._fairtree(ctx, m)
            for m in ctx.snap.members
            if ctx.used_nu.get(m, 0.0) > ctx.snap.entitlement_nu.get(m, 0.0) + EPS
        }
        out = [r for r in ctx.snap.running_of(rank, models) if r.spec.preemptible]
        out.sort(key=lambda r: (-rank[r.member], -r.started_at, r.id))
        return out

    def run(self, ctx: PassContext) -> None:
        failed: set[tuple[object, ...]] = set()
        serve_members(
            ctx,
            lambda q: self._key(ctx, q),
            lambda q: self._attempt(ctx, q, failed),
            self.max_skips,
        )
