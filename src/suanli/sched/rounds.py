"""Serving members' queues in fair-share order: the loop ``fair`` and ``alliance`` share.

The member with the lowest key is served next, one job at a time; after each attempt its key
is recomputed and it goes back into the heap. A member's jobs of one *kind* (the same set of
acceptable models, held to the same sites) that fail ``max_skips`` times in a row stop being
served this pass; its jobs of other kinds go on (a queue full of jobs for one congested chip,
or for one full site, does not hold back its jobs that may run elsewhere). A member's queue
is read merged from its kinds' queues, so a closed kind's jobs cost nothing. Jobs not looked
at get a derived reason. A pass is bounded by the number of admissions plus
``members * kinds * max_skips``, whatever the queue length.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterator
from enum import Enum
from typing import ClassVar

from suanli.model.ids import JobId, MemberId, ModelId
from suanli.sched.context import Candidates, PassContext, WithMoves, shape
from suanli.sched.snapshot import Kind, QueuedJob, RunningJob, Snapshot


class Outcome(Enum):
    ADMITTED = "admitted"
    WAITING = "waiting"


def speed(ctx: PassContext, q: QueuedJob, model: ModelId) -> float:
    """Work per second per device of ``q`` on ``model``: measured if known, else its NU."""
    known = ctx.snap.throughput.get(q.id)
    if known is not None and model in known:
        return known[model]
    return ctx.snap.pool.model_nu(model)


def present_models(ctx: PassContext, q: QueuedJob) -> tuple[ModelId, ...]:
    """Acceptable models the pool has nodes of that could host the job (at its sites, for a
    job held to them), in id order."""
    return ctx.snap.pool.present(q.spec, q.allowed_sites)


def serve_members(
    ctx: PassContext,
    key: Callable[[QueuedJob], tuple[float, ...]],
    attempt: Callable[[QueuedJob], Outcome],
    max_skips: int,
    hopeless: Callable[[QueuedJob], str] | None = None,
) -> None:
    """``key(q)`` orders members by their next job ``q`` (lowest first); it is recomputed
    after every attempt, so it sees the pass's own admissions. ``hopeless(q)``, if given,
    returns why no job of q's member can start for the rest of the pass (then the member is no
    longer served), or an empty string."""
    snap = ctx.snap
    queues: dict[MemberId, _Queue] = {}
    heads: dict[MemberId, QueuedJob] = {}
    heap: list[tuple[tuple[float, ...], MemberId]] = []
    for m in snap.members:
        if snap.pending_count(m):
            queues[m] = _Queue(ctx.kind_queues(m))
            head = queues[m].next()
            if head is not None:  # (every pending job of m may be held)
                heads[m] = head
                heap.append((key(head), m))
    heapq.heapify(heap)
    skips: dict[tuple[MemberId, Kind], int] = {}
    #: per member, its kinds no longer served in this pass, and the last reason of each
    closed: dict[MemberId, dict[Kind, str]] = {}
    while heap:
        _, m = heapq.heappop(heap)
        q = heads[m]
        if hopeless is not None and (why := hopeless(q)):
            ctx.wait(q, why)
            ctx.member_blocked[m] = why
            continue
        ctx.examined += 1
        kind = (m, q.kind)
        if attempt(q) is Outcome.ADMITTED:
            skips.pop(kind, None)
        else:
            skips[kind] = n = skips.get(kind, 0) + 1
            if n >= max_skips:
                shut = closed.setdefault(m, {})
                shut[q.kind] = ctx.reasons.get(q.id, "")
                ctx.member_blocked[m] = _closed_words(shut, max_skips)
                queues[m].close(q.kind)
        nxt = queues[m].next()
        if nxt is None:
            continue
        heads[m] = nxt
        heapq.heappush(heap, (key(nxt), m))
    if not ctx.has_free():
        ctx.end_reason = "no free accelerators left in the pool"


class _Queue:
    """A member's queue, merged from its kinds' queues (each in the member's order), less
    the kinds closed in this pass: leaving out a kind costs nothing per job of it."""

    __slots__ = ("_heap", "_of")

    def __init__(self, kinds: dict[Kind, Iterator[QueuedJob]]) -> None:
        self._of = kinds
        self._heap: list[tuple[tuple[float, float, int, JobId], QueuedJob]] = []
        for it in kinds.values():
            q = next(it, None)
            if q is not None:
                self._heap.append((Snapshot.member_key(q), q))
        heapq.heapify(self._heap)

    def next(self) -> QueuedJob | None:
        heap, of = self._heap, self._of
        while heap:
            _, q = heapq.heappop(heap)
            it = of.get(q.kind)
            if it is None:
                continue  # (a closed kind's head)
            after = next(it, None)
            if after is not None:
                heapq.heappush(heap, (Snapshot.member_key(after), after))
            return q
        return None

    def close(self, kind: Kind) -> None:
        self._of.pop(kind, None)


def _closed_words(shut: dict[Kind, str], max_skips: int) -> str:
    if len(shut) == 1:
        ((_, last),) = shut.items()
        return f"its last {max_skips} examined jobs could not start (last: {last})"
    return "; ".join(
        f"its last {max_skips} examined jobs of {'|'.join(sorted(models))}"
        + (f" held to {'|'.join(sorted(sites))}" if sites is not None else "")
        + f" could not start (last: {last})"
        for (models, sites), last in shut.items()
    )


class GuaranteedSharing:
    """The skeleton ``fair`` and ``alliance`` share: serve members in the order of
    :meth:`key`; for each job try its models in the order of :meth:`models`, skipping those
    :meth:`refusal` rejects; if it does not fit and is within its member's guarantee on some
    model, reclaim from :meth:`victims`; otherwise it waits with every reason found.

    A subclass states its rules; the loop, reclaim bookkeeping and reasons live here once.
    """

    guarantee_word: str = "guarantee"
    round_s: ClassVar[float | None] = None

    def __init__(self, grace_s: float = 300.0, max_skips: int = 64) -> None:
        self.grace_s = grace_s
        self.max_skips = max_skips

    def key(self, ctx: PassContext, q: QueuedJob) -> tuple[float, ...]:
        raise NotImplementedError

    def models(self, ctx: PassContext, q: QueuedJob) -> tuple[list[ModelId], set[ModelId]]:
        """The models to try in order, and those on which the job is within its guarantee."""
        raise NotImplementedError

    def order_key(self, ctx: PassContext, q: QueuedJob) -> Hashable | None:
        """What, beside the job's signature and the pass's state, decides :meth:`models` and
        :meth:`refusal` for ``q``: two jobs with the same signature and key get the same
        answers in the same state, so a job that could not start is not worked out again
        for the next one like it (the same wait, the same reason). None: something else of
        the job decides them, and every job is worked out."""
        return None

    def refusal(self, ctx: PassContext, q: QueuedJob, model: ModelId, guaranteed: bool) -> str:
        """Why the policy will not admit ``q`` on ``model`` (empty: it may)."""
        raise NotImplementedError

    def own_victims(self, ctx: PassContext, q: QueuedJob) -> tuple[MemberId, bool] | None:
        """The member whose own jobs are among ``q``'s victims, if any, and whether they go
        first (else last); then the victims depend on it too."""
        return None

    def victims(self, ctx: PassContext, q: QueuedJob, models: list[ModelId]) -> list[RunningJob]:
        """Running jobs that may be preempted for ``q``, the first to go first. They may depend
        on the pass's state, on ``models`` and on :meth:`own_victims`, not on anything else of
        ``q``: the skeleton
        reuses them for every job that reclaims the same models in the same state. While no
        device is freed in a pass they may only grow (admissions make borrowers, never the
        reverse): a reclaim that failed is not tried again until they do."""
        raise NotImplementedError

    def candidates(
        self, ctx: PassContext, q: QueuedJob, models: list[ModelId]
    ) -> list[RunningJob] | Candidates:
        """:meth:`victims` as reclaim reads them (per model, and per set of sites for a job
        held to its sites): the list itself, unless a policy keeps a structure that gives
        the same jobs in the same order without building it."""
        return self.victims(ctx, q, models)

    def movable(self, ctx: PassContext, q: QueuedJob, models: list[ModelId]) -> list[RunningJob]:
        """Running jobs that are not victims but may be moved away for ``q``, a job held to
        its sites (its data's residency), when the victims are not enough: none unless a
        policy says otherwise. They may depend on the pass's state, ``models`` and ``q``'s
        sites."""
        return []

    def _victims(
        self, ctx: PassContext, q: QueuedJob, models: list[ModelId]
    ) -> tuple[list[RunningJob] | Candidates, tuple[object, ...]]:
        key = ("victims", tuple(models), self.own_victims(ctx, q))
        ck = (*key, ctx.version)
        got: list[RunningJob] | Candidates | None = ctx.cache.get(ck)
        if got is None:
            got = ctx.cache[ck] = self.candidates(ctx, q, models)
        return got, key

    @staticmethod
    def _with_moves(
        ctx: PassContext,
        key: tuple[object, ...],
        victims: list[RunningJob] | Candidates,
        movable: list[RunningJob],
    ) -> Candidates:
        """The victims, then the movable jobs: the same candidates while both stay the same
        (so that reclaim's work on them is reused)."""
        ids = list(map(id, movable))
        ck = ("with-moves", key)
        hit: tuple[object, list[int], Candidates] | None = ctx.cache.get(ck)
        if hit is not None and hit[0] is victims and hit[1] == ids:
            return hit[2]
        both = WithMoves(ctx.candidates(victims, key), movable, ctx.snap.pool.site_of)
        ctx.cache[ck] = (victims, ids, both)
        return both

    def attempt(
        self,
        ctx: PassContext,
        q: QueuedJob,
        failed: set[tuple[object, ...]],
        waits: dict[Hashable, tuple[int, int, str]] | None = None,
    ) -> Outcome:
        """Start ``q``, or reclaim for it, or say why it waits. ``failed``: the signatures
        whose reclaim found nothing in this pass; ``waits``: the jobs that could not start in
        this pass, by what decides their answer, with the state they were looked at in (a job
        like one of them, in the same state, waits for the same reason without a second
        look)."""
        ctx.release(q)  # (what an earlier reclaim of q counted on is q's to take again)
        like: Hashable | None = None
        state = (ctx.version, ctx.stop_version)
        if waits is not None and (ok := self.order_key(ctx, q)) is not None:
            like = (ctx.signature(q), q.spec.count, q.spec.preemptible, ok)
            seen = waits.get(like)
            if seen is not None and seen[:2] == state:
                ctx.wait(q, seen[2])
                return Outcome.WAITING
        order, guaranteed = self.models(ctx, q)
        why: list[str] = []
        # A job no one can move that may run anywhere takes a data site's nodes only when none
        # of its models has room elsewhere, and a site's last nodes free of such jobs only
        # when none has room that spares them: there it could keep the data's owner (its
        # gangs) out for as long as it runs, and a slower model costs it less than that
        # costs the owner.
        away = (
            not q.spec.preemptible
            and q.allowed_sites is None
            and len(order) > 1
            and ctx.snap.pool.data_sites
        )
        usable: list[ModelId] = []
        tiers = ((ctx.fit_away, False), (ctx.fit_sparing, False), (ctx.fit, True))
        for fit, last in tiers if away else ((ctx.fit, True),):
            for f in order:
                problem = self.refusal(ctx, q, f, f in guaranteed)
                if problem:
                    why.append(problem)
                    continue
                if last:
                    usable.append(f)
                placement = fit(q, f)
                if placement is not None:
                    ctx.admit(
                        q,
                        placement,
                        f"within the member's {self.guarantee_word}"
                        if f in guaranteed
                        else "borrowing idle capacity",
                    )
                    return Outcome.ADMITTED
                if last:
                    why.append(f"no free {shape(q)} on {f}")
        mine = [f for f in order if f in guaranteed]
        # Jobs already stopping make room on a model it is guaranteed on, whatever their
        # order, or its own victims (of an earlier pass) do on a model it may take: it
        # preempts no one more. A job that reclaimed keeps the devices its victims are
        # freeing, rather than preempting anew elsewhere when a borrower's job came to a
        # faster model or its member's usage moved (its victims' devices would go to others,
        # and its wait would start again).
        if mine and (
            (waits_on := ctx.await_stopping(q, mine)) is not None
            or (waits_on := ctx.await_stopping(q, usable, own=True)) is not None
        ):
            ctx.wait(q, self._reclaiming(waits_on, 0))
            return Outcome.WAITING
        if mine:
            # (a policy may count a non-preemptible job's guarantee otherwise, on more models,
            # and take its member's own jobs first)
            sig = (ctx.signature(q), q.spec.preemptible, self.own_victims(ctx, q))
            if sig not in failed:
                if self._reclaim_for(ctx, q, mine):
                    return Outcome.WAITING
                failed.add(sig)  # victims only get fewer in this pass: no retry
            why.append(
                f"within {self.guarantee_word}, but preempting borrowers' preemptible jobs "
                "would not free a fitting placement"
            )
        reason = (
            "; ".join(dict.fromkeys(why))
            or "no node of an acceptable model could ever host it (devices, CPU, memory)"
        )
        ctx.wait(q, reason)
        if like is not None and waits is not None and (ctx.version, ctx.stop_version) == state:
            waits[like] = (*state, reason)
        return Outcome.WAITING

    def _reclaim_for(self, ctx: PassContext, q: QueuedJob, mine: list[ModelId]) -> bool:
        """Preempt what makes room for ``q`` on the models where it is within its guarantee
        (``mine``, in order), if anything does; then ``q`` waits for them to stop."""
        victims, key = self._victims(ctx, q, mine)
        got = ctx.reclaim(q, mine, victims, key)
        moved: set[JobId] = set()
        if got is None:
            movable = self.movable(ctx, q, mine)
            if movable:
                moved = {r.id for r in movable}
                more = (*key, "moves", q.allowed_sites, q.spec.gang.nodes > 1)
                got = ctx.reclaim(q, mine, self._with_moves(ctx, more, victims, movable), more)
        if got is not None:
            model, victims = got
            for v in victims:
                ctx.preempt(
                    v,
                    (
                        f"moved for {q.member}'s "
                        + (
                            f"job held to {'|'.join(sorted(q.allowed_sites))}"
                            if q.allowed_sites is not None
                            else f"gang of {shape(q)}"
                        )
                        + f" (within its {self.guarantee_word}): {v.member}'s job may run "
                        "elsewhere; checkpoint within the grace period"
                    )
                    if v.id in moved
                    else (
                        f"reclaimed by {q.member} (within its {self.guarantee_word}) from "
                        f"borrower {v.member}; checkpoint within the grace period"
                    )
                    if v.member != q.member
                    else (
                        f"yields to {q.member}'s non-preemptible job (within its "
                        f"{self.guarantee_word}); checkpoint within the grace period"
                    ),
                    self.grace_s,
                )
            ctx.wait(q, self._reclaiming(model, len(victims)))
            return True
        return False

    def _reclaiming(self, model: ModelId, preempted: int) -> str:
        return (
            f"within {self.guarantee_word}; reclaiming {model} from borrowers: "
            f"{preempted} job(s) preempted, waiting for them to stop"
        )

    def below_guarantee(self, ctx: PassContext, member: MemberId) -> bool:
        """Whether some job of ``member`` could still be within its guarantee this pass."""
        raise NotImplementedError

    def hopeless(self, ctx: PassContext, q: QueuedJob) -> str:
        """With nothing free, only a guaranteed job can start (by reclaim); a member already
        at its guarantee has none, so serving its queue further is useless this pass."""
        if ctx.free.free_count or self.below_guarantee(ctx, q.member):
            return ""
        return (
            f"no idle accelerators to borrow, and {q.member} already uses its {self.guarantee_word}"
        )

    def run(self, ctx: PassContext) -> None:
        failed: set[tuple[object, ...]] = set()
        waits: dict[Hashable, tuple[int, int, str]] = {}
        serve_members(
            ctx,
            lambda q: self.key(ctx, q),
            lambda q: self.attempt(ctx, q, failed, waits),
            self.max_skips,
            lambda q: self.hopeless(ctx, q),
        )
