"""``gavel``: heterogeneity-aware max-min fairness, as Gavel's own scheduler computes it
(Narayanan et al., OSDI'20; its ``max_min_fairness_perf`` policy and its round-based
mechanism, ``scheduler/scheduler.py``). docs/simulator.md maps each step to Gavel's code.

1. **Allocation** X, a time share per job j and model t:
   max min_j Σ_t (T_jt / P_j)·s_j·x_jt subject to x_jt ≥ 0, Σ_t x_jt ≤ 1 and
   Σ_j s_j·x_jt ≤ C_t, where T_jt is the job's throughput on t, s_j its devices, C_t the
   devices of model t and P_j = Σ_t T_jt·C_t / max(Σ_t C_t, n) the throughput of an equal
   split of the pool over the n jobs (Gavel's proportional normalization). A linear program,
   solved with SciPy's HiGHS; jobs with the same size and throughputs share one row.
2. **Resets**: the allocation is recomputed only when the set of jobs changed and at least
   ``reset_s`` (Gavel's 1,920 s) passed since the last reset. At a reset each job's deficit on
   each model grows by what it should have received (its share times the time since the last
   reset) less what it received, and the time counters start again.
3. **Rounds** (``round_s``, Gavel's 6 minutes): for each model, fastest first, the jobs in
   descending order of priority x_jt / f_jt (f_jt: the job's time on t since the last reset,
   counted from half a round), then deficit, then share; one pass down these lists takes each
   job once onto a model with enough devices left. A job with no share on a model may still
   fill devices nobody with a share took (the lists hold every job). Running jobs chosen for
   their model keep running; the others are preempted; chosen pending jobs start where they
   fit.

A throughput of 0 (or a model the job does not accept) means it cannot run there. Only the
``window`` oldest jobs (running jobs first) are in a round; the rest wait behind them.
"""

from __future__ import annotations

from itertools import chain
from typing import ClassVar

import numpy as np
from scipy.sparse import csc_array

from suanli.model.ids import JobId, ModelId
from suanli.sched import highs
from suanli.sched.context import PassContext, describe
from suanli.sched.policy import register
from suanli.sched.rounds import speed
from suanli.sched.snapshot import QueuedJob, RunningJob

Entry = tuple[int, int]  # (job index, model index)


def max_min_lp(
    pairs: list[Entry],
    coef: list[float],
    scale: list[int],
    capacity: list[float],
    n_jobs: int,
    multiplicity: list[int] | None = None,
) -> np.ndarray:
    """Solve max z s.t. z ≤ Σ_t coef_jt·x_jt ∀j, Σ_t x_jt ≤ 1, Σ_j n_j·scale_j·x_jt ≤ C_t, x ≥ 0.

    Variables are the given (j, t) pairs plus z; returns x per pair. Jobs without pairs are
    left out of the min (they can get nothing). ``multiplicity`` n_j lets one row stand for
    n_j identical jobs: the LP is symmetric in them, so a symmetric optimum exists and solving
    per class is exact."""
    mult = np.asarray(multiplicity or [1] * n_jobs, dtype=float)
    nv = len(pairs)
    if nv == 0:
        return np.zeros(0)
    n_models = len(capacity)
    pj, pt = np.asarray(pairs, dtype=np.int64).T
    has_pair = np.unique(pj)
    nj = len(has_pair)
    r = np.searchsorted(has_pair, pj)
    # column-wise, each column's rows ascending: x_jt in rows r (Σ_t x ≤ 1), nj + r
    # (z - Σ coef x ≤ 0) and 2nj + t (capacity); z in rows nj .. 2nj - 1
    indices = np.empty(3 * nv + nj, dtype=np.int32)
    indices[0 : 3 * nv : 3] = r
    indices[1 : 3 * nv : 3] = nj + r
    indices[2 : 3 * nv : 3] = 2 * nj + pt
    indices[3 * nv :] = np.arange(nj, 2 * nj)
    data = np.empty(3 * nv + nj)
    data[0 : 3 * nv : 3] = 1.0
    data[1 : 3 * nv : 3] = -np.asarray(coef, dtype=float)
    data[2 : 3 * nv : 3] = np.asarray(scale, dtype=float)[pj] * mult[pj]
    data[3 * nv :] = 1.0
    indptr = np.append(np.arange(0, 3 * nv + 1, 3, dtype=np.int32), np.int32(3 * nv + nj))
    a = csc_array((data, indices, indptr), shape=(2 * nj + n_models, nv + 1))
    b = np.concatenate([np.ones(nj), np.zeros(nj), np.asarray(capacity, dtype=float)])
    c = np.zeros(nv + 1)
    c[nv] = -1.0
    try:
        solution = highs.solve(c, a, b)
    except RuntimeError as e:
        raise RuntimeError(f"gavel LP failed: {e}") from None
    x: np.ndarray = np.clip(solution[:nv], 0.0, 1.0)
    return x


@register
class GavelPolicy:
    name: ClassVar[str] = "gavel"
    #: Gavel plans in rounds of 6 minutes (its ``time_per_iteration``)
    round_s: ClassVar[float | None] = 360.0

    def __init__(
        self,
        window: int = 4096,
        grace_s: float = 60.0,
        reset_s: float = 1920.0,
        allocate: str = "on-change",
    ) -> None:
        """``allocate``: ``on-change`` (a new allocation whenever the jobs change, as Gavel
        on a cluster computes one in the background) or ``at-reset`` (only at a reset, as
        Gavel's simulator does: a job that arrives between resets waits for the next one)."""
        if allocate not in ("on-change", "at-reset"):
            raise ValueError(f"allocate: {allocate!r} is not on-change or at-reset")
        self.window = window
        self.grace_s = grace_s
        self.reset_s = reset_s
        self.allocate = allocate
        #: the allocation changed since the counters were last reset
        self._changed = False
        #: the allocation: share per job and model
        self._alloc: dict[JobId, dict[ModelId, float]] = {}
        #: the jobs the allocation was last asked for (a change asks for a new one)
        self._jobs: frozenset[JobId] = frozenset()
        self._stale = False
        self._reset_at: float | None = None
        #: each job's device time on each model at the last reset (its counters start there)
        self._base: dict[JobId, dict[ModelId, float]] = {}
        self._deficit: dict[JobId, dict[ModelId, float]] = {}
        #: per model (in round order): (job, model, share, deficit, seq, time there at the
        #: last reset) of the jobs with a share there, and the jobs without one in their order
        self._shared: list[list[tuple[JobId, ModelId, float, float, int, float]]] = []
        self._unshared: list[list[JobId]] = []
        #: per job: (model index, model, throughput) where it can run (fixed for its life)
        self._rows: dict[JobId, tuple[tuple[int, ModelId, float], ...]] = {}
        #: per job: its size and (model index, throughput) pairs, its class in the LP
        self._keys: dict[JobId, tuple[int, tuple[tuple[int, float], ...]]] = {}
        self._models: list[ModelId] = []

    # -- what a job received ---------------------------------------------------------------
    def _reset(self, ctx: PassContext, jobs: list[QueuedJob], models: list[ModelId]) -> None:
        """Deficits take what each job should have received since the last reset less what
        it received; the counters start again from now."""
        elapsed = ctx.now - self._reset_at if self._reset_at is not None else 0.0
        for q in jobs:
            base = self._base.get(q.id, {})
            share = self._alloc.get(q.id, {})
            deficit = self._deficit.setdefault(q.id, {})
            now_base = {}
            attained = q.attained_s
            r = ctx.snap.running.get(q.id)
            # (the current run, not yet closed, counts on its model)
            on, open_s = (r.placement.model, ctx.now - r.started_at) if r else (None, 0.0)
            for m in models:
                got = attained.get(m, 0.0)
                if m == on:
                    got += open_s
                deficit[m] = (
                    deficit.get(m, 0.0) + share.get(m, 0.0) * elapsed - (got - base.get(m, 0.0))
                )
                now_base[m] = got
            self._base[q.id] = now_base
        self._reset_at = ctx.now

    def _row(self, ctx: PassContext, q: QueuedJob) -> tuple[tuple[int, ModelId, float], ...]:
        """Where ``q`` can run (it accepts the model, a node could host it, its throughput
        there is above 0), by model index in round order, with its throughput."""
        row = self._rows.get(q.id)
        if row is None:
            pool = ctx.snap.pool
            row = self._rows[q.id] = tuple(
                (t, m, thr)
                for t, m in enumerate(self._models)
                if m in q.spec.models
                and pool.could_host(q.spec, m)
                and (thr := speed(ctx, q, m)) > 0
            )
        return row

    # -- the allocation --------------------------------------------------------------------
    def _allocate(self, ctx: PassContext, jobs: list[QueuedJob], models: list[ModelId]) -> None:
        snap = ctx.snap
        capacity = [float(snap.pool.devices_by_model[m]) for m in models]
        # Jobs with the same size and throughput row are interchangeable: one LP row each.
        job_keys = []
        keys = self._keys
        for q in jobs:
            key = keys.get(q.id)
            if key is None:
                key = keys[q.id] = (
                    q.spec.count,
                    tuple((t, thr) for t, _, thr in self._row(ctx, q)),
                )
            job_keys.append(key)
        ordered = sorted(set(job_keys))  # (a canonical order: the same jobs, the same LP)
        index = {k: c for c, k in enumerate(ordered)}
        scale = [k[0] for k in ordered]
        mult = [0] * len(ordered)
        for k in job_keys:
            mult[index[k]] += 1
        # an equal split of the pool over the n jobs, as Gavel normalizes each job's throughput
        equal = sum(capacity) / max(sum(capacity), float(len(jobs)))
        pairs: list[Entry] = []
        coef: list[float] = []
        for c, (count, row) in enumerate(ordered):
            split = sum(thr * capacity[t] for t, thr in row) / max(sum(capacity), 1.0) * equal
            for t, thr in row:
                pairs.append((c, t))
                coef.append(thr * count / split if split > 0 else 0.0)
        x = max_min_lp(pairs, coef, scale, capacity, len(ordered), mult)
        by_class: dict[int, dict[ModelId, float]] = {}
        for v, (c, t) in enumerate(pairs):
            by_class.setdefault(c, {})[models[t]] = float(x[v])
        self._alloc = {
            q.id: by_class.get(index[k], {}) for q, k in zip(jobs, job_keys, strict=True)
        }

    # -- a round ---------------------------------------------------------------------------
    def _lists(self, jobs: list[QueuedJob], models: list[ModelId], ctx: PassContext) -> None:
        """Per model, the jobs with a share there (ranked each round by priority) and, in
        their fixed order until the next reset, those without one (deficit, then age)."""
        self._shared = [[] for _ in models]
        unshared: list[list[tuple[float, int, JobId]]] = [[] for _ in models]
        for q in jobs:
            share = self._alloc.get(q.id)
            if share is None:
                continue
            deficit = self._deficit.get(q.id, {})
            base = self._base.get(q.id, {})
            for t, m, _ in self._row(ctx, q):
                x = share.get(m, 0.0)
                if x > 0:
                    entry = (q.id, m, x, deficit.get(m, 0.0), q.seq, base.get(m, 0.0))
                    self._shared[t].append(entry)
                else:
                    unshared[t].append((-deficit.get(m, 0.0), q.seq, q.id))
        self._unshared = [[jid for *_, jid in sorted(u)] for u in unshared]

    def run(self, ctx: PassContext) -> None:
        snap = ctx.snap
        pool = snap.pool
        # fastest model first (Gavel's fixed order: V100, P100, K80)
        models = sorted(pool.models, key=lambda m: (-pool.model_nu(m), m))
        if models != self._models:
            self._models, self._rows, self._keys = models, {}, {}
        running = list(snap.running.values())
        jobs: list[QueuedJob] = [r.job for r in running]
        for q in ctx.fifo_queue():
            if len(jobs) >= self.window:
                ctx.end_reason = f"outside Gavel's round of the {self.window} oldest jobs"
                break
            jobs.append(q)
        by_id = {q.id: j for j, q in enumerate(jobs)}
        if by_id.keys() != self._jobs:
            self._stale, self._jobs = True, frozenset(by_id)
            for gone in set(self._base) - self._jobs:
                self._base.pop(gone, None)
                self._deficit.pop(gone, None)
            for gone in set(self._rows) - self._jobs:
                del self._rows[gone]
                self._keys.pop(gone, None)
        if not jobs:
            return
        due = self._reset_at is None or ctx.now - self._reset_at >= self.reset_s
        if self.allocate == "at-reset":
            # Gavel's simulator: a new allocation only at a reset; but a pool left idle with
            # every waiting job unallocated gets one now (Gavel does so when its trace has no
            # arrival left; a policy cannot know that, and an idle pool serves no one)
            idle = not running and not any(q.id in self._alloc for q in jobs)
            if self._stale and (due or idle):
                self._reset(ctx, jobs, models)
                self._allocate(ctx, jobs, models)
                self._lists(jobs, models, ctx)
                self._stale = False
        else:
            if due and self._changed:
                self._reset(ctx, jobs, models)
                self._changed = False
                self._lists(jobs, models, ctx)
            if self._stale:
                self._allocate(ctx, jobs, models)
                self._lists(jobs, models, ctx)
                self._stale, self._changed = False, True
        # each model's list: jobs with a share there by share / time there since the last
        # reset (from half a round), deficit, share, age; then the others in their order
        half = (self.round_s or 0.0) / 2
        now = ctx.now
        on = snap.running
        left = [pool.devices_by_model[m] for m in models]
        chosen: dict[int, int] = {}
        for t in range(len(models)):
            # (one expression, for speed: every round ranks every job of the window)
            ranked = [
                (
                    -x
                    / (
                        half
                        + jobs[j].attained_s.get(model, 0.0)
                        + (
                            now - where.started_at
                            if (where := on.get(jid)) is not None and where.placement.model == model
                            else 0.0
                        )
                        - base
                    ),
                    -deficit,
                    -x,
                    seq,
                    j,
                )
                for jid, model, x, deficit, seq, base in self._shared[t]
                if (j := by_id.get(jid)) is not None
            ]
            ranked.sort()
            for j in chain((e[-1] for e in ranked), map(by_id.get, self._unshared[t])):
                if left[t] == 0:
                    break
                if j is None or j in chosen:
                    continue
                size = jobs[j].spec.count
                if size <= left[t]:
                    chosen[j] = t
                    left[t] -= size
        self._apply(ctx, jobs, running, chosen, models)

    def _apply(
        self,
        ctx: PassContext,
        jobs: list[QueuedJob],
        running: list[RunningJob],
        chosen: dict[int, int],
        models: list[ModelId],
    ) -> None:
        n_running = len(running)
        moved = []
        for j, r in enumerate(running):
            t = chosen.get(j)
            if (t is None or models[t] != r.placement.model) and r.spec.preemptible:
                ctx.preempt(
                    r,
                    "gavel round: its time share goes to jobs with higher "
                    "priority (allocation / share received)"
                    if t is None
                    else f"gavel round: its time share this round is on {models[t]}",
                    self.grace_s,
                )
                if t is not None and ctx.snap.instant_switch:
                    moved.append(j)  # (switching is free: it starts there in this pass)
        for j in [*moved, *range(n_running, len(jobs))]:
            q = jobs[j]
            ctx.examined += 1
            t = chosen.get(j)
            if t is None:
                ctx.wait(q, "gavel round: no time share this round")
                continue
            placement = ctx.fit(q, models[t])
            if placement is None:
                ctx.wait(
                    q,
                    f"gavel round: allocated {describe(q)} on {models[t]}, waiting for "
                    "preempted jobs to release devices",
                )
                continue
            ctx.admit(q, placement, f"gavel round: allocated on {models[t]}")
