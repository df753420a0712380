"""One check per claim of Hu et al. (2020), each a function of study records → :class:`CheckResult`.

Every check states the claim in one sentence, the paper's value or qualitative statement, the
details the paper does not give and the check depends on (:data:`UNKNOWNS`), the criterion, and a
*choice table*: one row per choice of those details that was run (choice → measured → verdict
``holds``, ``fails`` or ``inconclusive``), summed up by :func:`paper_checks.verdicts.summarise` as
holds for every choice / depends (holds for X, fails for Y) / fails for every choice. A check with no
unknown detail, or with one choice run, has a one-row table. Several checks can test one claim
(:data:`CLAIM_OF`); the report counts claims by class. The criteria are fixed here, before any run,
and never tuned to a result; the thresholds are module constants. A check reads only the study
records of :mod:`earlylin.studies` (the same ones the figures are drawn from), so a constructed
record can exercise each verdict (tests/checks/test_checks.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from earlylin.experiments.analysis import escape_fit, fig1c_slopes, loglog_fit
from earlylin.figures.tables import table_escape, table_fig1c, table_phase, table_width_split
from earlylin.studies.phase import ALPHA_BOUNDARY, ALPHA_FIXED_M, ALPHA_GROWN, FIG1, path_slopes, summarise_slopes
from earlylin.studies.presets import FIG2_TARGETS
from paper_checks.fig3 import PERP_CHECKS, WINDOW_CHECKS
from paper_checks.result import CLAIM_OF, UNKNOWNS, CheckResult, from_rows
from paper_checks.rows import (  # the per-run rows and their thresholds, re-exported here
    FIG2_AGREE_REL,
    FIG2_AGREE_REL_FAIL,
    FIG3_GROWTH,
    FIG3_REL,
    FIG3_REL_FAIL,
    NORM_RATIO,
    NORM_RATIO_FAIL,
    PERP_EARLY,
    PERP_EARLY_FAIL,
    PERP_LATE,
    fig2_row,
    run_curve,
)
from paper_checks.training import TRAINING_CHECKS
from paper_checks.verdicts import DEPENDS, FAILS, HOLDS, INCONCLUSIVE, Row

__all__ = ["CHECKS", "CHECK_STUDIES", "CLAIM_OF", "DEPENDS", "FAILS", "FIG3_GROWTH", "FIG3_REL", "FIG3_REL_FAIL",
           "HOLDS", "INCONCLUSIVE", "PERP_EARLY", "PERP_EARLY_FAIL", "PERP_LATE", "UNKNOWNS", "CheckResult", "Row"]

# Thresholds (outputs are ±1-scale labels; the losses start at 0.5)
AGREE_MSE = 0.02         # max test MSE(net, f^lin) over t ≤ T for "indistinguishable"
AGREE_MSE_LOOSE = 0.05   # above this the agreement claim fails
AGREE_LOSS = 0.01        # max |test loss net − test loss f^lin| over t ≤ T
LATE_GAIN = 0.03         # the net's final train loss must be ≥ 3% below f^lin's plateau
FIG2_STUDIES = tuple(f"fig2_target_{t}" for t in FIG2_TARGETS)  # one row per target
ESCAPE_SLOPE = (0.7, 1.3)  # log-log slope of t* against d·log(d)/η


def _slope_verdict(per_seed: list[float]) -> str:
    """A decrease in d: every seed's slope < 0 holds; a mean slope ≥ 0 fails; otherwise inconclusive."""
    vals = [v for v in per_seed if v is not None and np.isfinite(v)]
    if len(vals) == 0:
        return INCONCLUSIVE
    if all(v < 0 for v in vals):
        return HOLDS
    return FAILS if np.mean(vals) >= 0 else INCONCLUSIVE


def fig1_window(rec: dict[str, dict[str, Any]]) -> CheckResult:
    run = rec["fig1"]["runs"][0]
    s = run["summary"]
    T = s["early_window_steps"]
    steps, net = run_curve(run, "test_loss_net")
    _, lin = run_curve(run, "test_loss_lin")
    dloss = float(np.nanmax(np.abs(net - lin)[steps <= T]))
    mse = s["max_test_mse_early"]
    verdict = HOLDS if mse <= AGREE_MSE and dloss <= AGREE_LOSS else FAILS if mse > AGREE_MSE_LOOSE else INCONCLUSIVE
    return CheckResult(
        "fig1_window", "Early in training the two-layer erf net and its linear model f^lin have "
        "indistinguishable train/test losses and outputs (Fig 1a/b).",
        "indistinguishable for ~1,000 steps (d = 50, m = 256, n = 20,000)",
        f"over t ≤ T = {T}: max test MSE(net, f^lin) = {mse:.4g}, max |Δ test loss| = {dloss:.4g}",
        f"holds if MSE ≤ {AGREE_MSE} and |Δ loss| ≤ {AGREE_LOSS}; fails if MSE > {AGREE_MSE_LOOSE}",
        verdict, ("fig1",), {"T": T, "max_test_mse_early": mse, "max_abs_dloss_early": dloss})


def fig1_late(rec: dict[str, dict[str, Any]]) -> CheckResult:
    run = rec["fig1"]["runs"][0]
    steps, net = run_curve(run, "train_loss_net")
    _, lin = run_curve(run, "train_loss_lin")
    gain = float((lin[-1] - net[-1]) / lin[-1])
    verdict = HOLDS if gain >= LATE_GAIN else FAILS if gain <= 0 else INCONCLUSIVE
    return CheckResult(
        "fig1_late", "After the early phase the net keeps improving while f^lin plateaus (Fig 1a).",
        "the net's loss falls below the linear model's after ~1,000 steps",
        f"at step {int(steps[-1])}: train loss net {net[-1]:.4g} vs f^lin {lin[-1]:.4g} ({100 * gain:.1f}% lower)",
        f"holds if the net is ≥ {100 * LATE_GAIN:.0f}% below f^lin; fails if not below",
        verdict, ("fig1",), {"train_loss_net": float(net[-1]), "train_loss_lin": float(lin[-1]), "gain": gain})


def _fig1c(rec: dict[str, dict[str, Any]], series: str) -> CheckResult:
    table = table_fig1c(rec)
    sl = fig1c_slopes(table)[series]
    runs = rec[f"fig1c_{series}"]["runs"]
    per_seed = [loglog_fit(np.array([r["config"]["d"] for r in runs], float),
                           np.array([r["summary"]["max_rel_test_mse_early_per_seed"][k] for r in runs], float))[0]
                for k in range(len(runs[0]["config"]["seeds"]))]
    sizes = ", ".join(f"d={r['config']['d']}: n={r['config']['n']}, m={r['config']['width']}" for r in runs)
    what = "at the paper's fixed width m = 256" if series == "fixed" else "with n and m grown as d^{1+α}"
    return CheckResult(
        f"fig1c_{series}", f"The MSE between the net and f^lin decreases with d ({what}).",
        "decreasing in d (Fig 1c; the theorem: ≲ d^{−Ω(α)} for n, m ≳ d^{1+α})",
        f"log-log slope of max rel. MSE (t ≤ T) vs d: {sl['mean']:.3f} ± {sl['std']:.3f} over "
        f"{sl['n_seeds']} seeds ({sizes})" + ("; at fixed m the width part of the error (≈ d/m, second_layer_width) "
                                              "grows with d and dominates" if series == "fixed" else ""),
        "holds if every seed's slope < 0; fails if the mean slope ≥ 0",
        _slope_verdict(per_seed), (f"fig1c_{series}",), {"slope_mean": sl["mean"], "slope_std": sl["std"],
                                                          "per_seed": per_seed})


def fig1c_fixed(rec: dict[str, dict[str, Any]]) -> CheckResult:
    return _fig1c(rec, "fixed")


def fig1c_scaled(rec: dict[str, dict[str, Any]]) -> CheckResult:
    return _fig1c(rec, "scaled")


def fig2_norm(rec: dict[str, dict[str, Any]]) -> CheckResult:
    rows = [fig2_row(rec[study]["runs"][0]) for study in FIG2_STUDIES]
    return from_rows(
        "fig2_norm", "For ReLU the norm (and constant) features are necessary: f^lin tracks the net, "
        "f^lin without them does not (Fig 2).",
        "f^lin tracks the net; the stripped model visibly departs (the target's formula is not given)",
        f"per target: holds if the stripped model's early MSE to the net is ≥ {NORM_RATIO}× f^lin's and f^lin's is "
        f"≤ {100 * FIG2_AGREE_REL:.0f}% of mean y²; fails if the ratio < {NORM_RATIO_FAIL} or f^lin's MSE > "
        f"{100 * FIG2_AGREE_REL_FAIL:.0f}% of mean y² (the ablations without q / without the constant columns are "
        "reported, not judged)",
        rows, FIG2_STUDIES)


def first_layer_rate(rec: dict[str, dict[str, Any]]) -> CheckResult:
    runs = rec["first_layer"]["runs"]
    ds = np.array([r["config"]["d"] for r in runs], float)
    per_seed = [loglog_fit(ds, np.array([r["summary"]["max_rel_test_mse_early_per_seed"][k] for r in runs], float))[0]
                for k in range(len(runs[0]["config"]["seeds"]))]
    vals = ", ".join(f"d={int(d)}: {r['summary']['max_rel_test_mse_early']:.3g}" for d, r in zip(ds, runs, strict=True))
    return CheckResult(
        "first_layer_rate", "Training the first layer only, the net stays within d^{−Ω(α)} of f^lin1 for t ≤ T "
        "when n, m ≳ d^{1+α} (first-layer theorem).",
        "error ≲ d^{−Ω(α)}: decreasing in d",
        f"max rel. test MSE (t ≤ T): {vals}; log-log slope {np.mean(per_seed):.3f} ± "
        f"{np.std(per_seed, ddof=1) if len(per_seed) > 1 else 0:.3f}",
        "holds if every seed's slope < 0; fails if the mean slope ≥ 0",
        _slope_verdict(per_seed), ("first_layer",), {"per_seed": per_seed})


def second_layer_width(rec: dict[str, dict[str, Any]]) -> CheckResult:
    table = table_width_split(rec)
    m = np.array(table["m"], float)
    ms = np.unique(m)
    means = {k: np.array([np.mean(np.array(table[k], float)[m == v]) for v in ms]) for k in ("total", "nonlinear",
                                                                                               "width")}
    slope_total, _ = loglog_fit(ms, means["total"])
    slope_width, _ = loglog_fit(ms, means["width"])
    if slope_total >= 0:
        verdict = FAILS
    elif slope_width < -0.5:
        verdict = HOLDS
    else:
        verdict = INCONCLUSIVE
    d = int(table["d"][0])
    parts = "; ".join(f"m={int(v)}: total {means['total'][i]:.3g}, nonlinear {means['nonlinear'][i]:.3g}, "
                      f"width {means['width'][i]:.3g}" for i, v in enumerate(ms))
    return CheckResult(
        "second_layer_width", "The second-layer agreement needs m ≳ d^{1+α}: at fixed d the error falls with m, "
        "its width part like d/m, leaving the nonlinear part.",
        f"needs m ≳ d^{{1+α}} (d = {d}: d^1.25 = {d ** 1.25:.0f}, d^1.5 = {d ** 1.5:.0f})",
        f"max test MSE over t ≤ T — {parts}; slopes vs m: total {slope_total:.2f}, width part {slope_width:.2f}",
        "holds if the total error falls with m and the width part falls faster than m^{−1/2}; fails if the "
        "total does not fall",
        verdict, ("width",), {"slope_total": slope_total, "slope_width": slope_width,
                              **{f"{k}_by_m": v.tolist() for k, v in means.items()}, "m": ms.tolist()})


def kernel_bound(rec: dict[str, dict[str, Any]]) -> CheckResult:
    slopes = rec["kernel"]["kernel"]["summary"]["slope_by_block"]
    rows = rec["kernel"]["kernel"]["rows"]
    pts = sorted({(r["d"], r["n"], r["m"]) for r in rows})
    main = slopes.get("both") or next(iter(slopes.values()))
    mean, std = main["mean"], main["std"] or 0.0
    verdict = HOLDS if mean + std < 0 else FAILS if mean - std > 0 else INCONCLUSIVE
    per_block = ", ".join(f"{b} {v['mean']:.3f} ± {(v['std'] or 0):.3f}" for b, v in slopes.items())
    return CheckResult(
        "kernel_bound", "At initialisation ‖Θ(0) − Θ^lin‖ ≲ n/d^{1+α} while ‖Θ^lin‖ ≍ n/d, so the ratio falls like "
        "d^{−α} (the proof's key step).",
        "‖Θ(0) − Θ^lin‖/‖Θ^lin‖ ≲ d^{−α}, α ∈ (0, 1/4)",
        f"exponent of the ratio vs d: {per_block} (points (d, n, m): {pts})",
        "verdict on the both-layer block: holds if exponent + std < 0; fails if exponent − std > 0",
        verdict, ("kernel",), {"slopes": {b: v["mean"] for b, v in slopes.items()}})


def escape_scaling(rec: dict[str, dict[str, Any]]) -> CheckResult:
    table = table_escape(rec)
    fit = escape_fit(table)
    if fit["reached"] < 2:
        verdict = INCONCLUSIVE
    else:
        verdict = HOLDS if ESCAPE_SLOPE[0] <= fit["slope"] <= ESCAPE_SLOPE[1] else FAILS
    d = np.array(table["d"], float)
    t = np.array([np.nan if v is None else v for v in table["escape_step"]], float)
    per_d = ", ".join(f"d={int(v)}: {np.nanmean(t[d == v]) if np.isfinite(t[d == v]).any() else 'not reached'}"
                      for v in np.unique(d))
    return CheckResult(
        "escape_scaling", "The agreement lasts for t ≤ T = c·d·log(d)/η: the step where the net leaves f^lin "
        "grows like d·log(d)/η.",
        "T = c·d·log d/η (the theorem's time window)",
        f"escape step t* (MSE doubles after T, seed mean): {per_d}; slope vs d·log d/η {fit['slope']:.2f}, "
        f"c* = {fit['c_star']:.1f}",
        f"holds if the slope is in [{ESCAPE_SLOPE[0]}, {ESCAPE_SLOPE[1]}]; inconclusive if fewer than two d escaped",
        verdict, ("escape",), fit)


def phase_diagram(rec: dict[str, dict[str, Any]]) -> CheckResult:
    """Slopes in d of the early error, read off the (d, m/d) grid along m ∝ d^{3/2} and at fixed m (earlylin/phase)."""
    table = table_phase(rec)
    paths = {"grown": path_slopes(table, ALPHA_GROWN), "fixed_m": path_slopes(table, ALPHA_FIXED_M)}
    g, f = (summarise_slopes(paths[k]) for k in ("grown", "fixed_m"))
    if g["n"] == 0 or f["n"] == 0:
        verdict = INCONCLUSIVE
    elif g["max"] < 0 and f["min"] > 0:
        verdict = HOLDS
    else:
        verdict = FAILS if g["mean"] >= 0 or f["mean"] <= 0 else INCONCLUSIVE
    ds, rs = sorted({float(v) for v in table["d"]}), sorted({float(v) for v in table["m_over_d"]})
    failed = sum(bool(e) for e in table["error"])
    fig1_side = "above" if FIG1["m"] >= FIG1["d"] ** (1 + ALPHA_BOUNDARY) else "below"
    return CheckResult(
        "phase_diagram", "The early-window error falls with d along m ∝ d^{1+α} and rises with d at fixed m (both "
        "layers, erf, n ∝ d^{3/2}): the linear regime needs m ≳ d^{1+α}.",
        "error ≲ d^{−Ω(α)} when n, m ≳ d^{1+α}, α ∈ (0, 1/4); no guarantee when m ≪ d^{1+α}",
        f"log-log slope in d of the max rel. test MSE (t ≤ T) along m ∝ d^{{3/2}}: {g['mean']:.3f} ± {g['std']:.3f} "
        f"(from {g['min']:.3f} to {g['max']:.3f}, {g['n']} seed-paths); at fixed m: {f['mean']:.3f} ± {f['std']:.3f} "
        f"(from {f['min']:.3f} to {f['max']:.3f}, {f['n']} seed-paths); grid d ∈ {[int(v) for v in ds]} × m/d ∈ "
        f"{[f'{v:g}' for v in rs]}, {failed} failed row(s); the Fig 1 point (d = {FIG1['d']}, m = {FIG1['m']}) lies "
        f"{fig1_side} m = d^{{1+α}}, α = {ALPHA_BOUNDARY}",
        "holds if every slope along m ∝ d^{3/2} is < 0 and every slope at fixed m is > 0; fails if the mean slope "
        "along m ∝ d^{3/2} is ≥ 0 or the mean at fixed m ≤ 0",
        verdict, ("phase",), {"grown": g, "fixed_m": f, "paths": paths, "failed_rows": failed})


_OTHER: dict[str, tuple[Callable[[dict[str, dict[str, Any]]], CheckResult], tuple[str, ...]]] = {
    "fig1_window": (fig1_window, ("fig1",)), "fig1_late": (fig1_late, ("fig1",)),
    "fig1c_fixed": (fig1c_fixed, ("fig1c_fixed", "fig1c_scaled")),
    "fig1c_scaled": (fig1c_scaled, ("fig1c_fixed", "fig1c_scaled")), "fig2_norm": (fig2_norm, FIG2_STUDIES),
}
_LATER = {"first_layer_rate": (first_layer_rate, ("first_layer",)),
          "second_layer_width": (second_layer_width, ("width",)), "kernel_bound": (kernel_bound, ("kernel",)),
          "escape_scaling": (escape_scaling, ("escape",)), "phase_diagram": (phase_diagram, ("phase",))}
_ALL = {**_OTHER, **WINDOW_CHECKS, **PERP_CHECKS, **_LATER, **TRAINING_CHECKS}  # the report's order
CHECKS: dict[str, Callable[[dict[str, dict[str, Any]]], CheckResult]] = {name: fn for name, (fn, _) in _ALL.items()}
# the studies each check reads (the runner loads or runs exactly these)
CHECK_STUDIES: dict[str, tuple[str, ...]] = {name: studies for name, (_, studies) in _ALL.items()}
