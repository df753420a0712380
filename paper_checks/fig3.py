"""The Fig 3 checks (CIFAR cats vs horses): the agreement window and the V_lin⊥ residual, one check per study.

Two claims (docs/theory.md §5): the net tracks its linear model for ~1,000 steps, then departs
(``fig3_window``); its test residual in V_lin⊥ drops below the linear model's only after the early
phase (``vlin_perp``). Each study is one choice of the details the paper does not give (activation,
input normalisation, width, n): a single run gives a one-row check (``fig3_<study>_window``,
``vlin_perp_<study>``), a grid of runs a choice table (``fig3_grid``, ``fig3_grid_wide``,
``fig3_cnn_cpu``). The rows and their thresholds are :mod:`paper_checks.rows`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from earlylin.experiments.analysis import FIG3_EARLY_STEPS
from paper_checks.result import FIG3_GRIDS, FIG3_SINGLE, CheckResult, from_rows
from paper_checks.rows import (
    FIG3_CRITERION,
    FIG3_REGIME_CRITERION,
    PERP_CLAIM,
    PERP_CRITERION,
    fig3_rows,
    perp_row,
    run_curve,
)
from paper_checks.verdicts import summarise

Records = dict[str, dict[str, Any]]

FIG3_CLAIM = ("On CIFAR cats vs horses the net tracks its linear model early (small relative MSE, equal test "
              "losses), then departs (Fig 3).")
def _setting(run: dict[str, Any]) -> str:
    """'FC, erf, ‖x‖ = √d' / 'CNN, ReLU, per-coordinate inputs' from a CIFAR run's config."""
    c = run["config"]
    inputs = "‖x‖ = √d" if c.get("cifar_norm") == "sphere" else "per-coordinate inputs"
    return f"{c['arch'].upper()}, {c['activation']}, {inputs}"


def window(rec: Records, study: str) -> CheckResult:
    """The window check of one single-run study under both early windows (a choice table of two rows); with the
    exact-NTK model, its early relative MSE (finite width alone) is reported beside the paper-window row."""
    run = rec[study]["runs"][0]
    rows = fig3_rows(run)
    if "test_rel_mse_ntk_inf" in next(iter(run["per_seed"].values())):
        steps, rel_ntk = run_curve(run, "test_rel_mse_ntk_inf")
        early = (steps >= 1) & (steps <= FIG3_EARLY_STEPS)
        rows[0].numbers["rel_mse_ntk_inf_early"] = float(np.nanmax(rel_ntk[early]))
        rows[0].measured += (f"; to the exact-NTK model (finite width alone): "
                             f"{rows[0].numbers['rel_mse_ntk_inf_early']:.4g}")
    if study == "fig3_fc_fitted":  # separates wrong derived constants from a non-linear net
        lm = run.get("linear_model") or {}
        if "fitted" in lm and "derived" in lm:
            rows[0].measured += "; constants derived → fitted: " + ", ".join(
                f"{k} {lm['derived'][k]:.4g} → {lm['fitted'][k]:.4g}" for k in ("A", "B"))
    verdict, summary = summarise(rows)
    return CheckResult(
        f"{study}_window", f"On CIFAR cats vs horses the net ({_setting(run)}) tracks its linear model early "
        "(small relative MSE, equal test losses), then departs (Fig 3).",
        "relative MSE small for ~1,000 steps, then growing", " | ".join(r.measured for r in rows),
        f"{FIG3_CRITERION}; {FIG3_REGIME_CRITERION}", verdict, (study,), {r.choice: r.numbers for r in rows},
        rows=rows, summary=summary)


def vlin_perp(rec: Records, study: str) -> CheckResult:
    """The V_lin⊥ check of one single-run study (against the exact-NTK model where it was run)."""
    run = rec[study]["runs"][0]
    row = perp_row(run)
    return CheckResult(
        f"vlin_perp{study.removeprefix('fig3')}", f"The net's ({_setting(run)}) test residual in V_lin⊥ (which "
        "a linear model cannot change) drops below the linear model's only after the early phase (Fig 3a).",
        "V_lin⊥ residual flat early, then falls", row.measured, PERP_CRITERION, row.verdict, (study,), row.numbers,
        rows=[row])


def grid_window(rec: Records, study: str) -> CheckResult:
    """The window check of a grid study: one row per run."""
    rows = [row for run in rec[study]["runs"] for row in fig3_rows(run)]
    return from_rows(f"{study}_window", f"{FIG3_CLAIM} — {FIG3_GRIDS[study]}",
                     "relative MSE small for ~1,000 steps, then growing (activation, input normalisation and width "
                     "not given)", f"{FIG3_CRITERION}; {FIG3_REGIME_CRITERION}", rows, (study,))


def grid_vlin_perp(rec: Records, study: str) -> CheckResult:
    """The V_lin⊥ check of a grid study: one row per run."""
    rows = [perp_row(run) for run in rec[study]["runs"]]
    return from_rows(f"vlin_perp{study.removeprefix('fig3')}", f"{PERP_CLAIM} — {FIG3_GRIDS[study]}",
                     "V_lin⊥ residual flat early, then falls", PERP_CRITERION, rows, (study,))


def _bind(fn: Any, study: str) -> Any:
    return lambda rec: fn(rec, study)


# check name → (check, its studies), in the report's order
WINDOW_CHECKS = {**{f"{s}_window": (_bind(window, s), (s,)) for s in FIG3_SINGLE},
                 **{f"{s}_window": (_bind(grid_window, s), (s,)) for s in FIG3_GRIDS}}
PERP_CHECKS = {**{f"vlin_perp{s.removeprefix('fig3')}": (_bind(vlin_perp, s), (s,)) for s in FIG3_SINGLE
                  if s != "fig3_fc_fitted"},
               **{f"vlin_perp{s.removeprefix('fig3')}": (_bind(grid_vlin_perp, s), (s,)) for s in FIG3_GRIDS}}
