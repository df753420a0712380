"""One check per claim of Hu et al. (2020), each a function of study records → :class:`CheckResult`.

Every check states the claim in one sentence, the paper's value or qualitative statement, the
measured value, the criterion and a verdict: ``holds``, ``fails`` or ``inconclusive``. The criteria
are fixed here, before any run, and never tuned to a result; the thresholds are module constants.
A check reads only the study records of :mod:`earlylin.studies` (the same ones the figures are drawn
from), so a constructed record can exercise each verdict (tests/test_paper_checks.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from earlylin.analysis import FIG3_EARLY_STEPS, escape_fit, fig1c_slopes, loglog_fit, seed_mean
from earlylin.tables import table_escape, table_fig1c, table_width_split

HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"

# Thresholds (outputs are ±1-scale labels; the losses start at 0.5)
AGREE_MSE = 0.02         # max test MSE(net, f^lin) over t ≤ T for "indistinguishable"
AGREE_MSE_LOOSE = 0.05   # above this the agreement claim fails
AGREE_LOSS = 0.01        # max |test loss net − test loss f^lin| over t ≤ T
LATE_GAIN = 0.03         # the net's final train loss must be ≥ 3% below f^lin's plateau
NORM_RATIO = 2.0         # Fig 2: the stripped model's early MSE to the net ≥ 2× f^lin's
NORM_RATIO_FAIL = 1.25   # below this the stripped model tracks as well as f^lin
FIG3_REL = 0.1           # max relative MSE(net, linear) over 1 ≤ t ≤ 1,000
FIG3_REL_FAIL = 0.3
FIG3_GROWTH = 2.0        # relative MSE at the last step ≥ 2× its early maximum ("then growing")
PERP_EARLY = 0.02        # V_lin⊥ residual of the net may drop ≤ 2% below the linear model's early
PERP_EARLY_FAIL = 0.05
PERP_LATE = 0.05         # ... and must drop ≥ 5% by the last step
ESCAPE_SLOPE = (0.7, 1.3)  # log-log slope of t* against d·log(d)/η


@dataclass
class CheckResult:
    """The outcome of one check."""

    name: str
    claim: str
    paper: str
    measured: str
    criterion: str
    verdict: str
    studies: tuple[str, ...]
    numbers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _curve(run: dict[str, Any], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Recorded steps and the seed-mean curve of one metric."""
    return np.array(next(iter(run["per_seed"].values()))["steps"]), seed_mean(run, key)


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
    steps, net = _curve(run, "test_loss_net")
    _, lin = _curve(run, "test_loss_lin")
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
    steps, net = _curve(run, "train_loss_net")
    _, lin = _curve(run, "train_loss_lin")
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
        f"{sl['n_seeds']} seeds ({sizes})",
        "holds if every seed's slope < 0; fails if the mean slope ≥ 0",
        _slope_verdict(per_seed), (f"fig1c_{series}",), {"slope_mean": sl["mean"], "slope_std": sl["std"],
                                                          "per_seed": per_seed})


def fig1c_fixed(rec: dict[str, dict[str, Any]]) -> CheckResult:
    return _fig1c(rec, "fixed")


def fig1c_scaled(rec: dict[str, dict[str, Any]]) -> CheckResult:
    return _fig1c(rec, "scaled")


def fig2_norm(rec: dict[str, dict[str, Any]]) -> CheckResult:
    run = rec["fig2"]["runs"][0]
    s = run["summary"]
    lin, stripped = s["max_test_mse_early"], s["max_test_mse_stripped_early"]
    ratio = stripped / lin if lin > 0 else math.inf
    if ratio >= NORM_RATIO and lin <= AGREE_MSE:
        verdict = HOLDS
    elif ratio < NORM_RATIO_FAIL or lin > AGREE_MSE_LOOSE:
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    return CheckResult(
        "fig2_norm", "For ReLU the norm (and constant) features are necessary: f^lin tracks the net, "
        "f^lin without them does not (Fig 2).",
        "f^lin tracks the net; the stripped model visibly departs",
        f"over t ≤ T = {s['early_window_steps']}: max test MSE to the net f^lin {lin:.4g}, stripped {stripped:.4g} "
        f"(ratio {ratio:.2f}); last step test loss net {s['test_loss_net']:.4g}, f^lin {s['test_loss_lin']:.4g}, "
        f"stripped {s['test_loss_stripped']:.4g}",
        f"holds if ratio ≥ {NORM_RATIO} and f^lin's MSE ≤ {AGREE_MSE}; fails if ratio < {NORM_RATIO_FAIL} "
        f"or f^lin's MSE > {AGREE_MSE_LOOSE}",
        verdict, ("fig2",), {"mse_lin": lin, "mse_stripped": stripped, "ratio": ratio})


def _setting(run: dict[str, Any]) -> str:
    """'FC, erf, ‖x‖ = √d' / 'CNN, ReLU, per-coordinate inputs' from a CIFAR run's config."""
    c = run["config"]
    inputs = "‖x‖ = √d" if c.get("cifar_norm") == "sphere" else "per-coordinate inputs"
    return f"{c['arch'].upper()}, {c['activation']}, {inputs}"


def _fig3_window(rec: dict[str, dict[str, Any]], study: str) -> CheckResult:
    run = rec[study]["runs"][0]
    steps, rel = _curve(run, "test_rel_mse")
    _, net = _curve(run, "test_loss_net")
    _, lin = _curve(run, "test_loss_lin")
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
    return CheckResult(
        f"{study}_window", f"On CIFAR cats vs horses the net ({_setting(run)}) tracks its linear model early "
        "(small relative MSE, equal test losses), then departs (Fig 3).",
        "relative MSE small for ~1,000 steps, then growing",
        f"max rel. test MSE over 1 ≤ t ≤ {FIG3_EARLY_STEPS}: {rel_early:.4g}; max |Δ test loss| {dloss:.4g}; "
        f"at step {int(steps[-1])} rel. MSE {rel[-1]:.4g} ({growth:.1f}× the early max)"
        + (" — run shorter than 2,000 steps" if short else "")
        + f" [width {c['width']}, n = {c['n']}, η = {c['lr']}, linear = {c['linear']}]",
        f"holds if early rel. MSE ≤ {FIG3_REL} and it grows ≥ {FIG3_GROWTH}×; fails if early rel. MSE > "
        f"{FIG3_REL_FAIL}",
        verdict, (study,), {"rel_mse_early": rel_early, "dloss_early": dloss, "growth": growth})


def fig3_fc_window(rec: dict[str, dict[str, Any]]) -> CheckResult:
    return _fig3_window(rec, "fig3_fc")


def fig3_fc_sphere_window(rec: dict[str, dict[str, Any]]) -> CheckResult:
    out = _fig3_window(rec, "fig3_fc_sphere")
    steps, rel_ntk = _curve(rec["fig3_fc_sphere"]["runs"][0], "test_rel_mse_ntk_inf")
    early = (steps >= 1) & (steps <= FIG3_EARLY_STEPS)
    out.numbers["rel_mse_ntk_inf_early"] = float(np.nanmax(rel_ntk[early]))
    out.measured += f"; to the exact-NTK model (finite width alone): {out.numbers['rel_mse_ntk_inf_early']:.4g}"
    return out


def fig3_fc_fitted_window(rec: dict[str, dict[str, Any]]) -> CheckResult:
    """The FC window against the fitted affine model: separates wrong derived constants from nonlinearity."""
    out = _fig3_window(rec, "fig3_fc_fitted")
    lm = rec["fig3_fc_fitted"]["runs"][0].get("linear_model") or {}
    if "fitted" in lm and "derived" in lm:
        out.measured += "; constants derived → fitted: " + ", ".join(
            f"{k} {lm['derived'][k]:.4g} → {lm['fitted'][k]:.4g}" for k in ("A", "B"))
    return out


def fig3_cnn_window(rec: dict[str, dict[str, Any]]) -> CheckResult:
    return _fig3_window(rec, "fig3_cnn")


def _vlin_perp(rec: dict[str, dict[str, Any]], study: str) -> CheckResult:
    run = rec[study]["runs"][0]
    steps, perp_net = _curve(run, "test_res_perp_net")
    _, perp_lin = _curve(run, "test_res_perp_lin")
    drop = (perp_lin - perp_net) / perp_lin
    early_drop = float(np.nanmax(drop[steps <= FIG3_EARLY_STEPS]))
    late_drop = float(drop[-1])
    if early_drop > PERP_EARLY_FAIL or late_drop <= 0:
        verdict = FAILS
    elif early_drop <= PERP_EARLY and late_drop >= PERP_LATE:
        verdict = HOLDS
    else:
        verdict = INCONCLUSIVE
    return CheckResult(
        f"vlin_perp{study.removeprefix('fig3')}", f"The net's ({_setting(run)}) test residual in V_lin⊥ (which "
        "a linear model cannot "
        "change) drops below the linear model's only after the early phase (Fig 3a).",
        "V_lin⊥ residual flat early, then falls",
        f"drop of the net's V_lin⊥ residual below the linear model's: max {100 * early_drop:.2f}% over "
        f"t ≤ {FIG3_EARLY_STEPS}, {100 * late_drop:.2f}% at step {int(steps[-1])}",
        f"holds if the early drop ≤ {100 * PERP_EARLY:.0f}% and the last ≥ {100 * PERP_LATE:.0f}%; fails if "
        f"the early drop > {100 * PERP_EARLY_FAIL:.0f}% or the last ≤ 0",
        verdict, (study,), {"early_drop": early_drop, "late_drop": late_drop})


def vlin_perp_fc(rec: dict[str, dict[str, Any]]) -> CheckResult:
    return _vlin_perp(rec, "fig3_fc")


def vlin_perp_fc_sphere(rec: dict[str, dict[str, Any]]) -> CheckResult:
    return _vlin_perp(rec, "fig3_fc_sphere")


def vlin_perp_cnn(rec: dict[str, dict[str, Any]]) -> CheckResult:
    return _vlin_perp(rec, "fig3_cnn")


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


CHECKS: dict[str, Callable[[dict[str, dict[str, Any]]], CheckResult]] = {
    "fig1_window": fig1_window,
    "fig1_late": fig1_late,
    "fig1c_fixed": fig1c_fixed,
    "fig1c_scaled": fig1c_scaled,
    "fig2_norm": fig2_norm,
    "fig3_fc_window": fig3_fc_window,
    "fig3_fc_sphere_window": fig3_fc_sphere_window,
    "fig3_fc_fitted_window": fig3_fc_fitted_window,
    "fig3_cnn_window": fig3_cnn_window,
    "vlin_perp_fc": vlin_perp_fc,
    "vlin_perp_fc_sphere": vlin_perp_fc_sphere,
    "vlin_perp_cnn": vlin_perp_cnn,
    "first_layer_rate": first_layer_rate,
    "second_layer_width": second_layer_width,
    "kernel_bound": kernel_bound,
    "escape_scaling": escape_scaling,
}
# the studies each check reads (the runner loads or runs exactly these)
CHECK_STUDIES: dict[str, tuple[str, ...]] = {
    "fig1_window": ("fig1",), "fig1_late": ("fig1",), "fig1c_fixed": ("fig1c_fixed", "fig1c_scaled"),
    "fig1c_scaled": ("fig1c_fixed", "fig1c_scaled"), "fig2_norm": ("fig2",), "fig3_fc_window": ("fig3_fc",),
    "fig3_fc_fitted_window": ("fig3_fc_fitted",), "fig3_cnn_window": ("fig3_cnn",),
    "fig3_fc_sphere_window": ("fig3_fc_sphere",), "vlin_perp_fc_sphere": ("fig3_fc_sphere",),
    "vlin_perp_fc": ("fig3_fc",), "vlin_perp_cnn": ("fig3_cnn",),
    "first_layer_rate": ("first_layer",), "second_layer_width": ("width",), "kernel_bound": ("kernel",),
    "escape_scaling": ("escape",),
}
