"""The training checks (docs/theory.md §3.3): beyond the paper's full-batch GD on a squared loss.

Kalimeris, Kaplun, Nakkiran et al. (2019, arXiv:1905.11604) find that a network trained by SGD on cross-entropy
first learns what a linear classifier learns: early in training μ_Y(F; L) ≈ I(F; Y) — what the net's predicted
labels F know of the labels Y, the linear model's labels L already know. Hu et al.'s claim is the same for GD on a
squared loss. One row per choice of data (cats vs horses, ten classes) × loss × optimizer of the study
``training_cpu`` (the CPU size, committed) or ``training`` (paper size, a GPU study), judged over the early phase
η·t ≤ EARLY_LR_T under criteria fixed here before the runs.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from earlylin.figures.tables import training_choice
from paper_checks.result import CheckResult, from_rows
from paper_checks.rows import run_curve
from paper_checks.verdicts import FAILS, HOLDS, INCONCLUSIVE, Row

EARLY_LR_T = 100.0      # the early phase: η·t ≤ 100
AGREE = 0.9             # label agreement of net and linear model over the early phase (its minimum, from η·t ≥ 10)
AGREE_FAIL = 0.75
SHARE = 0.8             # μ/I(F; Y) at the end of the early phase
SHARE_FAIL = 0.5
BIAS_MAX = 0.1          # μ is judged only where the plug-in bias of I(F; Y | L) is ≤ 10% of I(F; Y)

CLAIM = ("Early in training the net predicts what its linear model predicts, with a squared loss or cross-entropy "
         "and with full-batch GD or mini-batch SGD (Kalimeris et al. 2019; the paper's claim for GD on squared loss).")
PAPER = ("Kalimeris et al. 2019 (arXiv:1905.11604, CIFAR-10 and binary CIFAR, SGD on cross-entropy): μ_Y(F; L) ≈ "
         "I(F; Y) in the first phase of training, L the best linear classifier")
CRITERION = (f"per data × loss × optimizer, over 10 ≤ η·t ≤ {EARLY_LR_T:g}: holds if the test label agreement of net "
             f"and linear model stays ≥ {AGREE} and μ/I(F; Y) at η·t = {EARLY_LR_T:g} is ≥ {SHARE}; fails if the "
             f"agreement falls below {AGREE_FAIL} or the share below {SHARE_FAIL}. μ is judged only where the plug-in "
             f"estimator's bias of I(F; Y | L), ≈ (K − 1)²K/(2·n_test) nats for K classes (Miller–Madow), is at most "
             f"{BIAS_MAX:g} × I(F; Y); elsewhere it is reported and the verdict rests on the agreement (holds needs μ)")


def plugin_bias(classes: int, n_test: int) -> float:
    """The leading upward bias of the plug-in Î(F; Y | L) with K classes on n points, nats: (K − 1)²K/(2n)."""
    return (classes - 1) ** 2 * classes / (2.0 * n_test)


def training_row(run: dict[str, Any]) -> Row:
    steps, agree = run_curve(run, "test_label_agreement")
    _, mu = run_curve(run, "mu")
    _, i_fy = run_curve(run, "mu_i_fy")
    lr_t = steps * run["config"]["lr"]
    early = (lr_t >= 10) & (lr_t <= EARLY_LR_T)
    at = int(np.flatnonzero(lr_t <= EARLY_LR_T)[-1])
    agree_min = float(np.nanmin(agree[early]))
    share = float(mu[at] / i_fy[at]) if i_fy[at] > 0 else float("nan")
    c = run["config"]
    bias = plugin_bias(2 if c.get("classes") is None else len(c["classes"]), c["n_test"])
    judged = bias <= BIAS_MAX * i_fy[at]
    if agree_min >= AGREE and judged and share >= SHARE:
        verdict = HOLDS
    elif agree_min < AGREE_FAIL or (judged and share < SHARE_FAIL):
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    s = run["summary"]
    regime = s["linear_regime_steps"]
    ends = "never left in the run" if regime is None else f"ends at step {regime}"
    note = "" if judged else f", not judged: plug-in bias ≈ {bias:.3g} nats"
    measured = (f"min label agreement {agree_min:.3f}; μ/I(F;Y) at η·t = {lr_t[at]:g}: {share:.3f} (μ {mu[at]:.4g}, "
                f"I(F;Y) {i_fy[at]:.4g} nats{note}); linear regime {ends} (initial mismatch "
                f"{s['initial_mismatch']:.3g}); at the last step agreement {agree[-1]:.3f}, "
                f"μ/I(F;Y) {mu[-1] / i_fy[-1]:.3f}")
    data, loss, opt = training_choice(run["config"])
    return Row(f"{data}, {loss}, {opt}", measured, verdict,
               {"label_agreement_min_early": agree_min, "mu_share_early": share, "mu_judged": bool(judged),
                "plugin_bias_nats": bias, "linear_regime_steps": regime,
                "initial_mismatch": s["initial_mismatch"], "label_agreement_last": float(agree[-1])})


def _check(name: str, study: str) -> Any:
    def check(rec: dict[str, dict[str, Any]]) -> CheckResult:
        rows = [training_row(run) for run in rec[study]["runs"]]
        return from_rows(name, CLAIM, PAPER, CRITERION, rows, (study,))
    return check


TRAINING_CHECKS = {"training_early": (_check("training_early", "training_cpu"), ("training_cpu",)),
                   "training_early_paper_size": (_check("training_early_paper_size", "training"), ("training",))}


ALPHA_SLOPE = -1.75     # the relative MSE at fixed η·t falls at least like α⁻² (a quarter of slack)
ALPHA_SLOPE_FAIL = -1.0


def lazy_alpha(rec: dict[str, dict[str, Any]]) -> CheckResult:
    """The output scale α: the net's relative MSE to its θ-linearisation at fixed η·t against α, and the regime's
    end (earlylin/studies/alpha.py)."""
    s = rec["alpha"]["summary"]
    slope = float(s["slope"][0])
    ends = [np.inf if e is None else e for e in s["regime_end_steps"]]
    grows = all(b >= a for a, b in itertools.pairwise(ends))
    if slope <= ALPHA_SLOPE and grows:
        verdict = HOLDS
    elif slope > ALPHA_SLOPE_FAIL or not grows:
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    shown = ", ".join(f"α = {a:g}: {r:.3g}" for a, r in zip(s["alphas"], s["rel_mse_ntk_lin_at"], strict=True))
    end_txt = ", ".join("never" if e is None else str(e) for e in s["regime_end_steps"])
    measured = (f"relative test MSE(net, θ-linearisation) at η·t = {s['at_lr_t']:g}: {shown}; log-log slope in α "
                f"{slope:.2f}; the regime (≤ {s['threshold']:g}) ends at steps {end_txt}")
    return CheckResult(
        "lazy_alpha", "With a larger output scale α the net stays with its θ-linearisation longer: at fixed η·t its "
        "relative MSE to it falls at least like α⁻² (lazy training).",
        "Chizat, Oyallon & Bach 2019 (arXiv:1812.07956): ‖f_α − f_lin‖ = O(1/α) at fixed training time",
        measured, f"holds if the log-log slope in α is ≤ {ALPHA_SLOPE} and the regime's end does not shorten with α; "
        f"fails if the slope is > {ALPHA_SLOPE_FAIL} or the regime shortens", verdict, ("alpha",),
        {"slope": slope, "rel_mse_ntk_lin_at": s["rel_mse_ntk_lin_at"], "regime_end_steps": s["regime_end_steps"]})


TRAINING_CHECKS["lazy_alpha"] = (lazy_alpha, ("alpha",))
