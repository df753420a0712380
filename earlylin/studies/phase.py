"""The phase diagram of the early-time linear regime (numpy only): a (d, m/d) grid of runs read as a map.

The theorem (docs/theory.md §4) keeps the net within d^{−Ω(α)} of f^lin for t ≤ T = c·d·log(d)/η
when n, m ≳ d^{1+α}, α ∈ (0, 1/4). The ``phase`` study (:data:`earlylin.studies.presets.STUDY_SPECS`) runs
both layers (erf) over a grid of d × m/d with n ∝ d^{3/2}; its table (:func:`earlylin.figures.tables.table_phase`)
has one row per (d, m/d, seed). Here:

- :func:`grid_of`: one metric as a (rows = m/d, columns = d) array, seed mean or one seed;
- :func:`path_slopes`: the log-log slope in d of a metric read along m ∝ d^{1+a}, i.e.
  m/d = c·d^a (a = 1/2: grown as the theorem asks, like n; a = −1: fixed m), in each d column by
  log-log interpolation between the two nearest m/d rows (no extrapolation). Paths start at each
  m/d row of the smallest d and run while they stay inside the grid, over ≥ 3 columns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from earlylin.experiments.analysis import Table, col, loglog_fit

ALPHA_GROWN = 0.5        # m ∝ d^{3/2} (like n): the error should fall with d along it
ALPHA_FIXED_M = -1.0     # m/d ∝ 1/d: fixed width m, where the error should rise with d
ALPHA_BOUNDARY = 0.25    # the line m = d^{1+α} drawn, α at the top of the theorem's range (0, 1/4)
MIN_COLUMNS = 3
FIG1 = {"d": 50, "m": 256, "n": 20_000}  # the paper's Fig 1 setting (docs/theory.md §5)


def grid_of(table: Table, key: str, seed: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d values, m/d values, array (m/d, d)) of ``key``: the mean over seeds (``seed`` None) of the
    finite values, or one seed's; NaN where no value (failed run, escape not reached)."""
    d, r, y, s = col(table, "d"), col(table, "m_over_d"), col(table, key), col(table, "seed")
    ds, rs = np.unique(d), np.unique(r)
    out = np.full((rs.size, ds.size), np.nan)
    for i, rv in enumerate(rs):
        for j, dv in enumerate(ds):
            sel = (d == dv) & (r == rv) & (True if seed is None else s == seed)
            vals = y[sel][np.isfinite(y[sel])]
            if vals.size:
                out[i, j] = vals.mean()
    return ds, rs, out


def _interp_column(rs: np.ndarray, column: np.ndarray, target: float) -> float:
    """log-log interpolation of one d column at m/d = target (NaN outside the rows or next to a gap)."""
    lr, lt = np.log(rs), math.log(target)
    if not lr[0] - 1e-9 <= lt <= lr[-1] + 1e-9:
        return math.nan
    i = min(int(np.searchsorted(lr, lt - 1e-9, side="left")), lr.size - 1)
    if abs(lr[i] - lt) <= 1e-9:
        return float(column[i])
    lo, hi = column[i - 1], column[i]
    if not (np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi > 0):
        return math.nan
    w = (lt - lr[i - 1]) / (lr[i] - lr[i - 1])
    return float(math.exp((1 - w) * math.log(lo) + w * math.log(hi)))


def path_values(ds: np.ndarray, rs: np.ndarray, grid: np.ndarray, alpha: float,
                r0: float) -> tuple[np.ndarray, np.ndarray]:
    """The metric along m/d = r0·(d/d₀)^α from the first column, while it stays in the grid."""
    xs, ys = [], []
    for j, dv in enumerate(ds):
        v = _interp_column(rs, grid[:, j], r0 * (dv / ds[0]) ** alpha)
        if not (np.isfinite(v) and v > 0):
            break
        xs.append(dv)
        ys.append(v)
    return np.array(xs), np.array(ys)


def path_slopes(table: Table, alpha: float, key: str = "max_rel_mse_early") -> list[dict[str, Any]]:
    """Per seed and per path (m/d = r0 at the smallest d) spanning ≥ :data:`MIN_COLUMNS` columns: the
    log-log slope of ``key`` against d along m ∝ d^{1+α}, with the path's points."""
    out = []
    for seed in np.unique(col(table, "seed")):
        ds, rs, grid = grid_of(table, key, seed)
        for r0 in rs:
            xs, ys = path_values(ds, rs, grid, alpha, float(r0))
            if xs.size >= MIN_COLUMNS:
                out.append({"seed": int(seed), "m_over_d_at_d0": float(r0), "d": xs.tolist(), "values": ys.tolist(),
                            "m": (r0 * (xs / ds[0]) ** alpha * xs).tolist(), "slope": loglog_fit(xs, ys)[0]})
    return out


def summarise_slopes(paths: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, std, min and max of the paths' slopes (NaN-free), and how many."""
    s = np.array([p["slope"] for p in paths if np.isfinite(p["slope"])], float)
    if s.size == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "min": math.nan, "max": math.nan}
    return {"n": int(s.size), "mean": float(s.mean()), "std": float(s.std(ddof=1)) if s.size > 1 else 0.0,
            "min": float(s.min()), "max": float(s.max())}
