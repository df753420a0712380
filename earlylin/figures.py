"""Figures drawn from saved records only: nothing here trains or recomputes a model.

:func:`plot_verify` draws the verifier's figure from a ``record.json`` dict: (a) train/test loss of
the net, f^lin and the stripped model over steps (log axis, Fig 1a); (b) test MSE between net and
f^lin (and the stripped model) with the early window T and the escape step; (c) with several d,
the early-window maximum of the relative MSE against d (Fig 1c) — with one d, the outputs of five
test points, net against f^lin (Fig 1b); (d) the test residual split onto V_lin and V_lin⊥ (Fig 3a).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from earlylin.records import write_bytes_atomic


def seed_mean(run: dict[str, Any], key: str) -> np.ndarray:
    """Seed-mean curve of one metric of one run (null → NaN, ignored in the mean)."""
    rows = [[np.nan if v is None else v for v in m[key]] for m in run["per_seed"].values()]
    arr = np.array(rows, dtype=float)
    with np.errstate(all="ignore"):
        return np.nanmean(arr, axis=0) if np.isfinite(arr).any() else arr[0]


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """PNG written atomically, figure closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def plot_verify(record: dict[str, Any], path: str | Path) -> Path:
    runs = record["runs"]
    run = max(runs, key=lambda r: r["config"]["d"]) if len(runs) > 1 else runs[0]
    seed0 = next(iter(run["per_seed"].values()))
    steps = np.array(seed0["steps"], dtype=float)
    x = np.maximum(steps, 0.5)  # step 0 drawn at 0.5 on the log axis
    s = run["summary"]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))

    ax = axes[0]
    for key, label, style in (
        ("train_loss_net", "net (train)", "C0-"),
        ("test_loss_net", "net (test)", "C0--"),
        ("train_loss_lin", "f_lin (train)", "C1-"),
        ("test_loss_lin", "f_lin (test)", "C1--"),
        ("test_loss_stripped", "stripped (test)", "C2:"),
    ):
        ax.plot(x, seed_mean(run, key), style, label=label)
    ax.set(xscale="log", xlabel="step", ylabel="loss (1/2n)Σ(f−y)²", title=f"(a) loss, d={run['config']['d']}")
    ax.axvline(s["early_window_steps"], color="gray", lw=0.8)
    ax.legend(fontsize=8)

    ax = axes[1]
    later = steps >= 1  # the MSE at step 0 is rounding noise; keep it off the log axis
    ax.plot(x[later], seed_mean(run, "test_mse")[later], "C3-", label="MSE(net, f_lin) test")
    ax.plot(x[later], seed_mean(run, "test_mse_stripped")[later], "C2:", label="MSE(net, stripped) test")
    ax.axvline(s["early_window_steps"], color="gray", lw=0.8, label=f"T = {s['early_window_steps']}")
    if s["escape_step"] is not None:
        ax.axvline(s["escape_step"], color="C3", lw=0.8, ls="--", label=f"escape {s['escape_step']}")
    ax.set(xscale="log", yscale="log", xlabel="step", ylabel="MSE", title="(b) net vs linear model")
    ax.legend(fontsize=8)

    ax = axes[2]
    if "by_d" in record["summary"]:
        by_d = record["summary"]["by_d"]
        ds = np.array([b["d"] for b in by_d], dtype=float)
        per_seed = np.array([b["max_rel_test_mse_early_per_seed"] for b in by_d], dtype=float)
        ax.plot(ds, per_seed, "o", color="C0", alpha=0.35, ms=4)
        ax.plot(ds, per_seed.mean(axis=1), "C0-o", label="seed mean")
        sl = record["summary"]["slope"]
        ax.set(xscale="log", yscale="log", xlabel="d", ylabel="max rel MSE, t ≤ T",
               title=f"(c) closeness vs d, slope {sl['mean']:.2f} ± {sl['std']:.2f}")
        ax.legend(fontsize=8)
    else:
        net, lin = np.array(seed0["logits_net"], float), np.array(seed0["logits_lin"], float)
        for j in range(net.shape[1]):
            ax.plot(x, net[:, j], f"C{j}-", lw=1.2)
            ax.plot(x, lin[:, j], f"C{j}--", lw=1.2)
        ax.set(xscale="log", xlabel="step", ylabel="output", title="(b′) 5 test points: net — , f_lin --")
    ax = axes[3]
    for who, style in (("net", "C0-"), ("lin", "C1--")):
        ax.plot(x, seed_mean(run, f"test_res_perp_{who}"), style, label=f"{who}: V_lin⊥ part")
        ax.plot(x, seed_mean(run, f"test_res_par_{who}"), style[:2] + ":", label=f"{who}: V_lin part")
    ax.set(xscale="log", xlabel="step", ylabel="‖P(f−y)‖²/n, ‖(I−P)(f−y)‖²/n", title="(d) test residual split")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
