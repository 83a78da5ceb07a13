"""``gavel``: heterogeneity-aware max-min fairness, after Gavel (Narayanan et al., OSDI'20).

Per pass (a Gavel *round*), over the running jobs and the oldest pending ones up to
``window`` jobs in all:

1. Isolated allocation X_iso: max-min fair time shares ignoring speed,
   max min_j s_j·Σ_t x_jt subject to the base constraints. That LP is degenerate, so the
   isolated throughput is T_j^iso = τ_j · Σ_t C_t T_jt / Σ_t C_t with τ_j = Σ_t x^iso_jt (the
   job's share spread over its models by capacity), not a solver-chosen vertex.
2. Allocation X: max min_j Σ_t (T_jt / T_j^iso)·s_j·x_jt, where T_jt is job j's throughput on
   model t and T_j^iso = Σ_t T_jt·x^iso_jt, subject to the base constraints
   x_jt ≥ 0, Σ_t x_jt ≤ 1, Σ_j s_j·x_jt ≤ C_t (s_j: devices, C_t: devices of model t).
   Both are linear programs solved with SciPy's HiGHS.
3. Rounding: priority p_jt = x_jt / r_jt, where r_jt is the fraction of its lifetime job j
   has received on t; pairs are taken in descending priority while model t has devices left.
   Chosen running jobs on their model keep running; running jobs not chosen are preempted
   (lease ends); chosen pending jobs start where they fit now.

Models a job does not accept get x_jt = 0. Only the ``window`` is in the LP; the rest of a long
queue waits behind it (Gavel's own simulator has no such bound and solves the whole set).
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from suanli.model.ids import ModelId
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
    mult = multiplicity or [1] * n_jobs
    nv = len(pairs)
    if nv == 0:
        return np.zeros(0)
    n_models = len(capacity)
    has_pair = sorted({j for j, _ in pairs})
    row_of = {j: k for k, j in enumerate(has_pair)}
    rows, cols, vals = [], [], []
    nj = len(has_pair)
    for v, (j, t) in enumerate(pairs):
        r = row_of[j]
        rows += [r, nj + r, 2 * nj + t]
        cols += [v, v, v]
        vals += [1.0, -coef[v], float(scale[j] * mult[j])]
    for r in range(nj):  # z - Σ coef x ≤ 0
        rows.append(nj + r)
        cols.append(nv)
        vals.append(1.0)
    a = coo_matrix(
        (np.asarray(vals), (np.asarray(rows), np.asarray(cols))), shape=(2 * nj + n_models, nv + 1)
    ).tocsr()
    b = np.concatenate([np.ones(nj), np.zeros(nj), np.asarray(capacity, dtype=float)])
    c = np.zeros(nv + 1)
    c[nv] = -1.0
    # HiGHS takes a sparse matrix; SciPy's stubs only declare dense arrays.
    res = linprog(c, A_ub=cast(Any, a), b_ub=b, bounds=(0, None), method="highs")
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"gavel LP failed: {res.message}")
    x: np.ndarray = np.clip(np.asarray(res.x[:nv], dtype=float), 0.0, 1.0)
    return x


@register
class GavelPolicy:
    name: ClassVar[str] = "gavel"
    #: Gavel re-plans every round (6 minutes in its paper) even when nothing arrives or ends
    round_s: ClassVar[float | None] = 360.0

    def __init__(self, window: int = 1024, grace_s: float = 60.0) -> None:
        self.window = window
        self.grace_s = grace_s
        # The allocation depends only on the LP's inputs; as in Gavel it is recomputed only
        # when they change (a memo of the last solve: same inputs, same answer).
        self._memo: tuple[object, np.ndarray] | None = None

    def _allocate(
        self,
        pairs: list[Entry],
        thr: list[float],
        scale: list[int],
        mult: list[int],
        capacity: list[float],
    ) -> np.ndarray:
        key = (tuple(pairs), tuple(thr), tuple(scale), tuple(mult), tuple(capacity))
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        n = len(scale)
        # 1. isolated allocation (every throughput 1): coefficient s_j
        x_iso = max_min_lp(pairs, [float(scale[c]) for c, _ in pairs], scale, capacity, n, mult)
        # The isolated LP is degenerate (every vertex with the same time shares is optimal),
        # so T_iso takes each job's time share from it and spreads it over the job's models in
        # proportion to their capacity: the symmetric optimum, independent of the solver.
        share = np.zeros(n)
        cap_thr = np.zeros(n)
        cap_sum = np.zeros(n)
        for v, (c, t) in enumerate(pairs):
            share[c] += x_iso[v]
            cap_thr[c] += capacity[t] * thr[v]
            cap_sum[c] += capacity[t]
        iso = np.where(cap_sum > 0, share * cap_thr / np.maximum(cap_sum, 1e-12), 0.0)
        # 2. heterogeneity-aware allocation, normalized by the isolated throughput
        coef = [thr[v] * scale[c] / iso[c] if iso[c] > 0 else 0.0 for v, (c, _) in enumerate(pairs)]
        x = max_min_lp(pairs, coef, scale, capacity, n, mult)
        self._memo = (key, x)
        return x

    def run(self, ctx: PassContext) -> None:
        snap = ctx.snap
        models: list[ModelId] = list(snap.pool.models)
        t_index = {m: i for i, m in enumerate(models)}
        # every active job is in the LP, stopping ones too: they are Gavel's jobs in flight
        running = list(snap.running.values())
        jobs: list[QueuedJob] = [r.job for r in running]
        for q in ctx.fifo_queue():
            if len(jobs) >= self.window:
                ctx.end_reason = f"outside Gavel's LP window of the {self.window} oldest jobs"
                break
            jobs.append(q)
        if not jobs:
            return
        # Jobs with the same size and throughput row are interchangeable: one LP row each.
        job_keys = []
        for q in jobs:
            row = tuple(
                (t_index[m], speed(ctx, q, m))
                for m in sorted(q.spec.models)
                if m in t_index and snap.pool.could_host(q.spec, m)
            )
            job_keys.append((q.spec.count, row))
        # classes in a canonical order, so that the same set of jobs gives the same LP
        ordered = sorted(set(job_keys))
        index = {k: c for c, k in enumerate(ordered)}
        cls_of = [index[k] for k in job_keys]
        rows = [list(k[1]) for k in ordered]
        scale = [k[0] for k in ordered]
        mult = [0] * len(rows)
        for c in cls_of:
            mult[c] += 1
        pairs: list[Entry] = [(c, t) for c, row in enumerate(rows) for t, _ in row]
        thr = [thr for row in rows for _, thr in row]
        capacity = [float(snap.pool.devices_by_model[m]) for m in models]
        x_cls = self._allocate(pairs, thr, scale, mult, capacity)
        alloc: dict[int, list[tuple[int, float]]] = {}
        for v, (c, t) in enumerate(pairs):
            alloc.setdefault(c, []).append((t, float(x_cls[v])))
        # 3. rounding by priority = allocation / received share
        prio = []
        for j, q in enumerate(jobs):
            age = max(ctx.now - q.submitted_at, 1.0)
            r = ctx.snap.running.get(q.id)
            for t, x in alloc.get(cls_of[j], ()):
                if x <= 1e-6:
                    continue
                got = q.attained_s.get(models[t], 0.0)
                if r is not None and r.placement.model == models[t]:
                    got += ctx.now - r.started_at  # the current run, not yet closed
                received = got / age
                prio.append((-(x / max(received, 1e-6)), q.submitted_at, q.seq, j, t))
        prio.sort()
        left = capacity.copy()
        chosen: dict[int, int] = {}
        for _, _, _, j, t in prio:
            size = jobs[j].spec.count
            if j in chosen or left[t] < size:
                continue
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
        for j, r in enumerate(running):
            t = chosen.get(j)
            if (t is None or models[t] != r.placement.model) and r.spec.preemptible:
                ctx.preempt(
                    r,
                    "gavel round: its time share goes to jobs with higher "
                    "priority (allocation / share received)",
                    self.grace_s,
                )
        for j in range(n_running, len(jobs)):
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
