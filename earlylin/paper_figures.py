"""Every figure of the paper and ours: its table (from study records) and its plot (from the table).

Each figure is a pair kept side by side here, so that the math of one figure is in one place:

- ``table_<id>(records) -> Table`` turns study records (:mod:`earlylin.suite`) into a flat table
  (column name → list, all columns of equal length), written as CSV beside the PNG;
- ``plot_<id>(table) -> Figure`` draws from that table **alone** (the figures command reads the CSV
  back from disk and passes it here, so a figure can never use anything the table lacks).

Curves are seed means with the seed standard deviation in ``*_std`` columns. Figure ids:

=============  ==============  ===========================================================
id             studies         what
=============  ==============  ===========================================================
fig1a          fig1            train/test loss of net and f^lin over steps (log axis)
fig1b          fig1            outputs of 5 test points, net vs f^lin (seed 0)
fig1c          fig1c_fixed,    early-window max relative MSE(net, f^lin) vs d, log-log,
               fig1c_scaled    at fixed m = 256 and with n, m ∝ d^{1+α}; fitted slopes
fig2           fig2            ReLU, norm-dependent target: test loss of net, f^lin, stripped
fig3a_<v>      fig3_<v>        test loss of net and linear model, residual on V_lin / V_lin⊥
fig3b_<v>      fig3_<v>        outputs of 3 test points, net vs linear model
fig3c_<v>      fig3_<v>        relative MSE(net, linear) over steps (and to the exact-NTK model)
                               <v>: fc, cnn (ReLU, per-coordinate inputs), fc_sphere (erf, ‖x‖ = √d)
fig3_width     cifar_width     early relative MSE(net, linear) on CIFAR vs width (FC, CNN)
kernel_ratio   kernel          ‖Θ(0) − Θ^lin‖/‖Θ^lin‖ vs d per block, with fitted exponents
width_split    width           early MSE(net, f^lin) = nonlinear + width parts, vs m
escape         escape          escape step t* vs d, beside the prediction ∝ d·log(d)/η
first_layer    first_layer     first layer only: max relative MSE vs d with n, m ∝ d^{1+α}
=============  ==============  ===========================================================
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from earlylin.figures import seed_mean

Table = dict[str, list[Any]]
Records = dict[str, dict[str, Any]]


# ---------------------------------------------------------------------------------------------- helpers
def _curves(run: dict[str, Any], keys: tuple[str, ...]) -> Table:
    """step plus seed mean and seed std of each metric of one run."""
    per_seed = list(run["per_seed"].values())
    out: Table = {"step": list(per_seed[0]["steps"])}
    for key in keys:
        arr = np.array([[np.nan if v is None else v for v in m[key]] for m in per_seed], dtype=float)
        out[key] = seed_mean(run, key).tolist()
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (e.g. rel MSE at step 0)
            out[f"{key}_std"] = (np.nanstd(arr, axis=0, ddof=1) if len(per_seed) > 1 else 0 * arr[0]).tolist()
    return out


def col(table: Table, key: str) -> np.ndarray:
    """A numeric column (empty cells → NaN)."""
    return np.array([np.nan if v in (None, "") else float(v) for v in table[key]], dtype=float)


def loglog_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of log y against log x over the finite positive points."""
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        return math.nan, math.nan
    slope, icpt = np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)
    return float(slope), float(icpt)


def _steps_axis(table: Table) -> np.ndarray:
    return np.maximum(col(table, "step"), 0.5)  # step 0 drawn at 0.5 on the log axis


def _band(ax: plt.Axes, x: np.ndarray, table: Table, key: str, style: str, label: str) -> None:
    y, s = col(table, key), col(table, f"{key}_std")
    line = ax.plot(x, y, style, label=label)[0]
    if np.isfinite(s).any() and np.nanmax(s) > 0:
        ax.fill_between(x, y - s, y + s, color=line.get_color(), alpha=0.15, lw=0)


def _points_and_means(ax: plt.Axes, x: np.ndarray, y: np.ndarray, sel: np.ndarray, i: int,
                      label: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed points (faint) and the seed-mean line of y against x over the rows ``sel``."""
    xs = np.unique(x[sel])
    means = np.array([np.mean(y[sel & (x == v)]) for v in xs])
    ax.plot(x[sel], y[sel], "o", color=f"C{i}", alpha=0.35, ms=4)
    ax.plot(xs, means, f"C{i}-o", label=label)
    return xs, means


def _window_line(ax: plt.Axes, table: Table) -> None:
    if table.get("T"):
        ax.axvline(float(table["T"][0]), color="gray", lw=0.8, ls=":", label=f"T = {int(float(table['T'][0]))}")


# ---------------------------------------------------------------------------------------------- Fig 1
def table_fig1a(records: Records) -> Table:
    """Fig 1a: losses (1/2n)Σ(f − y)² of net and f^lin, train and test, per recorded step."""
    run = records["fig1"]["runs"][0]
    out = _curves(run, ("train_loss_net", "test_loss_net", "train_loss_lin", "test_loss_lin"))
    out["T"] = [run["summary"]["early_window_steps"]] * len(out["step"])
    return out


def plot_fig1a(table: Table) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    x = _steps_axis(table)
    for key, label, style in (("train_loss_net", "net (train)", "C0-"), ("test_loss_net", "net (test)", "C0--"),
                              ("train_loss_lin", "f_lin (train)", "C1-"), ("test_loss_lin", "f_lin (test)", "C1--")):
        _band(ax, x, table, key, style, label)
    _window_line(ax, table)
    ax.set(xscale="log", xlabel="step", ylabel="loss", title="Fig 1a: two-layer erf net vs its linear model")
    ax.legend(fontsize=8)
    return fig


N_FIG1B = 5


def table_fig1b(records: Records) -> Table:
    """Fig 1b: outputs f(x_j) of the first 5 test points over steps, net and f^lin (seed 0), with y_j."""
    return _logits_table(records["fig1"]["runs"][0], N_FIG1B, with_y=True)


def _logits_table(run: dict[str, Any], points: int, with_y: bool) -> Table:
    """Outputs of the first ``points`` test points over steps, net and linear model (first seed)."""
    seed0 = next(iter(run["per_seed"].values()))
    net, lin = np.array(seed0["logits_net"], float), np.array(seed0["logits_lin"], float)
    out: Table = {"step": list(seed0["steps"])}
    for j in range(min(points, net.shape[1])):
        out[f"net_{j}"], out[f"lin_{j}"] = net[:, j].tolist(), lin[:, j].tolist()
        if with_y:
            out[f"y_{j}"] = [seed0["logits_y"][j]] * len(out["step"])
    return out


def _plot_logits(table: Table, title: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.2))
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


def plot_fig1b(table: Table) -> plt.Figure:
    return _plot_logits(table, "Fig 1b: outputs of 5 test points")


def table_fig1c(records: Records) -> Table:
    """Fig 1c: per (series, d, seed) the max over t ≤ T of the relative test MSE(net, f^lin) and the
    test MSE; series ``fixed`` (m = 256) and ``scaled`` (n, m ∝ d^{1+α})."""
    return _closeness_table({series: records[f"fig1c_{series}"]["runs"] for series in ("fixed", "scaled")})


def _closeness_table(runs_by_series: dict[str, list[dict[str, Any]]]) -> Table:
    """One row per (series, d, seed): the early-window maxima of the relative and plain test MSE."""
    out: Table = {k: [] for k in ("series", "d", "n", "m", "seed", "max_rel_mse_early", "max_mse_early")}
    for series, runs in runs_by_series.items():
        for run in runs:
            s, c = run["summary"], run["config"]
            for k, seed in enumerate(c["seeds"]):
                for key, val in (("series", series), ("d", c["d"]), ("n", c["n"]), ("m", c["width"]),
                                 ("seed", seed), ("max_rel_mse_early", s["max_rel_test_mse_early_per_seed"][k]),
                                 ("max_mse_early", s["max_test_mse_early_per_seed"][k])):
                    out[key].append(val)
    return out


def table_first_layer(records: Records) -> Table:
    """First-layer theorem: per (d, seed) the max over t ≤ T of the relative test MSE(net, f^lin1),
    first layer trained only, n and m grown as d^{1+α} (series ``first``)."""
    return _closeness_table({"first layer": records["first_layer"]["runs"]})


def plot_first_layer(table: Table) -> plt.Figure:
    fig = plot_fig1c(table)
    fig.axes[0].set_title("First layer only: closeness vs d (n, m ∝ d^{1+α})")
    return fig


def fig1c_slopes(table: Table) -> dict[str, dict[str, float]]:
    """Per series: the log-log slope of max rel MSE vs d per seed, their mean and std (Fig 1c's fit)."""
    out = {}
    series, d, y, seed = np.array(table["series"]), col(table, "d"), col(table, "max_rel_mse_early"), col(table, "seed")
    for name in dict.fromkeys(series.tolist()):
        slopes = [loglog_fit(d[(series == name) & (seed == s)], y[(series == name) & (seed == s)])[0]
                  for s in np.unique(seed[series == name])]
        slopes = [v for v in slopes if np.isfinite(v)]
        out[name] = {"mean": float(np.mean(slopes)) if slopes else math.nan,
                     "std": float(np.std(slopes, ddof=1)) if len(slopes) > 1 else 0.0, "n_seeds": len(slopes)}
    return out


def plot_fig1c(table: Table) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.2))
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


# ---------------------------------------------------------------------------------------------- Fig 2
def table_fig2(records: Records) -> Table:
    """Fig 2: test loss of net, f^lin and the stripped model (no norm/constant features), and the
    test MSE of each model to the net."""
    run = records["fig2"]["runs"][0]
    out = _curves(run, ("test_loss_net", "test_loss_lin", "test_loss_stripped", "test_mse", "test_mse_stripped"))
    out["T"] = [run["summary"]["early_window_steps"]] * len(out["step"])
    return out


def plot_fig2(table: Table) -> plt.Figure:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
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
# variant → (study, title label). fc/cnn: ReLU on per-coordinate standardised inputs, where the claim
# does not hold; fc_sphere: erf on images rescaled to ‖x‖ = √d (the theory's norm concentration).
FIG3_VARIANTS = {"fc": ("fig3_fc", "FC, ReLU"), "cnn": ("fig3_cnn", "CNN, ReLU"),
                 "fc_sphere": ("fig3_fc_sphere", "FC, erf, ‖x‖ = √d")}


def _fig3_run(records: Records, variant: str) -> dict[str, Any]:
    return records[FIG3_VARIANTS[variant][0]]["runs"][0]


def table_fig3a(records: Records, variant: str) -> Table:
    """Fig 3a: test loss of net and linear model and the test residual split ‖P(f−y)‖²/n (V_lin)
    and ‖(I−P)(f−y)‖²/n (V_lin⊥) for both."""
    return _curves(_fig3_run(records, variant), ("test_loss_net", "test_loss_lin", "test_res_par_net",
                                                  "test_res_perp_net", "test_res_par_lin", "test_res_perp_lin"))


def plot_fig3a(table: Table, variant: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.2))
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


N_FIG3B = 3


def table_fig3b(records: Records, variant: str) -> Table:
    """Fig 3b: outputs of the first 3 test points over steps, net and linear model."""
    return _logits_table(_fig3_run(records, variant), N_FIG3B, with_y=False)


def plot_fig3b(table: Table, variant: str) -> plt.Figure:
    return _plot_logits(table, f"Fig 3b: outputs of 3 test points, {FIG3_VARIANTS[variant][1]}")


def table_fig3c(records: Records, variant: str) -> Table:
    """Fig 3c: relative MSE(net, linear) = MSE / mean f_net², train and test; with ``ntk_model`` runs
    also the test relative MSE to kernel GD on the exact infinite-width NTK (the finite-width part)."""
    run = _fig3_run(records, variant)
    ntk = ("test_rel_mse_ntk_inf",) if "test_rel_mse_ntk_inf" in next(iter(run["per_seed"].values())) else ()
    return _curves(run, ("train_rel_mse", "test_rel_mse", *ntk))


def plot_fig3c(table: Table, variant: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.2))
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


FIG3_EARLY_STEPS = 1000  # the paper's "~1,000 steps" early phase on CIFAR


def table_fig3_width(records: Records) -> Table:
    """Per (arch, width): the max over 1 ≤ t ≤ 1,000 of the relative test MSE(net, linear) and of the
    test MSE, and the relative MSE at the last step (seed 0; one seed per CIFAR run)."""
    out: Table = {k: [] for k in ("arch", "width", "max_rel_mse_early", "max_mse_early", "rel_mse_last", "steps")}
    for run in records["cifar_width"]["runs"]:
        m = next(iter(run["per_seed"].values()))
        steps = np.array(m["steps"])
        early = (steps >= 1) & (steps <= FIG3_EARLY_STEPS)
        rel = np.array([np.nan if v is None else v for v in m["test_rel_mse"]], float)
        mse = np.array([np.nan if v is None else v for v in m["test_mse"]], float)
        for key, val in (("arch", run["config"]["arch"]), ("width", run["config"]["width"]),
                         ("max_rel_mse_early", float(np.nanmax(rel[early]))),
                         ("max_mse_early", float(np.nanmax(mse[early]))), ("rel_mse_last", float(rel[-1])),
                         ("steps", int(steps[-1]))):
            out[key].append(val)
    return out


def plot_fig3_width(table: Table) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.2))
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
def table_kernel_ratio(records: Records) -> Table:
    """‖Θ(0) − Θ^lin‖_op, ‖Θ^lin‖_op and their ratio per (d, n, m, seed, block)."""
    keys = ("d", "n", "m", "seed", "block", "diff_norm", "lin_norm", "ratio", "offdiag_ratio")
    rows = records["kernel"]["kernel"]["rows"]
    return {k: [r[k] for r in rows] for k in keys}


def plot_kernel_ratio(table: Table) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.2))
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


def table_width_split(records: Records) -> Table:
    """Per width m and seed: max over t ≤ T of the test MSE of the net to f^lin (total), of the net
    to the finite-width model (nonlinear part) and of the finite-width model to f^lin (width part)."""
    out: Table = {k: [] for k in ("m", "d", "seed", "total", "nonlinear", "width", "d_over_m")}
    for run in records["width"]["runs"]:
        c = run["config"]
        steps = np.array(next(iter(run["per_seed"].values()))["steps"])
        early = steps <= run["summary"]["early_window_steps"]
        for seed, m in run["per_seed"].items():
            vals = {k: float(np.nanmax(np.array(m[key], dtype=float)[early]))
                    for k, key in (("total", "test_mse"), ("nonlinear", "test_mse_fw"), ("width", "test_mse_lin_fw"))}
            for key, val in (("m", c["width"]), ("d", c["d"]), ("seed", int(seed)), *vals.items(),
                             ("d_over_m", c["d"] / c["width"])):
                out[key].append(val)
    return out


def plot_width_split(table: Table) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.2))
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


def table_escape(records: Records) -> Table:
    """Per d and seed: escape step t* (first step after T with MSE(net, f^lin) > 2× its value at T;
    empty if not reached) and the prediction's scale d·log(d)/η."""
    out: Table = {k: [] for k in ("d", "seed", "escape_step", "d_log_d_over_lr", "steps_run")}
    for run in records["escape"]["runs"]:
        c, s = run["config"], run["summary"]
        for k, seed in enumerate(c["seeds"]):
            for key, val in (("d", c["d"]), ("seed", seed), ("escape_step", s["escape_step_per_seed"][k]),
                             ("d_log_d_over_lr", c["d"] * math.log(c["d"]) / c["lr"]), ("steps_run", c["steps"])):
                out[key].append(val)
    return out


def escape_fit(table: Table) -> dict[str, float]:
    """Log-log slope of the seed-mean t* against d·log(d)/η (1 if t* ∝ d log d/η) and c* = t*η/(d log d)."""
    d, t, scale = col(table, "d"), col(table, "escape_step"), col(table, "d_log_d_over_lr")
    ds = np.unique(d)
    t_mean = np.array([np.nanmean(t[d == v]) if np.isfinite(t[d == v]).any() else np.nan for v in ds])
    sc = np.array([scale[d == v][0] for v in ds])
    slope, _icpt = loglog_fit(sc, t_mean)
    return {"slope": slope, "c_star": float(np.nanmean(t_mean / sc)) if np.isfinite(t_mean).any() else math.nan,
            "reached": int(np.isfinite(t_mean).sum()), "n_d": len(ds)}


def plot_escape(table: Table) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(6, 4.2))
    d, t = col(table, "d"), col(table, "escape_step")
    ds = np.unique(d)
    ax.plot(d, t, "o", color="C0", alpha=0.35, ms=4)
    t_mean = np.array([np.nanmean(t[d == v]) if np.isfinite(t[d == v]).any() else np.nan for v in ds])
    fit = escape_fit(table)
    ax.plot(ds, t_mean, "C0-o", label=f"measured t* (slope vs d log d: {fit['slope']:.2f})")
    scale = np.array([col(table, "d_log_d_over_lr")[d == v][0] for v in ds])
    if np.isfinite(fit["c_star"]):
        ax.plot(ds, fit["c_star"] * scale, "k--", label=f"{fit['c_star']:.1f}·d·log(d)/η")
    ax.set(xscale="log", yscale="log", xlabel="d", ylabel="escape step t*", title="When the net leaves f_lin")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class FigureSpec:
    """One figure: the studies it needs, its table builder and its plotter."""

    studies: tuple[str, ...]
    table: Callable[[Records], Table]
    plot: Callable[[Table], plt.Figure]


def _variant(fn: Callable[..., Any], variant: str) -> Callable[..., Any]:
    return lambda x: fn(x, variant)


FIGURES: dict[str, FigureSpec] = {
    "fig1a": FigureSpec(("fig1",), table_fig1a, plot_fig1a),
    "fig1b": FigureSpec(("fig1",), table_fig1b, plot_fig1b),
    "fig1c": FigureSpec(("fig1c_fixed", "fig1c_scaled"), table_fig1c, plot_fig1c),
    "fig2": FigureSpec(("fig2",), table_fig2, plot_fig2),
    "first_layer": FigureSpec(("first_layer",), table_first_layer, plot_first_layer),
    **{f"fig3{p}_{v}": FigureSpec((study,), _variant(t, v), _variant(pl, v))
       for v, (study, _) in FIG3_VARIANTS.items()
       for p, t, pl in (("a", table_fig3a, plot_fig3a), ("b", table_fig3b, plot_fig3b),
                        ("c", table_fig3c, plot_fig3c))},
    "fig3_width": FigureSpec(("cifar_width",), table_fig3_width, plot_fig3_width),
    "kernel_ratio": FigureSpec(("kernel",), table_kernel_ratio, plot_kernel_ratio),
    "width_split": FigureSpec(("width",), table_width_split, plot_width_split),
    "escape": FigureSpec(("escape",), table_escape, plot_escape),
}
