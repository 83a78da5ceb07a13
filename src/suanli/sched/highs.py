"""Linear programs solved by HiGHS, the solver SciPy ships.

``scipy.optimize.linprog(method="highs")`` spends most of a small LP's time in Python around
the solver: it validates and converts its inputs, checks each option through a new options
manager, and builds every dual and marginal the caller may want. ``gavel`` solves a few
thousand such LPs in one simulation and wants only the primal solution, so :func:`solve`
hands the model to the same HiGHS bindings with exactly the options ``linprog`` sets (the
same solver, the same answer, tested against ``linprog``). Where those bindings cannot be
imported (they are SciPy's, not a public API) it falls back to ``linprog``.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csc_array

try:  # SciPy's bundled bindings (scipy >= 1.15)
    import scipy.optimize._highspy._core as _h  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover (an older or newer SciPy: linprog does it all)
    _h = None


def _options() -> Any:
    """The options ``linprog(method="highs")`` sets by default (no log, presolve on, the dual
    simplex when it chooses simplex): any other value would be a different solver run."""
    o = _h.HighsOptions()
    o.presolve = "on"
    o.highs_debug_level = _h.HighsDebugLevel.kHighsDebugLevelNone
    o.log_to_console = False
    o.output_flag = False
    o.simplex_strategy = _h.simplex_constants.SimplexStrategy.kSimplexStrategyDual
    return o


def solve(c: np.ndarray, a: csc_array, b: np.ndarray) -> np.ndarray:
    """min c·x subject to a·x ≤ b and x ≥ 0; returns x. ``a`` is column-wise with sorted row
    indexes (what ``csc_array`` gives). Raises RuntimeError when HiGHS finds no optimum."""
    if _h is None:  # pragma: no cover
        return _linprog(c, a, b)
    n_rows, n_cols = a.shape
    lp = _h.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    lp.a_matrix_.num_col_ = n_cols
    lp.a_matrix_.num_row_ = n_rows
    lp.a_matrix_.format_ = _h.MatrixFormat.kColwise
    lp.col_cost_ = c
    lp.col_lower_ = np.zeros(n_cols)
    lp.col_upper_ = np.full(n_cols, _h.kHighsInf)
    lp.row_lower_ = np.full(n_rows, -_h.kHighsInf)
    lp.row_upper_ = b
    lp.a_matrix_.start_ = a.indptr
    lp.a_matrix_.index_ = a.indices
    lp.a_matrix_.value_ = a.data
    highs = _h._Highs()
    if highs.passOptions(_options()) == _h.HighsStatus.kError:  # pragma: no cover
        raise RuntimeError("HiGHS refused linprog's default options")
    if highs.passModel(lp) == _h.HighsStatus.kError:
        raise RuntimeError("HiGHS refused the model")
    if highs.run() == _h.HighsStatus.kError:  # pragma: no cover
        raise RuntimeError(f"HiGHS failed: {highs.modelStatusToString(highs.getModelStatus())}")
    status = highs.getModelStatus()
    if status != _h.HighsModelStatus.kOptimal:
        raise RuntimeError(f"HiGHS found no optimum: {highs.modelStatusToString(status)}")
    return np.asarray(highs.getSolution().col_value, dtype=float)


def _linprog(c: np.ndarray, a: csc_array, b: np.ndarray) -> np.ndarray:
    # HiGHS takes a sparse matrix; SciPy's stubs only declare dense arrays.
    res = linprog(c, A_ub=cast(Any, a), b_ub=b, bounds=(0, None), method="highs")
    if res.status != 0 or res.x is None:
        raise RuntimeError(f"HiGHS found no optimum: {res.message}")
    return np.asarray(res.x, dtype=float)
