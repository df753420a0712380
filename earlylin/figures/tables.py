"""Every figure's table (numpy only): study records → a flat table written as CSV beside the PNG.

``table_<id>(records) -> Table`` turns study records (:mod:`earlylin.studies`) into a flat table
(column name → list, all columns of equal length). :data:`TABLES` maps each figure id to the studies
it needs and its table builder; :mod:`earlylin.figures.plots` draws each figure from its table **alone** and
:mod:`paper_checks` reads some of these tables too. Curves are seed means with the seed standard
deviation in ``*_std`` columns. Figure ids:

=============  ==============  ===========================================================
id             studies         what
=============  ==============  ===========================================================
fig1a          fig1            train/test loss of net and f^lin over steps (log axis)
fig1b          fig1            outputs of 5 test points, net vs f^lin (seed 0)
fig1c          fig1c_fixed,    early-window max relative MSE(net, f^lin) vs d, log-log,
               fig1c_scaled    at fixed m = 256 and with n, m ∝ d^{1+α}; fitted slopes
fig2           fig2            ReLU, norm-dependent target: test loss of net, f^lin, stripped
fig2_targets   fig2_target_*   per target (norm, relu_teacher, radial): losses and MSE to the net of
                               f^lin, stripped, f^lin without q, f^lin without the constants
fig3a_<v>      fig3_<v>        test loss of net and linear model, residual on V_lin / V_lin⊥
fig3b_<v>      fig3_<v>        outputs of 3 test points, net vs linear model
fig3c_<v>      fig3_<v>        relative MSE(net, linear) over steps (and to the exact-NTK model)
                               <v>: fc, cnn (ReLU, per-coordinate inputs), fc_sphere (erf, ‖x‖ = √d),
                               fc_erf_coordinate, fc_relu_sphere, cnn_erf_sphere (erf, ‖x‖ = √d; GPU)
fig3_width     cifar_width     early relative MSE(net, linear) on CIFAR vs width (FC, CNN)
fig3_grid      fig3_grid       per activation × inputs × arch × width (subsampled): early relative MSE,
                               its growth, and the V_lin⊥ drop below the exact-NTK model and f^lin
fig3_grid_     fig3_grid,      the same over every width run: FC 256–2,048, CNN 16–128 channels
widths         fig3_grid_wide,
               fig3_grid_
               widest
fig3_cnn_cpu   fig3_cnn_cpu    the same for the CNN at n = 1,000 (erf on the sphere, ReLU per coordinate)
training       training_cpu    per data (cats vs horses, ten classes) × loss × optimizer: relative MSE(net, linear),
                               label agreement and μ/I(F; Y) over η·t (docs/theory.md §3.3); n = 2,000
training_      training        the same at the full 10k / 2k (a GPU study: benchmarks/training_gpu.sh)
paper_size
alpha          alpha           relative MSE(net, θ-linearisation) over η·t per output scale α, and at fixed η·t
                               against α (docs/theory.md §3.3)
kernel_ratio   kernel          ‖Θ(0) − Θ^lin‖/‖Θ^lin‖ vs d per block, with fitted exponents
width_split    width           early MSE(net, f^lin) = nonlinear + width parts, vs m
escape         escape          escape step t* vs d, beside the prediction ∝ d·log(d)/η
first_layer    first_layer     first layer only: max relative MSE vs d with n, m ∝ d^{1+α}
phase          phase           max relative MSE and escape step over d × m/d (n ∝ d^{3/2})
=============  ==============  ===========================================================
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from earlylin.config import window_scale
from earlylin.experiments.analysis import FIG3_EARLY_STEPS, Records, Table, seed_mean
from earlylin.studies.presets import FIG2_TARGETS, STUDY_SPECS

N_FIG1B = 5
N_FIG3B = 3
# variant → (study, title label). fc/cnn: ReLU on per-coordinate standardised inputs, where the claim
# does not hold; fc_sphere: erf on images rescaled to ‖x‖ = √d (the theory's norm concentration); the
# other two settings of the FC at paper size, and the CNN with erf on the sphere (a GPU study).
FIG3_VARIANTS = {"fc": ("fig3_fc", "FC, ReLU"), "cnn": ("fig3_cnn", "CNN, ReLU"),
                 "fc_sphere": ("fig3_fc_sphere", "FC, erf, ‖x‖ = √d"),
                 "fc_erf_coordinate": ("fig3_fc_erf_coordinate", "FC, erf, per-coordinate inputs"),
                 "fc_relu_sphere": ("fig3_fc_relu_sphere", "FC, ReLU, ‖x‖ = √d"),
                 "cnn_erf_sphere": ("fig3_cnn_erf_sphere", "CNN, erf, ‖x‖ = √d")}
# the subsampled grid, every width run: every study of kind cifar_grid, in preset order
FIG3_GRID_WIDTHS = tuple(s for s, spec in STUDY_SPECS["paper"].items() if spec["kind"] == "cifar_grid")


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


def _fig3_run(records: Records, variant: str) -> dict[str, Any]:
    return records[FIG3_VARIANTS[variant][0]]["runs"][0]


# ---------------------------------------------------------------------------------------------- Fig 1, Fig 2
def table_fig1a(records: Records) -> Table:
    """Fig 1a: losses (1/2n)Σ(f − y)² of net and f^lin, train and test, per recorded step."""
    run = records["fig1"]["runs"][0]
    out = _curves(run, ("train_loss_net", "test_loss_net", "train_loss_lin", "test_loss_lin"))
    out["T"] = [run["summary"]["early_window_steps"]] * len(out["step"])
    return out


def table_fig1b(records: Records) -> Table:
    """Fig 1b: outputs f(x_j) of the first 5 test points over steps, net and f^lin (seed 0), with y_j."""
    return _logits_table(records["fig1"]["runs"][0], N_FIG1B, with_y=True)


def table_fig1c(records: Records) -> Table:
    """Fig 1c: per (series, d, seed) the max over t ≤ T of the relative test MSE(net, f^lin) and the
    test MSE; series ``fixed`` (m = 256) and ``scaled`` (n, m ∝ d^{1+α})."""
    return _closeness_table({series: records[f"fig1c_{series}"]["runs"] for series in ("fixed", "scaled")})


def table_first_layer(records: Records) -> Table:
    """First-layer theorem: per (d, seed) the max over t ≤ T of the relative test MSE(net, f^lin1),
    first layer trained only, n and m grown as d^{1+α} (series ``first``)."""
    return _closeness_table({"first layer": records["first_layer"]["runs"]})


def table_fig2(records: Records) -> Table:
    """Fig 2: test loss of net, f^lin and the stripped model (no norm/constant features), and the
    test MSE of each model to the net."""
    run = records["fig2"]["runs"][0]
    out = _curves(run, ("test_loss_net", "test_loss_lin", "test_loss_stripped", "test_mse", "test_mse_stripped"))
    out["T"] = [run["summary"]["early_window_steps"]] * len(out["step"])
    return out


FIG2_TARGET_KEYS = ("test_loss_net", "test_loss_lin", "test_loss_stripped", "test_loss_no_norm", "test_loss_no_const",
                    "test_mse", "test_mse_stripped", "test_mse_no_norm", "test_mse_no_const")


def table_fig2_targets(records: Records) -> Table:
    """Fig 2 per target (studies ``fig2_target_<t>``, stacked, column ``target``): seed-mean test losses of the net,
    f^lin, the stripped model and the ablations f^lin without q (``no_norm``) and without the constant columns
    (``no_const``), and each model's test MSE to the net, per recorded step."""
    out: Table = {}
    for study in sorted(k for k in records if k.startswith("fig2_target_")):
        run = records[study]["runs"][0]
        part = _curves(run, FIG2_TARGET_KEYS)
        part = {"target": [run["config"]["target"]] * len(part["step"]),
                "T": [run["summary"]["early_window_steps"]] * len(part["step"]), **part}
        for k, v in part.items():
            out.setdefault(k, []).extend(v)
    return out


# ---------------------------------------------------------------------------------------------- Fig 3
def table_fig3a(records: Records, variant: str) -> Table:
    """Fig 3a: test loss of net and linear model and the test residual split ‖P(f−y)‖²/n (V_lin)
    and ‖(I−P)(f−y)‖²/n (V_lin⊥) for both."""
    return _curves(_fig3_run(records, variant), ("test_loss_net", "test_loss_lin", "test_res_par_net",
                                                  "test_res_perp_net", "test_res_par_lin", "test_res_perp_lin"))


def table_fig3b(records: Records, variant: str) -> Table:
    """Fig 3b: outputs of the first 3 test points over steps, net and linear model."""
    return _logits_table(_fig3_run(records, variant), N_FIG3B, with_y=False)


def table_fig3c(records: Records, variant: str) -> Table:
    """Fig 3c: relative MSE(net, linear) = MSE / mean f_net², train and test; with ``ntk_model`` runs
    also the test relative MSE to kernel GD on the exact infinite-width NTK (the finite-width part)."""
    run = _fig3_run(records, variant)
    ntk = ("test_rel_mse_ntk_inf",) if "test_rel_mse_ntk_inf" in next(iter(run["per_seed"].values())) else ()
    return _curves(run, ("train_rel_mse", "test_rel_mse", *ntk))


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


def table_fig3_grid(records: Records, studies: tuple[str, ...] = ("fig3_grid",)) -> Table:
    """Per run of the grid studies (arch, width, activation, inputs): the max over 1 ≤ t ≤ 1,000 of the relative
    test MSE(net, linear), the relative MSE at the last step, the same to the exact-NTK model, and the drop of the
    net's V_lin⊥ test residual below the exact-NTK model's (early max, last) and of the exact-NTK model's below
    f^lin's."""
    keys = ("arch", "width", "activation", "cifar_norm", "n", "steps", "max_rel_mse_early", "rel_mse_last",
            "max_rel_mse_ntk_early", "perp_drop_ntk_early", "perp_drop_ntk_last", "perp_drop_kernel_early",
            "perp_drop_kernel_last")
    out: Table = {k: [] for k in keys}
    for run in (r for study in studies for r in records[study]["runs"]):
        c, m = run["config"], next(iter(run["per_seed"].values()))
        steps = np.array(m["steps"])
        early = (steps >= 1) & (steps <= FIG3_EARLY_STEPS)
        arr = {k: np.array([np.nan if v is None else v for v in m.get(k, [None] * len(steps))], float) for k in (
            "test_rel_mse", "test_rel_mse_ntk_inf", "test_res_perp_net", "test_res_perp_ntk_inf", "test_res_perp_lin")}
        net_drop = (arr["test_res_perp_ntk_inf"] - arr["test_res_perp_net"]) / arr["test_res_perp_ntk_inf"]
        ker_drop = (arr["test_res_perp_lin"] - arr["test_res_perp_ntk_inf"]) / arr["test_res_perp_lin"]
        upto = steps <= FIG3_EARLY_STEPS
        vals = (c["arch"], c["width"], c["activation"], c["cifar_norm"], c["n"], int(steps[-1]),
                float(np.nanmax(arr["test_rel_mse"][early])), float(arr["test_rel_mse"][-1]),
                float(np.nanmax(arr["test_rel_mse_ntk_inf"][early])), float(np.nanmax(net_drop[upto])),
                float(net_drop[-1]), float(np.nanmax(ker_drop[upto])), float(ker_drop[-1]))
        for k, v in zip(keys, vals, strict=True):
            out[k].append(v)
    return out


# ---------------------------------------------------------------------------------------------- ours
def table_kernel_ratio(records: Records) -> Table:
    """‖Θ(0) − Θ^lin‖_op, ‖Θ^lin‖_op and their ratio per (d, n, m, seed, block)."""
    keys = ("d", "n", "m", "seed", "block", "diff_norm", "lin_norm", "ratio", "offdiag_ratio")
    rows = records["kernel"]["kernel"]["rows"]
    return {k: [r[k] for r in rows] for k in keys}


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


def table_escape(records: Records) -> Table:
    """Per d and seed: escape step t* (first step after T with MSE(net, f^lin) > 2× its value at T;
    empty if not reached) and the prediction's scale d·log(d)/η."""
    out: Table = {k: [] for k in ("d", "seed", "escape_step", "d_log_d_over_lr", "steps_run")}
    for run in records["escape"]["runs"]:
        c, s = run["config"], run["summary"]
        for k, seed in enumerate(c["seeds"]):
            for key, val in (("d", c["d"]), ("seed", seed), ("escape_step", s["escape_step_per_seed"][k]),
                             ("d_log_d_over_lr", window_scale(c["d"], c["lr"])), ("steps_run", c["steps"])):
                out[key].append(val)
    return out


PHASE_COLUMNS = {"d": "d", "m_over_d": "m_over_d", "m": "width", "n": "n", "seed": "seed", "T": "early_window_steps",
                 "steps_run": "steps", "max_rel_mse_early": "max_rel_mse_early", "max_mse_early": "max_mse_early",
                 "escape_step": "escape_step", "error": "error"}


def table_phase(records: Records) -> Table:
    """Phase diagram (earlylin/studies/phase.py): per (d, m/d, seed) the max over t ≤ T of the relative and plain
    test MSE(net, f^lin), the escape step (empty if not reached or failed), T and the steps run."""
    t = records["phase"]["table"]
    return {out: list(t[src]) for out, src in PHASE_COLUMNS.items()}


# ---------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class TableSpec:
    """One figure's table: the studies it needs and its builder."""

    studies: tuple[str, ...]
    table: Callable[[Records], Table]


def _variant(fn: Callable[..., Any], variant: str) -> Callable[..., Any]:
    return lambda x: fn(x, variant)


# figure id → its table; the order is the figures' order (index.json, --only's help)
TRAINING_CURVES = ("test_rel_mse", "test_label_agreement", "mu", "mu_i_fy", "test_err_net", "test_err_lin",
                   "test_loss_net", "test_loss_lin")


def training_choice(config: dict[str, Any]) -> tuple[str, str, str]:
    """(data, loss, optimizer) labels of a training-study run."""
    data = "cats vs horses" if config.get("classes") is None else f"{len(config['classes'])} classes"
    opt = config.get("optimizer", "gd") + (f" (batch {config['batch_size']})" if config.get("batch_size") else "")
    return data, config.get("loss", "squared"), opt


def table_training(records: Records, study: str = "training_cpu") -> Table:
    """Per run of the training study and recorded step: seed means of the relative test MSE(net, linear), the
    label agreement, μ and I(F; Y), error rates and losses, with η·t and the run's measured linear regime."""
    out: Table = {k: [] for k in ("data", "loss", "optimizer", "n", "width", "step", "lr_t", "linear_regime_steps",
                                  *TRAINING_CURVES)}
    for run in records[study]["runs"]:
        cur = _curves(run, TRAINING_CURVES)
        data, loss, opt = training_choice(run["config"])
        for i, step in enumerate(cur["step"]):
            for k, v in (("data", data), ("loss", loss), ("optimizer", opt), ("n", run["config"]["n"]),
                         ("width", run["config"]["width"]), ("step", step), ("lr_t", step * run["config"]["lr"]),
                         ("linear_regime_steps", run["summary"]["linear_regime_steps"])):
                out[k].append(v)
            for k in TRAINING_CURVES:
                out[k].append(cur[k][i])
    return out


def table_alpha(records: Records) -> Table:
    """Per output scale α and recorded step: η·t and the relative test MSE of the net to its θ-linearisation and to
    its fitted affine model; the study summary's reading point and threshold in every row."""
    rec = records["alpha"]
    out: Table = {k: [] for k in ("alpha", "step", "lr_t", "rel_mse_ntk_lin", "rel_mse_fitted", "at_lr_t",
                                  "threshold")}
    for run in rec["runs"]:
        cur = _curves(run, ("test_rel_mse_ntk_lin", "test_rel_mse"))
        for i, step in enumerate(cur["step"]):
            for k, v in (("alpha", run["config"]["alpha"]), ("step", step), ("lr_t", step * run["config"]["lr"]),
                         ("rel_mse_ntk_lin", cur["test_rel_mse_ntk_lin"][i]),
                         ("rel_mse_fitted", cur["test_rel_mse"][i]),
                         ("at_lr_t", rec["summary"]["at_lr_t"]), ("threshold", rec["summary"]["threshold"])):
                out[k].append(v)
    return out


TABLES: dict[str, TableSpec] = {
    "fig1a": TableSpec(("fig1",), table_fig1a),
    "fig1b": TableSpec(("fig1",), table_fig1b),
    "fig1c": TableSpec(("fig1c_fixed", "fig1c_scaled"), table_fig1c),
    "fig2": TableSpec(("fig2",), table_fig2),
    "fig2_targets": TableSpec(tuple(f"fig2_target_{t}" for t in FIG2_TARGETS), table_fig2_targets),
    "first_layer": TableSpec(("first_layer",), table_first_layer),
    **{f"fig3{p}_{v}": TableSpec((study,), _variant(t, v))
       for v, (study, _) in FIG3_VARIANTS.items()
       for p, t in (("a", table_fig3a), ("b", table_fig3b), ("c", table_fig3c))},
    "fig3_width": TableSpec(("cifar_width",), table_fig3_width),
    "fig3_grid": TableSpec(("fig3_grid",), table_fig3_grid),
    "fig3_grid_widths": TableSpec(FIG3_GRID_WIDTHS, lambda r: table_fig3_grid(r, FIG3_GRID_WIDTHS)),
    "fig3_cnn_cpu": TableSpec(("fig3_cnn_cpu",), lambda r: table_fig3_grid(r, ("fig3_cnn_cpu",))),
    "training": TableSpec(("training_cpu",), table_training),
    "training_paper_size": TableSpec(("training",), lambda r: table_training(r, "training")),
    "alpha": TableSpec(("alpha",), table_alpha),
    "kernel_ratio": TableSpec(("kernel",), table_kernel_ratio),
    "width_split": TableSpec(("width",), table_width_split),
    "escape": TableSpec(("escape",), table_escape),
    "phase": TableSpec(("phase",), table_phase),
}
