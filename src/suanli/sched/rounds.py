"""Serving members' queues in fair-share order: the loop ``fair`` and ``alliance`` share.

The member with the lowest key is served next, one job at a time; after each attempt its key
is recomputed and it goes back into the heap. A member whose jobs fail ``max_skips`` times in
a row stops being served this pass (its remaining jobs get a derived reason), which bounds a
pass by the number of admissions plus ``members * max_skips``, whatever the queue length.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from enum import Enum

from suanli.model.ids import MemberId, ModelId
from suanli.sched.context import PassContext
from suanli.sched.snapshot import QueuedJob


class Outcome(Enum):
    ADMITTED = "admitted"
    WAITING = "waiting"


def speed(ctx: PassContext, q: QueuedJob, model: ModelId) -> float:
    """Work per second per device of ``q`` on ``model``: measured if known, else its NU."""
    known = ctx.snap.throughput.get(q.id)
    if known is not None and model in known:
        return known[model]
    return ctx.snap.pool.model_nu(model)


def present_models(ctx: PassContext, q: QueuedJob) -> list[ModelId]:
    """Acceptable models the pool has, in id order."""
    pool_models = ctx.snap.pool.devices_by_model
    return sorted(m for m in q.spec.models if m in pool_models)


def serve_members(
    ctx: PassContext,
    key: Callable[[QueuedJob], tuple[float, ...]],
    attempt: Callable[[QueuedJob], Outcome],
    max_skips: int,
) -> None:
    """``key(q)`` orders members by their next job ``q`` (lowest first); it is recomputed
    after every attempt, so it sees the pass's own admissions."""
    snap = ctx.snap
    queues: dict[MemberId, Iterator[QueuedJob]] = {}
    heads: dict[MemberId, QueuedJob] = {}
    heap: list[tuple[tuple[float, ...], MemberId]] = []
    for m in snap.members:
        if snap.pending_count(m):
            queues[m] = snap.member_queue(m)
            heads[m] = next(queues[m])
            heap.append((key(heads[m]), m))
    heapq.heapify(heap)
    skips = dict.fromkeys(queues, 0)
    last_reason: dict[MemberId, str] = {}
    while heap:
        _, m = heapq.heappop(heap)
        q = heads[m]
        ctx.examined += 1
        if attempt(q) is Outcome.ADMITTED:
            skips[m] = 0
        else:
            skips[m] += 1
            last_reason[m] = ctx.reasons.get(q.id, "")
            if skips[m] >= max_skips:
                ctx.member_blocked[m] = (
                    f"its last {max_skips} examined jobs could not start (last: {last_reason[m]})"
                )
                continue
        nxt = next(queues[m], None)
        if nxt is None:
            continue
        heads[m] = nxt
        heapq.heappush(heap, (key(nxt), m))
    if not ctx.has_free():
        ctx.end_reason = "no free accelerators left in the pool"
