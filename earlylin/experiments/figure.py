"""The verifier's figure, drawn from one ``record.json`` dict of any family (docs/theory.md §4.5).

Five panels, titled in words: the train/test loss of the net, its linear model and the stripped model
over steps (log axis, Fig 1a), with the loss spikes marked; the test MSE between net and linear model
(and the stripped model) with the escape step; the relative distance MSE(net, lin)/mean f_net² with the
initial mismatch (its value at the first step after 0: the tangent kernel's mismatch at initialisation),
the threshold ε and the end of the measured linear regime; with several d, the early maximum of the
relative MSE against d (Fig 1c), with one d the outputs of five test points, net (solid) against the
linear model (dashed), one colour per point (Fig 1b); the test residual split onto V_lin and V_lin⊥
(Fig 3a). Every panel marks the theorem's window T where a theorem gives one (two-layer net, 1D CNN).
A suptitle names the data set, network, sizes and run size.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from earlylin.experiments.analysis import seed_mean
from earlylin.runtime.canvas import subplots
from earlylin.runtime.records import write_bytes_atomic


# ---------------------------------------------------------------------------------------------- verifier
def save_figure(fig: Figure, path: str | Path) -> Path:
    """``fig`` as a PNG at ``path``, written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return write_bytes_atomic(path, buf.getvalue())


def seed0_k(seed: dict) -> int:
    """The outputs per point of a recorded seed (1, or K)."""
    logits = np.array(seed["logits_net"], float)
    return 1 if logits.ndim == 2 else int(logits.shape[-1])


def plot_verify(record: dict[str, Any], path: str | Path) -> Path:
    """The verifier's figure (:func:`verify_figure`) of one ``record.json`` dict, written to ``path``."""
    return save_figure(verify_figure(record), path)


def verify_figure(record: dict[str, Any]) -> Figure:
    """The verifier's four panels (module docstring) of one ``record.json`` dict.

    Axes span the recorded steps; the early window T is marked where the run reaches it (else a
    note says it lies beyond); the suptitle names the data set, the network, its size and the run size."""
    runs = record["runs"]
    run = max(runs, key=lambda r: r["config"]["d"]) if len(runs) > 1 else runs[0]
    seed0 = next(iter(run["per_seed"].values()))
    steps = np.array(seed0["steps"], dtype=float)
    x = np.maximum(steps, 0.5)  # step 0 drawn at 0.5 on the log axis
    s = run["summary"]
    lin = "f_lin" if run["config"].get("family", "two_layer") in ("two_layer", "cnn1d") else "linear model"
    fig, axes = subplots(1, 5, figsize=(27, 5.0))

    ax = axes[0]
    for key, label, style in (
        ("train_loss_net", "network, train", "C0-"),
        ("test_loss_net", "network, test", "C0--"),
        ("train_loss_lin", f"{lin}, train", "C1-"),
        ("test_loss_lin", f"{lin}, test", "C1--"),
        ("test_loss_stripped", f"{lin} on x only, test", "C2:"),
    ):
        ax.plot(x, seed_mean(run, key), style, label=label)
    spikes = sorted({t for v in (s.get("loss_spikes") or {}).values() for t in v})
    for i, t in enumerate(spikes):
        ax.axvline(max(t, 0.5), color="red", lw=0.8, ls="-.", label="loss spike" if i == 0 else None)
    _verify_window(ax, s, steps[-1])
    loss_label = {"cross_entropy": "cross-entropy loss"}.get(run["config"].get("loss", "squared"),
                                                              "loss (1/2n) Σ (f − y)²")
    ax.set(ylabel=loss_label, title="Loss of the network and of its linear model")
    _verify_axes(ax, steps[-1], ylog=False)

    ax = axes[1]
    later = steps >= 1  # the MSE at step 0 is rounding noise; keep it off the log axis
    ax.plot(x[later], seed_mean(run, "test_mse")[later], "C3-", label=f"MSE(network, {lin})")
    ax.plot(x[later], seed_mean(run, "test_mse_stripped")[later], "C2:", label=f"MSE(network, {lin} on x only)")
    _verify_window(ax, s, steps[-1])
    if s["escape_step"] is not None:
        ax.axvline(s["escape_step"], color="C3", lw=0.8, ls="--", label=f"escape step {s['escape_step']:,}")
    ax.set(ylabel="test MSE", title="Distance between network and linear model (test)")
    _verify_axes(ax, steps[-1], ylog=True)

    ax = axes[2]
    rel = seed_mean(run, "test_rel_mse")
    ax.plot(x[later], rel[later], "C4-", label=f"MSE(network, {lin}) / mean f²")
    eps = s.get("regime_threshold")
    if eps is not None:
        ax.axhline(eps, color="C4", lw=0.8, ls=":", label=f"regime threshold max(ε, factor × initial) = {eps:.3g}")
    if s.get("initial_mismatch") is not None:
        ax.plot([s["initial_mismatch_step"]], [s["initial_mismatch"]], "kx", ms=8,
                label=f"initial mismatch {s['initial_mismatch']:.3g} (kernel at init, not drift)")
    if s.get("linear_regime_steps") is not None:
        ax.axvline(s["linear_regime_steps"], color="C4", lw=0.8, ls="--",
                   label=f"linear regime ends: step {s['linear_regime_steps']:,}")
    if s.get("escape_step_observed") is not None:
        ax.axvline(s["escape_step_observed"], color="C3", lw=0.8, ls="-.",
                   label=f"observed escape {s['escape_step_observed']:,}")
    _verify_window(ax, s, steps[-1])
    ax.set(ylabel="relative test MSE", title="Relative distance: the measured linear regime")
    _verify_axes(ax, steps[-1], ylog=True)

    ax = axes[3]
    if "by_d" in record["summary"]:
        by_d = record["summary"]["by_d"]
        ds = np.array([b["d"] for b in by_d], dtype=float)
        per_seed = np.array([[np.nan if v is None else v for v in b["max_rel_test_mse_early_per_seed"]]
                             for b in by_d], dtype=float)
        ax.plot(ds, per_seed, "o", color="C0", alpha=0.35, ms=4)
        ax.plot(ds, np.nanmean(per_seed, axis=1) if np.isfinite(per_seed).any() else ds * np.nan, "C0-o",
                label="seed mean (dots: seeds)")
        sl = record["summary"]["slope"]
        slope = "n/a" if sl["mean"] is None else f"{sl['mean']:.2f} ± {sl['std']:.2f}"
        ax.set(xlabel="input dimension d", ylabel="max relative test MSE(network, f_lin), t ≤ T",
               title=f"Closeness against d: log-log slope {slope}")
        _verify_log(ax, "x", ds)
        _verify_log(ax, "y", per_seed)
        ax.set_xticks(ds, [f"{d:g}" for d in ds])
        ax.xaxis.set_minor_locator(NullLocator())  # the d values only
        ax.legend(fontsize=8)
    else:
        net, lin_out = np.array(seed0["logits_net"], float), np.array(seed0["logits_lin"], float)
        labels = seed0.get("logits_y") or [None] * net.shape[1]
        if net.ndim == 3:  # K outputs: each point's output for its own class
            cls = [int(np.argmax(v)) for v in labels]
            net, lin_out = net[:, np.arange(len(cls)), cls], lin_out[:, np.arange(len(cls)), cls]
            labels = [f"class {c}" for c in cls]
        for j in range(net.shape[1]):
            y = "" if labels[j] is None else (f" ({labels[j]})" if isinstance(labels[j], str)
                                               else f" (y = {labels[j]:+.3g})")
            ax.plot(x, net[:, j], f"C{j}-", lw=1.2, label=f"test point {j + 1}{y}")
            ax.plot(x, lin_out[:, j], f"C{j}--", lw=1.2)
        ax.plot([], [], "k-", label="network (solid)")
        ax.plot([], [], "k--", label=f"{lin} (dashed)")
        _verify_window(ax, s, steps[-1])
        ax.set(ylabel="output f(x)" if seed0_k(seed0) == 1 else "output of the point's class, f_c(x)",
               title="Outputs on five test points")
        _verify_axes(ax, steps[-1], ylog=False)

    ax = axes[4]
    for who, name, color in (("net", "network", "C0"), ("lin", lin, "C1")):
        ax.plot(x, seed_mean(run, f"test_res_perp_{who}"), f"{color}-", label=f"{name}: part ⊥ V_lin")
        ax.plot(x, seed_mean(run, f"test_res_par_{who}"), f"{color}:", label=f"{name}: part in V_lin")
    _verify_window(ax, s, steps[-1])
    ax.set(ylabel="‖part of (f − y)‖² / n", title="Test residual: in V_lin = span(Ψ) and ⊥ to it")
    _verify_axes(ax, steps[-1], ylog=False)

    fig.suptitle(_verify_title(record, run), fontsize=12)
    fig.tight_layout()
    return fig


def _verify_window(ax: Axes, summary: dict[str, Any], last: float) -> None:
    """A grey line at T when the run reaches it, else a note under the step axis that T lies beyond it (or that
    no theorem gives one)."""
    window = summary["early_window_steps"]
    if window is None:
        ax.set_xlabel("GD step (no theorem gives this network an early window T)")
    elif window <= last:
        ax.axvline(window, color="gray", lw=0.8, label=f"T = {window:,} (early window)")
        ax.set_xlabel("GD step")
    else:
        ax.set_xlabel(f"GD step\n(early window T = {window:,} is beyond the run: last step {int(last):,})")


def _verify_log(ax: Axes, which: str, values: Any) -> None:
    """Log scale on ``which`` axis when the data have a positive finite value (else linear)."""
    v = np.asarray(values, dtype=float)
    if (np.isfinite(v) & (v > 0)).any():
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")


def _verify_axes(ax: Axes, last: float, ylog: bool) -> None:
    """Log step axis over the recorded steps only (step 0 at 0.5), optional log y, legend."""
    ax.set_xscale("log")
    ax.set_xlim(0.4, max(last, 1.0) * 1.15)
    if ylog:
        _verify_log(ax, "y", [v for line in ax.get_lines() for v in np.asarray(line.get_ydata(), dtype=float)])
    ax.legend(fontsize=7.5)


def _verify_title(record: dict[str, Any], run: dict[str, Any]) -> str:
    """Data set, architecture, d, n, width, steps, η, seeds and the run size, in one line."""
    c = run["config"]
    family = c.get("family") or ("cifar" if record.get("kind") == "cifar" else "two_layer")
    ds = ", ".join(str(r["config"]["d"]) for r in record["runs"])
    if family == "network":
        net = f"Own data: the network {c['name'].removeprefix('custom:')}, fitted affine linear model"
        return (f"{net}\nd = {c['d']}, n = {c['n']:,}, {c['steps']:,} steps, η = {c['lr']:g}, "
                f"{len(c['seeds'])} seed(s)")
    if family == "cifar":
        which = "cats vs horses" if c.get("classes") is None else f"{len(c['classes'])} classes"
        how = "" if c.get("loss", "squared") == "squared" and c.get("optimizer", "gd") == "gd" else (
            f"; {c['loss']}, {c['optimizer']}" + (f" (batch {c['batch_size']})" if c.get("batch_size") else ""))
        net = (f"CIFAR-10 {which}: {c['arch'].upper()} net, depth {c['depth']}, {c['activation']}, "
               f"{c['cifar_norm']} inputs, {c['linear']} linear model{how}")
    elif family == "cnn1d":
        net = (f"Synthetic data: 1D CNN (filter q = {c['filter_size']}), {c['activation']}, "
               f"trains {c['layers']} layer(s)")
    else:
        net = f"Synthetic data: two-layer {c['activation']} net, trains {c['layers']} layer(s)"
    argv = record.get("argv")
    size = "" if argv is None else ("; --quick size" if "--quick" in argv else "; full size")
    many = len(record["runs"]) > 1
    curves = f" (curves over steps: d = {c['d']})" if many else ""
    sizes = f"d = {ds}{curves}, n = {c['n']:,}, width {c['width']}"
    return f"{net}\n{sizes}, {c['steps']:,} steps, η = {c['lr']:g}, {len(c['seeds'])} seed(s){size}"
