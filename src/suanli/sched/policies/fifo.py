"""``fifo``: the heterogeneity-blind baseline.

Jobs start strictly in submit order across all members; the first job that cannot start
blocks everything behind it (no backfill), unless no node could ever host it. Blind to speed:
a job goes to the acceptable model with the most free devices (ties by id), whatever it runs
like there; shares, guarantees and priorities are ignored; nothing is preempted.
"""

from __future__ import annotations

from typing import ClassVar

from suanli.sched.context import PassContext, describe
from suanli.sched.policy import DEFAULT_GRACE_S, register
from suanli.sched.rounds import present_models


@register
class FifoPolicy:
    name: ClassVar[str] = "fifo"
    round_s: ClassVar[float | None] = None

    def __init__(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.grace_s = grace_s  # (FIFO preempts nothing; drains use it)

    def run(self, ctx: PassContext) -> None:
        for q in ctx.fifo_queue():
            ctx.examined += 1
            models = sorted(present_models(ctx, q), key=lambda f: -ctx.free.free_devices(f))
            if not models:  # it could never start: it must not block the queue forever
                ctx.wait(q, "no node of an acceptable model could ever host it")
                continue
            placement = ctx.fit_any(q, models)
            if placement is None:
                reason = f"head of the FIFO queue; no free {describe(q)} fits now"
                ctx.wait(q, reason)
                ctx.end_reason = f"behind FIFO head {q.id}, which waits for {describe(q)}"
                return
            ctx.admit(q, placement, "next in submit order")
