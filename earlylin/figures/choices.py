"""Figures of the checks' choice tables, drawn from their tables alone (registered in
:data:`earlylin.figures.plots.PLOTS`).

- ``fig2_targets``: one column per Fig 2 target (norm, relu_teacher, radial); top, the test loss of the net,
  f^lin, the stripped model (x only) and the ablations f^lin without q and without the constant columns;
  bottom, each model's test MSE to the net, with the early window T.
- ``fig3_grid``: the subsampled CIFAR grid, activation × input normalisation × width (FC, CNN): (a) the
  max over 1 ≤ t ≤ 1,000 of the relative test MSE(net, linear) against width; (b) the early drop of the
  net's V_lin⊥ residual below the exact-NTK model's (solid) and of the exact-NTK model's below f^lin's
  (dotted, ×: the infinite-width kernel's own drop).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from earlylin.experiments.analysis import Table, col
from earlylin.runtime.canvas import subplots

FIG2_MODELS = (("net", "net", "C0-"), ("lin", "f_lin", "C1--"), ("stripped", "x only (stripped)", "C2:"),
               ("no_norm", "f_lin without q", "C3-."), ("no_const", "f_lin without ν columns", "C4:"))


def plot_fig2_targets(table: Table) -> Figure:
    targets = list(dict.fromkeys(table["target"]))
    fig, axes = subplots(2, len(targets), figsize=(5 * len(targets), 8), squeeze=False)
    tcol = np.array(table["target"])
    for j, target in enumerate(targets):
        sel = tcol == target
        x = np.maximum(col(table, "step")[sel], 0.5)
        T = float(np.array(table["T"], float)[sel][0])
        top, bottom = axes[0, j], axes[1, j]
        for key, label, style in FIG2_MODELS:
            top.plot(x, col(table, f"test_loss_{key}")[sel], style, label=label)
            if key != "net":
                mse_key = "test_mse" if key == "lin" else f"test_mse_{key}"
                later = x >= 1
                bottom.plot(x[later], col(table, mse_key)[sel][later], style, label=f"MSE(net, {label})")
        for ax in (top, bottom):
            ax.axvline(T, color="gray", lw=0.8, ls=":", label=f"T = {int(T)}")
            ax.set(xscale="log", xlabel="step")
        top.set(ylabel="test loss", title=f"Fig 2, ReLU, target {target}")
        bottom.set(yscale="log", ylabel="test MSE to the net")
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_fig3_grid(table: Table) -> Figure:
    fig, axes = subplots(1, 2, figsize=(12, 4.5))
    arch, act, norm = (np.array(table[k]) for k in ("arch", "activation", "cifar_norm"))
    width = col(table, "width")
    settings = list(dict.fromkeys(zip(arch, act, norm, strict=True)))
    for i, (a, f, z) in enumerate(settings):
        sel = (arch == a) & (act == f) & (norm == z)
        order = np.argsort(width[sel])
        w = width[sel][order]
        style = "-o" if a == "fc" else "--s"
        label = f"{a.upper()}, {f}, {z}"
        axes[0].plot(w, col(table, "max_rel_mse_early")[sel][order], style, color=f"C{i}", label=label)
        axes[1].plot(w, 100 * col(table, "perp_drop_ntk_early")[sel][order], style, color=f"C{i}", label=label)
        axes[1].plot(w, 100 * col(table, "perp_drop_kernel_early")[sel][order], ":x", color=f"C{i}")
    n = int(col(table, "n")[0]) if len(width) else 0
    axes[0].axhline(0.1, color="gray", lw=0.8, ls=":", label="0.1 (holds below)")
    axes[0].set(xscale="log", yscale="log", xlabel="width (FC units / CNN channels)",
                ylabel="max rel. test MSE(net, linear), 1 ≤ t ≤ 1,000", title=f"Fig 3 grid (n = {n:,})")
    axes[1].axhline(2, color="gray", lw=0.8, ls=":", label="2% (holds below)")
    axes[1].set(xscale="log", xlabel="width", ylabel="early V_lin⊥ drop (%)",
                title="net below exact-NTK model (solid); exact NTK below f_lin (dotted)")
    for ax in axes:
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_training(table: Table) -> Figure:
    """The training study (docs/theory.md §3.3): per data × loss × optimizer, over η·t, the relative distance of
    the net to its linear model, the label agreement and μ/I(F; Y) (Kalimeris et al. 2019)."""
    fig, axes = subplots(1, 3, figsize=(18, 4.8))
    keys = list(dict.fromkeys(zip(table["data"], table["loss"], table["optimizer"], strict=True)))
    data, loss, opt = (np.array(table[k]) for k in ("data", "loss", "optimizer"))
    lr_t = col(table, "lr_t")
    for i, (d, lo, o) in enumerate(keys):
        sel = (data == d) & (loss == lo) & (opt == o) & (lr_t > 0)
        style = ("-" if lo == "squared" else "--") + ("" if o == "gd" else ".")
        color = f"C{i % 10}"
        label = f"{d}, {lo}, {o}"
        axes[0].plot(lr_t[sel], col(table, "test_rel_mse")[sel], style, color=color, label=label)
        axes[1].plot(lr_t[sel], col(table, "test_label_agreement")[sel], style, color=color, label=label)
        with np.errstate(all="ignore"):
            share = col(table, "mu")[sel] / col(table, "mu_i_fy")[sel]
        axes[2].plot(lr_t[sel], share, style, color=color, label=label)
    n = int(col(table, "n")[0]) if len(lr_t) else 0
    axes[0].set(xscale="log", yscale="log", xlabel="η·t", ylabel="relative test MSE(net, linear model)",
                title=f"How long the net stays with its linear model (n = {n:,})")
    axes[1].set(xscale="log", xlabel="η·t", ylabel="label agreement, net vs linear model (test)",
                title="Same predicted labels")
    axes[2].set(xscale="log", xlabel="η·t", ylabel="μ_Y(F; L) / I(F; Y)",
                title="Share of the net's label information the linear model explains")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_alpha(table: Table) -> Figure:
    """The output scale α (docs/theory.md §3.3): the relative distance of the net to its θ-linearisation over η·t
    per α, and at fixed η·t against α beside the lazy-training bound's α⁻² (through the α = 1 point)."""
    fig, axes = subplots(1, 2, figsize=(12, 4.5))
    alpha, lr_t, rel = col(table, "alpha"), col(table, "lr_t"), col(table, "rel_mse_ntk_lin")
    at, threshold = float(col(table, "at_lr_t")[0]), float(col(table, "threshold")[0])
    points = []
    for i, a in enumerate(np.unique(alpha)):
        sel = (alpha == a) & (lr_t > 0)
        axes[0].plot(lr_t[sel], rel[sel], "-", color=f"C{i}", label=f"α = {a:g}")
        j = int(np.argmin(np.abs(lr_t[sel] - at)))
        points.append((a, rel[sel][j]))
    axes[0].axhline(threshold, color="gray", lw=0.8, ls=":", label=f"threshold {threshold:g}")
    axes[0].axvline(at, color="gray", lw=0.8, ls="--", label=f"η·t = {at:g}")
    axes[0].set(xscale="log", yscale="log", xlabel="η·t", ylabel="relative test MSE(net, θ-linearisation)",
                title="The net against its θ-linearisation, per output scale α")
    a_pts, r_pts = (np.array(v) for v in zip(*points, strict=True))
    slope = np.polyfit(np.log(a_pts), np.log(r_pts), 1)[0] if len(a_pts) > 1 else float("nan")
    axes[1].plot(a_pts, r_pts, "C0o-", label=f"measured (log-log slope {slope:.2f})")
    axes[1].plot(a_pts, r_pts[0] * a_pts ** -2.0, "k--", lw=0.8, label="α⁻² (lazy training: distance O(1/α))")
    axes[1].set(xscale="log", yscale="log", xlabel="output scale α", ylabel=f"relative test MSE at η·t = {at:g}",
                title="At fixed η·t, against α")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
