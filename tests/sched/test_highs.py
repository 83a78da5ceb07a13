"""The direct HiGHS call gives linprog's answer, bit for bit, and says when there is none."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse import csc_array

from suanli.sched import highs
from suanli.sched.policies.gavel import max_min_lp


def _random_lp(seed: int) -> tuple[np.ndarray, csc_array, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_rows, n_cols = int(rng.integers(1, 30)), int(rng.integers(1, 40))
    dense = rng.uniform(0.0, 5.0, (n_rows, n_cols)) * (rng.random((n_rows, n_cols)) < 0.4)
    dense[:, rng.random(n_cols) < 0.5] += 0.1  # (every such column bounded: a finite optimum)
    dense[0, :] = 1.0
    c = -rng.uniform(0.0, 3.0, n_cols)
    b = rng.uniform(1.0, 10.0, n_rows)
    return c, csc_array(dense), b


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_solve_matches_linprog_exactly(seed: int) -> None:
    c, a, b = _random_lp(seed)
    assert np.array_equal(highs.solve(c, a, b), highs._linprog(c, a, b))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_gavel_lp_matches_linprog_exactly(seed: int) -> None:
    """max_min_lp's hand-built column-wise matrix is the LP of its definition: the same
    solution as linprog on that LP written out densely."""
    rng = np.random.default_rng(seed)
    n_jobs, n_models = int(rng.integers(1, 25)), int(rng.integers(1, 4))
    pairs = [(j, t) for j in range(n_jobs) for t in range(n_models) if rng.random() < 0.7]
    coef = [float(v) for v in rng.uniform(0.1, 4.0, len(pairs))]
    scale = [int(v) for v in rng.choice([1, 2, 4, 8], n_jobs)]
    capacity = [float(v) for v in rng.integers(1, 40, n_models)]
    mult = [int(v) for v in rng.integers(1, 4, n_jobs)]
    ours = max_min_lp(pairs, coef, scale, capacity, n_jobs, mult)
    # the LP from its definition, densely: variables x per pair, then z
    has = sorted({j for j, _ in pairs})
    nj, nv = len(has), len(pairs)
    a = np.zeros((2 * nj + n_models, nv + 1))
    for v, (j, t) in enumerate(pairs):
        r = has.index(j)
        a[r, v] = 1.0  # Σ_t x_jt ≤ 1
        a[nj + r, v] = -coef[v]  # z - Σ_t coef_jt x_jt ≤ 0
        a[2 * nj + t, v] = scale[j] * mult[j]  # Σ_j n_j s_j x_jt ≤ C_t
    a[nj : 2 * nj, nv] = 1.0
    b = np.concatenate([np.ones(nj), np.zeros(nj), capacity])
    c = np.zeros(nv + 1)
    c[nv] = -1.0
    theirs = np.clip(highs._linprog(c, csc_array(a), b)[:nv], 0.0, 1.0) if nv else np.zeros(0)
    assert np.array_equal(ours, theirs)


def test_solve_says_when_there_is_no_optimum() -> None:
    # min -x with x ≥ 0 and nothing bounding it: unbounded
    with pytest.raises(RuntimeError, match="no optimum"):
        highs.solve(np.array([-1.0]), csc_array(np.array([[-1.0]])), np.array([1.0]))
