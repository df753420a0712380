"""Per-run rows of the choice-table checks (Fig 2 per target, Fig 3 and V_lin⊥ per CIFAR run) and their thresholds.

Each function turns one run record into a :class:`paper_checks.verdicts.Row`: the choice (target, or
architecture/width/activation/inputs/n), what was measured and the verdict under criteria fixed here,
before any run. :mod:`paper_checks.checks` assembles the rows into checks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from earlylin.config import REGIME_EPS
from earlylin.experiments.analysis import FIG3_EARLY_STEPS, seed_mean
from earlylin.experiments.regime import linear_regime
from paper_checks.verdicts import FAILS, HOLDS, INCONCLUSIVE, Row

NORM_RATIO = 2.0         # Fig 2: the stripped model's early MSE to the net ≥ 2× f^lin's
NORM_RATIO_FAIL = 1.25   # below this the stripped model tracks as well as f^lin
FIG2_AGREE_REL = 0.05    # Fig 2: f^lin's early MSE to the net / mean y² (targets of any scale; ≈ AGREE_MSE for
FIG2_AGREE_REL_FAIL = 0.15  # the ±1-scale norm target, mean y² ≈ 0.35); above FAIL f^lin does not track
FIG3_REL = 0.1           # max relative MSE(net, linear) over 1 ≤ t ≤ 1,000
FIG3_REL_FAIL = 0.3
FIG3_GROWTH = 2.0        # relative MSE at the last step ≥ 2× its early maximum ("then growing")
FIG3_REGIME_MIN = FIG3_EARLY_STEPS // 2   # measured window: the linear regime lasts ≥ half the paper's ~1,000 steps
FIG3_REGIME_FAIL = FIG3_EARLY_STEPS // 4  # ... and ending before a quarter of them contradicts the claim
PERP_EARLY = 0.02        # V_lin⊥ residual of the net may drop ≤ 2% below the linear model's early
PERP_EARLY_FAIL = 0.05
PERP_LATE = 0.05         # ... and must drop ≥ 5% by the last step


def run_curve(run: dict[str, Any], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Recorded steps and the seed-mean curve of one metric."""
    return np.array(next(iter(run["per_seed"].values()))["steps"]), seed_mean(run, key)


def _early_max(run: dict[str, Any], key: str) -> float:
    """Seed mean of each seed's max over t ≤ T of one metric."""
    T = run["summary"]["early_window_steps"]
    per = [np.nanmax(np.array(m[key], float)[np.array(m["steps"]) <= T]) for m in run["per_seed"].values()]
    return float(np.mean(per))


def fig2_row(run: dict[str, Any]) -> Row:
    """One target of Fig 2: f^lin and the stripped model against the net over t ≤ T, with the ablations."""
    s, c = run["summary"], run["config"]
    lin, stripped = s["max_test_mse_early"], s["max_test_mse_stripped_early"]
    y2 = float(np.mean([2 * m["test_loss_net"][0] for m in run["per_seed"].values()]))  # f₀ ≡ 0: mean y²
    ratio = stripped / lin if lin > 0 else math.inf
    rel = lin / y2 if y2 > 0 else math.inf
    nums: dict[str, Any] = {"mse_lin": lin, "mse_stripped": stripped, "ratio": ratio, "mean_y2": y2, "rel_lin": rel}
    first = next(iter(run["per_seed"].values()))
    ablations = ""
    for name in ("no_norm", "no_const"):
        if f"test_mse_{name}" in first:
            nums[f"mse_{name}"] = _early_max(run, f"test_mse_{name}")
            nums[f"ratio_{name}"] = nums[f"mse_{name}"] / lin if lin > 0 else math.inf
            ablations += f"; without {'q' if name == 'no_norm' else 'the constants'} {nums['mse_' + name]:.4g} " \
                         f"(ratio {nums['ratio_' + name]:.3f})"
    if ratio >= NORM_RATIO and rel <= FIG2_AGREE_REL:
        verdict = HOLDS
    elif ratio < NORM_RATIO_FAIL or rel > FIG2_AGREE_REL_FAIL:
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    measured = (f"over t ≤ T = {s['early_window_steps']}: max test MSE to the net f^lin {lin:.4g} ({100 * rel:.2f}% "
                f"of mean y² = {y2:.3g}), stripped {stripped:.4g} (ratio {ratio:.3f}){ablations}; last step "
                f"({c['steps']}) test loss net {s['test_loss_net']:.4g}, f^lin {s['test_loss_lin']:.4g}, stripped "
                f"{s['test_loss_stripped']:.4g}")
    return Row(f"target {c['target']}", measured, verdict, nums)


FIG3_CRITERION = (f"holds if early rel. MSE ≤ {FIG3_REL} and it grows ≥ {FIG3_GROWTH}×; fails if early rel. MSE > "
                  f"{FIG3_REL_FAIL}")


def _choice(run: dict[str, Any]) -> str:
    """'FC 256, erf, sphere, n = 1,000' — the setting of one CIFAR run."""
    c = run["config"]
    return f"{c['arch'].upper()} {c['width']}, {c['activation']}, {c.get('cifar_norm', 'coordinate')}, n = {c['n']:,}"


def _label(run: dict[str, Any]) -> str:
    """The run's setting, with its linear model where that is not the derived f^lin."""
    c = run["config"]
    return _choice(run) + ("" if c["linear"] == "derived" else f", {c['linear']} linear model")


FIG3_WINDOWS = ("the paper's ~1,000 steps", "the measured linear regime")  # the early window: a detail of choice
FIG3_REGIME_CRITERION = (f"measured window: holds if the linear regime (relative test MSE above max(ε, escape factor "
                         f"× initial mismatch), docs/theory.md §4.5) ends at t ≥ {FIG3_REGIME_MIN}; fails if it ends "
                         f"before t = {FIG3_REGIME_FAIL}; inconclusive between, or if it never ends within the run")


def fig3_rows(run: dict[str, Any]) -> list[Row]:
    """One CIFAR run under both early windows (:data:`FIG3_WINDOWS`): the paper's fixed ~1,000 steps
    (:func:`fig3_row`) and the linear regime measured from the run (:func:`fig3_regime_row`)."""
    return [fig3_row(run), fig3_regime_row(run)]


def fig3_regime_row(run: dict[str, Any]) -> Row:
    """The window claim with the window measured from the run itself: where the seed-mean relative test MSE
    first leaves the linear regime (:func:`earlylin.experiments.regime.linear_regime`, the run summary's
    ``linear_regime_steps``, recomputed from the curves so that records made before that key exist are read
    the same way)."""
    steps, rel = run_curve(run, "test_rel_mse")
    c = run["config"]
    eps = float(c.get("regime_eps", REGIME_EPS))
    mismatch, threshold, end = linear_regime(steps, rel, eps, float(c.get("escape_factor", 2.0)))
    if end is None:
        verdict = INCONCLUSIVE
    elif end >= FIG3_REGIME_MIN:
        verdict = HOLDS
    else:
        verdict = FAILS if end < FIG3_REGIME_FAIL else INCONCLUSIVE
    start = "n/a" if mismatch is None else f"{mismatch:.4g}"
    ends = (f"never left within the run ({int(steps[-1])} steps)" if end is None
            else f"ends at step {end} (η·t = {end * c['lr']:.4g})")
    measured = (f"linear regime (rel. test MSE ≤ {threshold:.4g} = max(ε = {eps:g}, escape factor × initial mismatch "
                f"{start})): {ends}")
    return Row(f"{_label(run)}; window: {FIG3_WINDOWS[1]}", measured, verdict,
               {"linear_regime_steps": end, "initial_mismatch": mismatch, "regime_threshold": threshold})


def fig3_row(run: dict[str, Any]) -> Row:
    steps, rel = run_curve(run, "test_rel_mse")
    _, net = run_curve(run, "test_loss_net")
    _, lin = run_curve(run, "test_loss_lin")
    early = (steps >= 1) & (steps <= FIG3_EARLY_STEPS)
    rel_early = float(np.nanmax(rel[early]))
    dloss = float(np.nanmax(np.abs(net - lin)[steps <= FIG3_EARLY_STEPS]))
    growth = float(rel[-1] / rel_early)
    short = steps[-1] < 2 * FIG3_EARLY_STEPS
    if rel_early > FIG3_REL_FAIL:
        verdict = FAILS
    elif rel_early <= FIG3_REL and growth >= FIG3_GROWTH:
        verdict = HOLDS
    else:
        verdict = INCONCLUSIVE
    c = run["config"]
    measured = (f"max rel. test MSE over 1 ≤ t ≤ {FIG3_EARLY_STEPS}: {rel_early:.4g}; max |Δ test loss| {dloss:.4g}; "
                f"at step {int(steps[-1])} rel. MSE {rel[-1]:.4g} ({growth:.1f}× the early max)"
                + (" — run shorter than 2,000 steps" if short else "")
                + f" [width {c['width']}, n = {c['n']}, η = {c['lr']}, linear = {c['linear']}]")
    return Row(f"{_label(run)}; window: {FIG3_WINDOWS[0]}", measured, verdict,
               {"rel_mse_early": rel_early, "dloss_early": dloss, "growth": growth})


def perp_row(run: dict[str, Any]) -> Row:
    """The drop of the net's V_lin⊥ test residual below the reference's: the exact-NTK model's where it was run
    (finite width and feature learning alone), else f^lin's (which mixes in the kernel's own drop). With the
    exact-NTK model, its own drop below f^lin's (the linearisation in ρ: kernel GD leaves V_lin too) is reported."""
    steps, perp_net = run_curve(run, "test_res_perp_net")
    _, perp_lin = run_curve(run, "test_res_perp_lin")
    first = next(iter(run["per_seed"].values()))
    has_ntk = "test_res_perp_ntk_inf" in first
    ref = run_curve(run, "test_res_perp_ntk_inf")[1] if has_ntk else perp_lin
    drop = (ref - perp_net) / ref
    early = steps <= FIG3_EARLY_STEPS
    early_drop, late_drop = float(np.nanmax(drop[early])), float(drop[-1])
    nums: dict[str, Any] = {"early_drop": early_drop, "late_drop": late_drop,
                            "reference": "exact-NTK model" if has_ntk else "f^lin"}
    if early_drop > PERP_EARLY_FAIL or late_drop <= 0:
        verdict = FAILS
    elif early_drop <= PERP_EARLY and late_drop >= PERP_LATE:
        verdict = HOLDS
    else:
        verdict = INCONCLUSIVE
    against = "the exact-NTK model's" if has_ntk else "f^lin's (exact-NTK model not run: includes the kernel's drop)"
    measured = (f"drop of the net's V_lin⊥ residual below {against}: max {100 * early_drop:.2f}% over "
                f"t ≤ {FIG3_EARLY_STEPS}, {100 * late_drop:.2f}% at step {int(steps[-1])}")
    if has_ntk:
        kdrop = (perp_lin - ref) / perp_lin
        nums["kernel_early_drop"], nums["kernel_late_drop"] = float(np.nanmax(kdrop[early])), float(kdrop[-1])
        nums["lin_early_drop"] = float(np.nanmax(((perp_lin - perp_net) / perp_lin)[early]))
        measured += (f"; the infinite-width kernel's own drop below f^lin's: max "
                     f"{100 * nums['kernel_early_drop']:.2f}% over t ≤ {FIG3_EARLY_STEPS}, "
                     f"{100 * nums['kernel_late_drop']:.2f}% at the last step (the net "
                     f"below f^lin: {100 * nums['lin_early_drop']:.2f}% early)")
    return Row(_choice(run), measured, verdict, nums)


PERP_CLAIM = ("The net's test residual in V_lin⊥ (which a linear model cannot change) drops below the linear "
              "model's only after the early phase (Fig 3a).")
PERP_CRITERION = ("against the exact-NTK model where run (else f^lin): holds if the early drop ≤ "
                  f"{100 * PERP_EARLY:.0f}% and the last ≥ {100 * PERP_LATE:.0f}%; fails if the early drop > "
                  f"{100 * PERP_EARLY_FAIL:.0f}% or the last ≤ 0")
