"""Pure computations on records and tables (numpy only): seed means, log-log fits, slopes, escape fits.

Data flows one way: study records → :mod:`earlylin.experiments.analysis` → :mod:`earlylin.figures.tables` → plots
(:mod:`earlylin.figures.plots`), paper checks (:mod:`paper_checks`) and the CLIs. Nothing here imports a
plotting library or another earlylin module, so every consumer can use it.

- :func:`seed_mean`: the seed-mean curve of one metric of one run;
- :func:`sweep_summary`: the top-level summary of a sweep over d (the verifier's and the studies');
- :func:`loglog_slope`, :func:`loglog_fit`: slopes of log y against log x;
- :func:`escape_study`, :func:`escape_fit`: the escape step t* against d·log(d)/η (docs/theory.md §4);
- :func:`fig1c_slopes`: Fig 1c's per-seed slopes of the early-window relative MSE against d.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from earlylin.config import window_scale

Table = dict[str, list[Any]]  # column name → list, all columns of equal length (written as CSV)
Records = dict[str, dict[str, Any]]  # study name → study record

FIG3_EARLY_STEPS = 1000  # the paper's "~1,000 steps" early phase on CIFAR


def seed_mean(run: dict[str, Any], key: str) -> np.ndarray:
    """Seed-mean curve of one metric of one run (null → NaN, ignored in the mean)."""
    rows = [[np.nan if v is None else v for v in m[key]] for m in run["per_seed"].values()]
    arr = np.array(rows, dtype=float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps (relative MSE at step 0)
        return np.nanmean(arr, axis=0) if np.isfinite(arr).any() else arr[0]


def col(table: Table, key: str) -> np.ndarray:
    """A numeric column (empty cells → NaN)."""
    return np.array([np.nan if v in (None, "") else float(v) for v in table[key]], dtype=float)


def loglog_slope(ds: list[int], values: np.ndarray) -> float:
    """Least-squares slope of log(value) against log(d)."""
    return float(np.polyfit(np.log(ds), np.log(values), 1)[0])


def loglog_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of log y against log x over the finite positive points."""
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return math.nan, math.nan
    slope, icpt = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(slope), float(icpt)


# ---------------------------------------------------------------------------------------------- runs
def sweep_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Top-level summary: the single run's summary, or by_d + slope (+ the largest d's keys) for several d."""
    if len(runs) == 1:
        return dict(runs[0]["summary"])
    by_d = [r["summary"] for r in runs]
    ds = [s["d"] for s in by_d]
    per_seed = np.array([s["max_rel_test_mse_early_per_seed"] for s in by_d], dtype=float)  # (D, K)
    slopes = [loglog_slope(ds, per_seed[:, k]) for k in range(per_seed.shape[1])]
    mse_mean = np.array([s["max_test_mse_early"] for s in by_d])
    out = dict(by_d[int(np.argmax(ds))])
    out.update(
        by_d=by_d,
        slope={
            "metric": "max_rel_test_mse_early",
            "mean": float(np.mean(slopes)),
            "std": float(np.std(slopes, ddof=1)) if len(slopes) > 1 else 0.0,
            "per_seed": slopes,
            "of_seed_mean": loglog_slope(ds, per_seed.mean(axis=1)),
            "test_mse_of_seed_mean": loglog_slope(ds, mse_mean),
        },
        escape=escape_study(runs),
        wall_time_s=float(sum(s["wall_time_s"] for s in by_d)),
    )
    return out


def escape_study(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Escape step t* against the theorem's time scale d·log(d)/η (docs/theory.md §4: T = c·d·log d/η).

    Returns per d: t* (seed-mean curve; null if not reached within --steps), d·log(d)/η, their ratio
    c* = t*·η/(d log d) — constant in d if the prediction T ∝ d·log d/η holds — and the log-log slope
    of t* against d·log(d)/η over the d that escaped (1 if the prediction holds)."""
    d = [r["config"]["d"] for r in runs]
    scale = [window_scale(r["config"]["d"], r["config"]["lr"]) for r in runs]
    t_star = [r["summary"]["escape_step"] for r in runs]
    ratio = [None if t is None else t / sc for t, sc in zip(t_star, scale, strict=True)]
    hit = [(sc, t) for sc, t in zip(scale, t_star, strict=True) if t is not None]
    slope = loglog_slope([h[0] for h in hit], np.array([h[1] for h in hit], dtype=float)) if len(hit) >= 2 else None
    return {"d": d, "escape_step": t_star, "d_log_d_over_lr": scale, "c_star": ratio, "slope_vs_d_log_d": slope}


# ---------------------------------------------------------------------------------------------- tables
def fig1c_slopes(table: Table) -> dict[str, dict[str, float]]:
    """Per series: the log-log slope of max rel MSE vs d per seed, their mean and std (Fig 1c's fit)."""
    out = {}
    series, d, y, seed = np.array(table["series"]), col(table, "d"), col(table, "max_rel_mse_early"), col(table, "seed")
    for name in dict.fromkeys(series.tolist()):
        slopes = [loglog_fit(d[(series == name) & (seed == s)], y[(series == name) & (seed == s)])[0]
                  for s in np.unique(seed[series == name])]
        slopes = [v for v in slopes if np.isfinite(v)]
        out[name] = {"mean": float(np.mean(slopes)) if slopes else math.nan,
                     "std": float(np.std(slopes, ddof=1)) if len(slopes) > 1 else 0.0, "n_seeds": len(slopes)}
    return out


def escape_means(table: Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct d of an escape table: d, the seed-mean t* (NaN if no seed escaped) and d·log(d)/η."""
    d, t, scale = col(table, "d"), col(table, "escape_step"), col(table, "d_log_d_over_lr")
    ds = np.unique(d)
    t_mean = np.array([np.nanmean(t[d == v]) if np.isfinite(t[d == v]).any() else np.nan for v in ds])
    return ds, t_mean, np.array([scale[d == v][0] for v in ds])


def escape_fit(table: Table) -> dict[str, float]:
    """Log-log slope of the seed-mean t* against d·log(d)/η (1 if t* ∝ d log d/η) and c* = t*η/(d log d)."""
    ds, t_mean, sc = escape_means(table)
    slope, _icpt = loglog_fit(sc, t_mean)
    return {"slope": slope, "c_star": float(np.nanmean(t_mean / sc)) if np.isfinite(t_mean).any() else math.nan,
            "reached": int(np.isfinite(t_mean).sum()), "n_d": len(ds)}
