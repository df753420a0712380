"""The phase diagram's figure, drawn from its table alone (registered as ``phase`` in
:data:`earlylin.figures.plots.PLOTS`).

(a) the seed-mean max over t ≤ T of the relative test MSE(net, f^lin) over d × m/d, log colour scale;
(b) the escape step in units of T (seed mean over the seeds that escaped; "—" where none did within
the steps run); both with the theorem's boundary m = d^{1+α} (α = 1/4) and the paper's Fig 1 point
(d = 50, m = 256, n = 20,000) marked; (c) the same error against d, one line per m/d, with the paths
of :mod:`earlylin.studies.phase` (m ∝ d^{3/2} and fixed m) read from the grid.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from earlylin.experiments.analysis import Table, col, loglog_fit
from earlylin.runtime.canvas import subplots
from earlylin.studies.phase import ALPHA_BOUNDARY, ALPHA_FIXED_M, ALPHA_GROWN, FIG1, grid_of, path_values


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges on a log axis: geometric midpoints, the end cells as wide as their neighbours."""
    if values.size == 1:
        return np.array([values[0] / 1.5, values[0] * 1.5])
    mid = np.sqrt(values[1:] * values[:-1])
    return np.concatenate([[values[0] ** 2 / mid[0]], mid, [values[-1] ** 2 / mid[-1]]])


def _map(ax: Axes, ds: np.ndarray, rs: np.ndarray, grid: np.ndarray, labels: list[list[str]], log: bool,
         title: str, bar: str) -> None:
    xe, ye = _edges(ds), _edges(rs)
    finite = grid[np.isfinite(grid) & (grid > 0)]
    norm = LogNorm(finite.min(), finite.max()) if log and finite.size and finite.min() < finite.max() else None
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(grid), cmap="viridis", norm=norm, shading="flat")
    ax.figure.colorbar(mesh, ax=ax, label=bar)
    for i, r in enumerate(rs):
        for j, d in enumerate(ds):
            rgba = mesh.cmap(mesh.norm(grid[i, j])) if np.isfinite(grid[i, j]) else (1.0, 1.0, 1.0, 1.0)
            light = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] > 0.5
            ax.text(d, r, labels[i][j], ha="center", va="center", fontsize=7, color="k" if light else "w")
    lo, hi = min(xe[0], FIG1["d"] / 1.3), max(xe[-1], FIG1["d"] * 1.3)
    line = np.geomspace(lo, hi, 64)
    ax.plot(line, line**ALPHA_BOUNDARY, "r--", lw=1.5, label=rf"$m = d^{{1+\alpha}}$, $\alpha$ = {ALPHA_BOUNDARY:g}")
    ax.plot(FIG1["d"], FIG1["m"] / FIG1["d"], "r*", ms=14, mec="k",
            label=f"Fig 1: d = {FIG1['d']}, m = {FIG1['m']}, n = {FIG1['n']:,}")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(min(ye[0], 0.8), max(ye[-1], 1.25 * FIG1["m"] / FIG1["d"])),
           xlabel="input dimension d", ylabel="width ratio m/d", title=title)
    ax.set_xticks(ds, [f"{v:g}" for v in ds])
    ax.set_yticks(rs, [f"{v:g}" for v in rs])
    ax.minorticks_off()
    ax.legend(fontsize=7, loc="upper left")


def plot_phase(table: Table) -> Figure:
    fig, axes = subplots(1, 3, figsize=(19, 5), layout="constrained")
    ds, rs, rel = grid_of(table, "max_rel_mse_early")
    n_exp, _ = loglog_fit(col(table, "d"), col(table, "n"))
    _map(axes[0], ds, rs, rel, [[f"{v:.3g}" if np.isfinite(v) else "failed" for v in row] for row in rel], True,
         f"(a) max rel. test MSE(net, f_lin), t ≤ T (n ∝ d^{n_exp:.2f})", "max rel. MSE, t ≤ T (seed mean)")

    ratio = {**table, "escape_over_T": (col(table, "escape_step") / col(table, "T")).tolist()}
    _, _, esc = grid_of(ratio, "escape_over_T")
    _, _, steps = grid_of(table, "steps_run")
    _, _, t_win = grid_of(table, "T")
    seeds = np.unique(col(table, "seed"))
    hit = sum(np.isfinite(grid_of(ratio, "escape_over_T", s)[2]) for s in seeds)
    labels = [[(f"{esc[i, j]:.2f}" + ("" if hit[i, j] == seeds.size else f" ({int(hit[i, j])}/{seeds.size})"))
               if np.isfinite(esc[i, j]) else f"> {steps[i, j] / t_win[i, j]:.1f}" if np.isfinite(steps[i, j]) else "—"
               for j in range(ds.size)] for i in range(rs.size)]
    _map(axes[1], ds, rs, esc, labels, False, "(b) escape step t* / T (\"> k\": not within the k·T steps run)",
         "t* / T (mean over the seeds that escaped)")

    ax = axes[2]
    for i, r in enumerate(rs):
        ax.plot(ds, rel[i], f"C{i}-o", ms=4, label=f"m/d = {r:g}")
    for alpha, style, what in ((ALPHA_GROWN, "k--", "m ∝ d^{3/2}"), (ALPHA_FIXED_M, "k:", "fixed m")):
        r0 = rs[0] if alpha > 0 else rs[-1]
        xs, ys = path_values(ds, rs, rel, alpha, float(r0))
        if xs.size >= 2:
            ax.plot(xs, ys, style, lw=2, label=f"{what} (from m/d = {r0:g}), slope {loglog_fit(xs, ys)[0]:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="d", ylabel="max rel. test MSE, t ≤ T (seed mean)",
           title="(c) along rows, m ∝ d^{3/2} and fixed m")
    ax.legend(fontsize=7, loc="best")
    fig.suptitle("Where the early-time linear regime holds: two-layer erf net, both layers")
    return fig
