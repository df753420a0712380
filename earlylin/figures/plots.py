"""Every figure drawn with matplotlib from its table alone, and the verifier's figure from its record.

``plot_<id>(table) -> Figure`` draws one figure of :data:`PLOTS` (figure id → plotter, the ids of
:data:`earlylin.figures.tables.TABLES`) from its table **alone**: the figures command
(:mod:`earlylin.figures`) reads the CSV back from disk and passes it here, so a figure can never use
anything the table lacks. Fits shown in legends (slopes, escape fit) come from :mod:`earlylin.experiments.analysis`.

:func:`plot_verify` (the verifier's figure from a ``record.json`` dict) lives in
:mod:`earlylin.experiments.figure` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from earlylin.experiments.analysis import (
    FIG3_EARLY_STEPS,
    Table,
    col,
    escape_fit,
    escape_means,
    fig1c_slopes,
    loglog_fit,
)
from earlylin.experiments.figure import plot_verify as plot_verify
from earlylin.experiments.figure import save_figure as save_figure
from earlylin.experiments.figure import verify_figure as verify_figure
from earlylin.figures.choices import plot_alpha, plot_fig2_targets, plot_fig3_grid, plot_training
from earlylin.figures.phase import plot_phase
from earlylin.figures.tables import FIG3_VARIANTS, TABLES
from earlylin.runtime.canvas import subplots


# ---------------------------------------------------------------------------------------------- helpers
def _steps_axis(table: Table) -> np.ndarray:
    return np.maximum(col(table, "step"), 0.5)  # step 0 drawn at 0.5 on the log axis


def _band(ax: Axes, x: np.ndarray, table: Table, key: str, style: str, label: str) -> None:
    y, s = col(table, key), col(table, f"{key}_std")
    line = ax.plot(x, y, style, label=label)[0]
    if np.isfinite(s).any() and np.nanmax(s) > 0:
        ax.fill_between(x, y - s, y + s, color=line.get_color(), alpha=0.15, lw=0)


def _points_and_means(ax: Axes, x: np.ndarray, y: np.ndarray, sel: np.ndarray, i: int,
                      label: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed points (faint) and the seed-mean line of y against x over the rows ``sel``."""
    xs = np.unique(x[sel])
    means = np.array([np.mean(y[sel & (x == v)]) for v in xs])
    ax.plot(x[sel], y[sel], "o", color=f"C{i}", alpha=0.35, ms=4)
    ax.plot(xs, means, f"C{i}-o", label=label)
    return xs, means


def _window_line(ax: Axes, table: Table) -> None:
    if table.get("T"):
        ax.axvline(float(table["T"][0]), color="gray", lw=0.8, ls=":", label=f"T = {int(float(table['T'][0]))}")


def _plot_logits(table: Table, title: str) -> Figure:
    fig, ax = subplots(figsize=(6, 4.2))
    x = _steps_axis(table)
    j = 0
    while f"net_{j}" in table:
        ax.plot(x, col(table, f"net_{j}"), f"C{j}-", lw=1.3)
        ax.plot(x, col(table, f"lin_{j}"), f"C{j}--", lw=1.3)
        j += 1
    ax.plot([], [], "k-", label="net")
    ax.plot([], [], "k--", label="linear model")
    ax.set(xscale="log", xlabel="step", ylabel="output f(x)", title=title)
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------- Fig 1, Fig 2
def plot_fig1a(table: Table) -> Figure:
    fig, ax = subplots(figsize=(6, 4.2))
    x = _steps_axis(table)
    for key, label, style in (("train_loss_net", "net (train)", "C0-"), ("test_loss_net", "net (test)", "C0--"),
                              ("train_loss_lin", "f_lin (train)", "C1-"), ("test_loss_lin", "f_lin (test)", "C1--")):
        _band(ax, x, table, key, style, label)
    _window_line(ax, table)
    ax.set(xscale="log", xlabel="step", ylabel="loss", title="Fig 1a: two-layer erf net vs its linear model")
    ax.legend(fontsize=8)
    return fig


def plot_fig1b(table: Table) -> Figure:
    return _plot_logits(table, "Fig 1b: outputs of 5 test points")


def plot_fig1c(table: Table) -> Figure:
    fig, ax = subplots(figsize=(6, 4.2))
    series, d, y, m = np.array(table["series"]), col(table, "d"), col(table, "max_rel_mse_early"), col(table, "m")
    slopes = fig1c_slopes(table)
    for i, name in enumerate(slopes):
        sel = series == name
        widths = ", ".join(str(int(np.unique(m[sel & (d == v)])[0])) for v in np.unique(d[sel]))
        sl = slopes[name]
        _points_and_means(ax, d, y, sel, i, f"{name} (m = {widths}): slope {sl['mean']:.2f} ± {sl['std']:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="d", ylabel="max rel. test MSE(net, f_lin), t ≤ T",
           title="Fig 1c: closeness vs input dimension")
    ax.legend(fontsize=8)
    return fig


def plot_first_layer(table: Table) -> Figure:
    fig = plot_fig1c(table)
    fig.axes[0].set_title("First layer only: closeness vs d (n, m ∝ d^{1+α})")
    return fig


def plot_fig2(table: Table) -> Figure:
    fig, axes = subplots(1, 2, figsize=(11, 4.2))
    x = _steps_axis(table)
    ax = axes[0]
    for key, label, style in (("test_loss_net", "net", "C0-"), ("test_loss_lin", "f_lin", "C1--"),
                              ("test_loss_stripped", "f_lin without norm/constant features", "C2:")):
        _band(ax, x, table, key, style, label)
    _window_line(ax, table)
    ax.set(xscale="log", xlabel="step", ylabel="test loss", title="Fig 2: ReLU, norm-dependent target")
    ax.legend(fontsize=8)
    ax = axes[1]
    later = col(table, "step") >= 1
    ax.plot(x[later], col(table, "test_mse")[later], "C1-", label="MSE(net, f_lin)")
    ax.plot(x[later], col(table, "test_mse_stripped")[later], "C2:", label="MSE(net, stripped)")
    _window_line(ax, table)
    ax.set(xscale="log", yscale="log", xlabel="step", ylabel="test MSE to the net", title="distance to the net")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------- Fig 3
def plot_fig3a(table: Table, variant: str) -> Figure:
    fig, ax = subplots(figsize=(6, 4.2))
    x = _steps_axis(table)
    for key, label, style in (("test_loss_net", "net: test loss", "C0-"), ("test_loss_lin", "linear: test loss", "C1-"),
                              ("test_res_perp_net", "net: V_lin⊥ part", "C0--"),
                              ("test_res_perp_lin", "linear: V_lin⊥ part", "C1--"),
                              ("test_res_par_net", "net: V_lin part", "C0:"),
                              ("test_res_par_lin", "linear: V_lin part", "C1:")):
        ax.plot(x, col(table, key), style, label=label)
    ax.set(xscale="log", xlabel="step", ylabel="loss / residual² per point",
           title=f"Fig 3a: CIFAR cat vs horse, {FIG3_VARIANTS[variant][1]}")
    ax.legend(fontsize=7)
    return fig


def plot_fig3b(table: Table, variant: str) -> Figure:
    return _plot_logits(table, f"Fig 3b: outputs of 3 test points, {FIG3_VARIANTS[variant][1]}")


def plot_fig3c(table: Table, variant: str) -> Figure:
    fig, ax = subplots(figsize=(6, 4.2))
    x = _steps_axis(table)
    later = col(table, "step") >= 1
    ax.plot(x[later], col(table, "train_rel_mse")[later], "C0-", label="train")
    ax.plot(x[later], col(table, "test_rel_mse")[later], "C3--", label="test")
    if "test_rel_mse_ntk_inf" in table:
        ax.plot(x[later], col(table, "test_rel_mse_ntk_inf")[later], "C2:", label="test, to the exact-NTK model")
    ax.set(xscale="log", yscale="log", xlabel="step", ylabel="relative MSE(net, linear)",
           title=f"Fig 3c: relative MSE, {FIG3_VARIANTS[variant][1]}")
    ax.legend(fontsize=8)
    return fig


def plot_fig3_width(table: Table) -> Figure:
    fig, ax = subplots(figsize=(6, 4.2))
    arch, width, rel = np.array(table["arch"]), col(table, "width"), col(table, "max_rel_mse_early")
    for i, name in enumerate(dict.fromkeys(arch.tolist())):
        sel = arch == name
        slope, _ = loglog_fit(width[sel], rel[sel])
        ax.plot(width[sel], rel[sel], f"C{i}-o", label=f"{name.upper()}: slope {slope:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="width (FC units / CNN channels)",
           ylabel=f"max rel. test MSE(net, linear), t ≤ {FIG3_EARLY_STEPS}", title="CIFAR: Fig 3's gap vs width")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------- ours
def plot_kernel_ratio(table: Table) -> Figure:
    fig, ax = subplots(figsize=(6, 4.2))
    block, d, ratio = np.array(table["block"]), col(table, "d"), col(table, "ratio")
    for i, name in enumerate(dict.fromkeys(block.tolist())):
        sel = block == name
        ds = np.unique(d[sel])
        slope, _ = loglog_fit(ds, np.array([np.mean(ratio[sel & (d == v)]) for v in ds]))
        _points_and_means(ax, d, ratio, sel, i, f"{name}: exponent {slope:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="d", ylabel="‖Θ(0) − Θ_lin‖ / ‖Θ_lin‖",
           title="Kernel bound at initialisation (n, m as in the table)")
    ax.legend(fontsize=8)
    return fig


def plot_width_split(table: Table) -> Figure:
    fig, ax = subplots(figsize=(6, 4.2))
    m = col(table, "m")
    ms = np.unique(m)
    for i, (key, label) in enumerate((("total", "net vs f_lin"), ("nonlinear", "net vs finite-width model"),
                                      ("width", "finite-width model vs f_lin"))):
        y = col(table, key)
        means = np.array([np.mean(y[m == v]) for v in ms])
        slope, _ = loglog_fit(ms, means)
        ax.plot(m, y, "o", color=f"C{i}", alpha=0.35, ms=4)
        ax.plot(ms, means, f"C{i}-o", label=f"{label} (slope {slope:.2f})")
    ax.set(xscale="log", yscale="log", xlabel="width m", ylabel="max test MSE, t ≤ T",
           title=f"Width vs nonlinear error, d = {int(col(table, 'd')[0])}")
    ax.legend(fontsize=8)
    return fig


def plot_escape(table: Table) -> Figure:
    fig, ax = subplots(figsize=(6, 4.2))
    ax.plot(col(table, "d"), col(table, "escape_step"), "o", color="C0", alpha=0.35, ms=4)
    ds, t_mean, scale = escape_means(table)
    fit = escape_fit(table)
    ax.plot(ds, t_mean, "C0-o", label=f"measured t* (slope vs d log d: {fit['slope']:.2f})")
    if np.isfinite(fit["c_star"]):
        ax.plot(ds, fit["c_star"] * scale, "k--", label=f"{fit['c_star']:.1f}·d·log(d)/η")
    ax.set(xscale="log", yscale="log", xlabel="d", ylabel="escape step t*", title="When the net leaves f_lin")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------- registry
def _variant(fn: Callable[..., Figure], variant: str) -> Callable[[Table], Figure]:
    return lambda table: fn(table, variant)


# figure id → its plotter, in the order of earlylin.figures.tables.TABLES
PLOTS: dict[str, Callable[[Table], Figure]] = {
    "fig1a": plot_fig1a,
    "fig1b": plot_fig1b,
    "fig1c": plot_fig1c,
    "fig2": plot_fig2,
    "fig2_targets": plot_fig2_targets,  # earlylin/figures/choices.py
    "first_layer": plot_first_layer,
    **{f"fig3{p}_{v}": _variant(pl, v) for v in FIG3_VARIANTS
       for p, pl in (("a", plot_fig3a), ("b", plot_fig3b), ("c", plot_fig3c))},
    "fig3_width": plot_fig3_width,
    "fig3_grid": plot_fig3_grid,  # earlylin/figures/choices.py
    "fig3_grid_widths": plot_fig3_grid,
    "fig3_cnn_cpu": plot_fig3_grid,
    "training": plot_training,  # earlylin/figures/choices.py
    "training_paper_size": plot_training,
    "alpha": plot_alpha,
    "kernel_ratio": plot_kernel_ratio,
    "width_split": plot_width_split,
    "escape": plot_escape,
    "phase": plot_phase,  # earlylin/figures/phase.py
}
assert list(PLOTS) == list(TABLES), "every table has exactly one plot, in the same order"
