"""Every size preset in one place: the ``--quick`` run sizes of each family and the study sizes.

The paper sizes of single runs are the config defaults (docs/theory.md §5); ``--quick`` shrinks
them to a smoke run that a 2-core CPU finishes in seconds:

- two-layer net: n = 2,000 train / 500 test points, 1,000 steps;
- 1D CNN: n = 500 / 200, 64 filters, 300 steps (its hidden activation is n·d·m per seed, d× the
  two-layer net's);
- CIFAR: 500 / 500 images, 300 steps, FC width 64, CNN 16 channels (a CNN layer costs
  n·H·W·C²·k² per copy, so the CNN gets fewer channels).
"""

from __future__ import annotations

from typing import Any

QUICK: dict[str, dict[str, Any]] = {
    "two_layer": {"n": 2_000, "n_test": 500, "steps": 1_000},
    "cnn1d": {"n": 500, "n_test": 200, "width": 64, "steps": 300},
    "cifar": {"n": 500, "n_test": 500, "steps": 300},
}
CIFAR_QUICK_WIDTH = {"fc": 64, "cnn": 16}
# python -m earlylin.kernel --quick: three small d and a looser Lanczos tolerance (4 s on a CPU)
KERNEL_QUICK: dict[str, Any] = {"ds": (16, 32, 64), "tol": 1e-5}


# ---------------------------------------------------------------------------------------------- studies
# The named studies behind every figure and paper check (run by earlylin.studies), at two sizes:
# ``paper`` is the paper's setting (docs/theory.md §5) where it is known and our documented choice
# where it is not; ``quick`` is a CPU size for smoke runs whose verdicts may be inconclusive.
# size → study → spec. A spec is plain data: the configs' fields, so that it can key the cache.
#
# Paper-size choices where the paper is silent (docs/theory.md §5):
#
# - Fig 1: η = 1 for 8,000 steps (escape near step 5,200 at d = 50), seeds 0–2.
# - Fig 1c: d ∈ {25, 50, 100, 200} at the paper's fixed m = 256, n = 20,000 (5,400 steps > T at
#   d = 200); and with n, m ∝ d^{1+α}, α = 1/2, through the paper point (d = 50: n = 20,000, m = 256),
#   d ∈ {25, 50, 100} (2,400 steps > T at d = 100; d = 200 would need n = 160k, m = 2,048).
# - Fig 2: ReLU, target ½ sign(f*) + ½ tanh(standardised ‖x‖²), d = 50, m = 256, 8,000 steps.
# - Fig 2 targets (the paper's target formula is unknown, README.md, section Fig 2): ``fig2_target_<t>``
#   for t ∈ FIG2_TARGETS — the zero-mean ``norm`` target, the homogeneous ``relu_teacher`` and the purely
#   ``radial`` one — ReLU, both layers, d = 50, n = 20,000, m = 256, 2,000 steps (past T = 978), with the
#   ablations f^lin without q and without the constant columns.
# - Fig 3: the 10k/2k pooled CIFAR set, η = 1; FC width 256 (4 hidden layers), CNN 32 channels
#   (4 layers of 3×3), sized so that the whole set stays within minutes on one H100. ``fig3_fc`` /
#   ``fig3_cnn`` use ReLU on per-coordinate standardised inputs (the first setting tried, where the
#   claim fails); ``fig3_fc_sphere`` uses erf on inputs rescaled to ‖x‖ = √d (the CLI default: the
#   theory's norm concentration, and an odd φ whose deep kernel has no ρ² term), 8,000 steps, with
#   kernel GD on the exact infinite-width NTK beside it (``ntk_model``).
# - Fig 3, fitted: the FC run again against the affine model least-squares-fitted to the net's
#   empirical NTK (``linear="fitted"``), to tell wrong derived constants from a non-linear net.
# - CIFAR width sweep: FC widths 256–2,048 and CNN 8–32 channels, 2,000 steps each, to tell
#   the finite-width part of the Fig 3 gap from the rest.
# - Fig 3 grid (README.md, section Fig 3): activation {erf, relu} × inputs {coordinate, sphere} × width (FC 256, 512;
#   CNN 16 channels), subsampled to n = 200 / 200 images, 1,200 steps (sized for a shared 2-core CPU; the paper's widths
#   need a GPU), with the exact-NTK model; ``fig3_fc_<act>_<norm>``: the FC at paper size (10k/2k) for the two settings
#   that ``fig3_fc`` / ``fig3_fc_sphere`` do not cover, 4,000 steps, with the exact-NTK model. ``fig3_grid_wide``: the
#   grid's wider nets at the same size (FC 1,024 units; CNN 32 and 64 channels); ``fig3_grid_widest``: the widest (FC
#   2,048 units, CNN 128 channels; ≈ 15 single-thread CPU-minutes per run). ``fig3_cnn_cpu``: the CNN (32 channels) at
#   the largest n the CPU ran, n = 1,000 / 1,000, 2,000 steps, erf on the sphere and ReLU per coordinate, with the
#   exact-NTK model. ``fig3_cnn_erf_sphere``: the paper-size CNN for erf on the sphere (as ``fig3_cnn``, 3,000 steps;
#   needs a GPU: paper_checks lists it as not run until its record exists; no exact-NTK model: the 10k × 10k CNN kernel
#   is a CPU-hour job of its own).
# - Kernel bound: d ∈ {25, 50, 100, 200}, n = m = 2·d^{3/2}, two seeds.
# - Width split: d = 50, n = 20,000, m ∈ {256, 1024, 4096}, 1,000 steps (T = 978).
# - Escape: d ∈ {25, 50, 100}, m = 256, n = 20,000, 16,000 steps (t* ≈ 26·d·log d at d = 50).
# - First-layer theorem: first layer only, n, m ∝ d^{3/2} as for Fig 1c scaled.
# - Phase diagram (earlylin/studies/phase.py): both layers, erf, d ∈ {16, 32, 64, 128} × m/d ∈ {1, 2, 4, 8}, n ∝ d^{3/2}
#   through the Fig 1 point (n = 20,000 at d = 50), 5·T steps per point (T = 5·d·log d), seeds 0–1;
#   ≈ 4–5 min on one H100/H200 by the measured step rate (benchmarks/phase_gpu.sh). Quick: d ∈ {8, 16, 32}
#   × m/d ∈ {1, 4, 16}, n = 8·d^{3/2}, 3·T steps, ≈ 20 s of single-thread CPU time.
# - Training (docs/theory.md §3.3; Kalimeris et al. 2019): the FC net (4 × 256, erf, ‖x‖ = √d) on cats vs horses and on
#   all ten classes, squared loss / cross-entropy × full-batch GD / SGD (batch 128), η = 1: ``training_cpu`` at
#   n = 2,000 / 1,000 and 1,000 steps (≈ 3 CPU-minutes, the committed record), ``training`` at the full 10k / 2k and
#   4,000 steps (a GPU study: benchmarks/training_gpu.sh; paper_checks lists it as not run until its record exists).
# - Output scale α (earlylin/studies/alpha.py): a tanh MLP 10-256-1 on the synthetic teacher labels, n = 1,000 / 500,
#   η = 0.1, 800 steps, α ∈ {1, 2, 4, 8, 16}, float64, with its θ-linearisation; the relative MSE read at η·t = 20
#   and the regime's end at a relative MSE of 10⁻³ (≈ 2 CPU-minutes).
SIZES = ("quick", "paper")
SEEDS = (0, 1, 2)
# The first Fig 3 setting: ReLU on per-coordinate standardised inputs, where the claim does not hold
RELU_COORD = {"activation": "relu", "cifar_norm": "coordinate"}

FIG2_TARGETS = ("norm", "relu_teacher", "radial")
FIG3_GRID_AXES = {"activation": ["erf", "relu"], "cifar_norm": ["coordinate", "sphere"]}
# The two CNN settings the paper-size Fig 3 runs cover: erf on the sphere, ReLU per coordinate
FIG3_CNN_SETTINGS = [{"activation": "erf", "cifar_norm": "sphere"}, RELU_COORD]
# The training study's choices: data (cats vs horses, ten classes) × loss × optimizer
TRAINING_SETTINGS = [{"classes": classes, "loss": loss, "optimizer": opt, "batch_size": batch}
                     for classes in (None, list(range(10))) for loss in ("squared", "cross_entropy")
                     for opt, batch in (("gd", None), ("sgd", 128))]
TRAINING_NET = {"arch": "fc", "width": 256, "depth": 4, "activation": "erf", "cifar_norm": "sphere"}


def _fig3_grid(widths: dict[str, list[int]], steps: int) -> dict[str, Any]:
    """A Fig 3 grid study: activation × inputs × ``widths``, subsampled to n = 200 / 200 images."""
    return {"kind": "cifar_grid", "grid": FIG3_GRID_AXES, "widths": widths,
            "cifar": {"n": 200, "n_test": 200, "steps": steps, "ntk_model": True}}


def _fig2_targets(base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"fig2_target_{t}": {"kind": "two_layer", "ds": [50], "base": {**base, "activation": "relu", "target": t,
                                                                          "seeds": SEEDS}} for t in FIG2_TARGETS}


STUDY_SPECS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "fig1": {"kind": "two_layer", "ds": [50], "base": {"steps": 8000, "seeds": SEEDS}},
        "fig1c_fixed": {"kind": "two_layer", "ds": [25, 50, 100, 200], "base": {"steps": 5400, "seeds": SEEDS}},
        "fig1c_scaled": {"kind": "two_layer", "ds": [25, 50, 100], "scale_alpha": 0.5,
                         "base": {"n": 7071, "width": 90, "steps": 2400, "seeds": SEEDS}},
        "fig2": {"kind": "two_layer", "ds": [50],
                 "base": {"activation": "relu", "target": "norm", "steps": 8000, "seeds": SEEDS}},
        "fig3_fc": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "fc", "width": 256, "steps": 8000}},
        "fig3_cnn": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "cnn", "width": 32, "steps": 3000}},
        "fig3_fc_sphere": {"kind": "cifar", "cifar": {"arch": "fc", "width": 256, "steps": 8000, "ntk_model": True}},
        "fig3_fc_fitted": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "fc", "width": 256, "steps": 8000,
                                                      "linear": "fitted"}},
        "cifar_width": {"kind": "cifar_widths", "cifar": {**RELU_COORD, "steps": 2000},
                        "widths": {"fc": [256, 512, 1024, 2048], "cnn": [8, 16, 32]}},
        **_fig2_targets({"steps": 2000}),
        "fig3_grid": _fig3_grid({"fc": [256, 512], "cnn": [16]}, 1200),
        "fig3_fc_erf_coordinate": {"kind": "cifar", "cifar": {"activation": "erf", "cifar_norm": "coordinate",
                                                               "arch": "fc", "width": 256, "steps": 4000,
                                                               "ntk_model": True}},
        "fig3_fc_relu_sphere": {"kind": "cifar", "cifar": {"activation": "relu", "cifar_norm": "sphere", "arch": "fc",
                                                            "width": 256, "steps": 4000, "ntk_model": True}},
        "fig3_grid_wide": _fig3_grid({"fc": [1024], "cnn": [32, 64]}, 1200),
        "fig3_grid_widest": _fig3_grid({"fc": [2048], "cnn": [128]}, 1200),
        "fig3_cnn_cpu": {"kind": "cifar_settings", "settings": FIG3_CNN_SETTINGS,
                         "cifar": {"arch": "cnn", "width": 32, "n": 1000, "n_test": 1000, "steps": 2000,
                                   "ntk_model": True}},
        "fig3_cnn_erf_sphere": {"kind": "cifar", "cifar": {"activation": "erf", "cifar_norm": "sphere", "arch": "cnn",
                                                            "width": 32, "steps": 3000}},
        "training": {"kind": "cifar_settings", "settings": TRAINING_SETTINGS, "cifar": {**TRAINING_NET, "steps": 4000}},
        "training_cpu": {"kind": "cifar_settings", "settings": TRAINING_SETTINGS,
                         "cifar": {**TRAINING_NET, "n": 2000, "n_test": 1000, "steps": 1000}},
        "alpha": {"kind": "alpha", "alphas": [1, 2, 4, 8, 16], "d": 10, "width": 256, "n": 1000, "n_test": 500,
                  "lr": 0.1, "steps": 800, "n_fit": 128, "at_lr_t": 20.0, "threshold": 1e-3},
        "kernel": {"kind": "kernel_bound", "kernel": {"ds": [25, 50, 100, 200], "seeds": [0, 1]}},
        "width": {"kind": "two_layer_widths", "ds": [50], "widths": [256, 1024, 4096],
                  "base": {"steps": 1000, "seeds": SEEDS}},
        "escape": {"kind": "two_layer", "ds": [25, 50, 100], "base": {"steps": 16000, "seeds": SEEDS}},
        "first_layer": {"kind": "two_layer", "ds": [25, 50, 100], "scale_alpha": 0.5,
                        "base": {"layers": "first", "n": 7071, "width": 90, "steps": 2400, "seeds": SEEDS}},
        "phase": {"kind": "phase", "family": "two_layer", "grid": {"d": [16, 32, 64, 128], "m_over_d": [1, 2, 4, 8]},
                  "fixed": {"layers": "both", "activation": "erf", "n_exponent": 1.5, "n_scale": 20_000 / 50**1.5,
                            "n_test": 2000, "steps_per_window": 5}, "seeds": [0, 1]},
    },
    "quick": {
        "fig1": {"kind": "two_layer", "ds": [50], "base": {"n": 2000, "n_test": 500, "steps": 2000, "seeds": SEEDS}},
        "fig1c_fixed": {"kind": "two_layer", "ds": [10, 20, 40],
                        "base": {"n": 2000, "n_test": 500, "steps": 800, "seeds": SEEDS}},
        "fig1c_scaled": {"kind": "two_layer", "ds": [10, 20, 40], "scale_alpha": 0.5,
                         "base": {"n": 500, "n_test": 500, "width": 64, "steps": 800, "seeds": SEEDS}},
        "fig2": {"kind": "two_layer", "ds": [50], "base": {"activation": "relu", "target": "norm", "n": 2000,
                                                            "n_test": 500, "steps": 2000, "seeds": SEEDS}},
        "fig3_fc": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "fc", "width": 64, "n": 500, "n_test": 500,
                                               "steps": 300}},
        "fig3_cnn": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "cnn", "width": 16, "n": 500, "n_test": 500,
                                                "steps": 300}},
        "fig3_fc_sphere": {"kind": "cifar", "cifar": {"arch": "fc", "width": 64, "n": 500, "n_test": 500, "steps": 300,
                                                      "ntk_model": True}},
        "fig3_fc_fitted": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "fc", "width": 64, "n": 500, "n_test": 500,
                                                      "steps": 300, "linear": "fitted"}},
        "cifar_width": {"kind": "cifar_widths", "cifar": {**RELU_COORD, "n": 300, "n_test": 300, "steps": 100},
                        "widths": {"fc": [16, 32, 64], "cnn": [4, 8]}},
        **_fig2_targets({"n": 2000, "n_test": 500, "steps": 1200}),
        "fig3_grid": _fig3_grid({"fc": [16, 32], "cnn": [4]}, 100),
        "fig3_fc_erf_coordinate": {"kind": "cifar", "cifar": {"activation": "erf", "cifar_norm": "coordinate",
                                                               "arch": "fc", "width": 64, "n": 500, "n_test": 500,
                                                               "steps": 300, "ntk_model": True}},
        "fig3_fc_relu_sphere": {"kind": "cifar", "cifar": {"activation": "relu", "cifar_norm": "sphere", "arch": "fc",
                                                            "width": 64, "n": 500, "n_test": 500, "steps": 300,
                                                            "ntk_model": True}},
        "fig3_grid_wide": _fig3_grid({"fc": [64], "cnn": [8]}, 100),
        "fig3_grid_widest": _fig3_grid({"fc": [128], "cnn": [16]}, 100),
        "fig3_cnn_cpu": {"kind": "cifar_settings", "settings": FIG3_CNN_SETTINGS,
                         "cifar": {"arch": "cnn", "width": 4, "n": 120, "n_test": 120, "steps": 80,
                                   "ntk_model": True}},
        "fig3_cnn_erf_sphere": {"kind": "cifar", "cifar": {"activation": "erf", "cifar_norm": "sphere", "arch": "cnn",
                                                            "width": 16, "n": 500, "n_test": 500, "steps": 300}},
        "training": {"kind": "cifar_settings", "settings": TRAINING_SETTINGS,
                     "cifar": {**TRAINING_NET, "width": 32, "n": 200, "n_test": 200, "steps": 100}},
        "training_cpu": {"kind": "cifar_settings", "settings": TRAINING_SETTINGS,
                         "cifar": {**TRAINING_NET, "width": 32, "n": 200, "n_test": 200, "steps": 100}},
        "alpha": {"kind": "alpha", "alphas": [1, 4], "d": 6, "width": 32, "n": 200, "n_test": 100, "lr": 0.5,
                  "steps": 60, "n_fit": 64, "at_lr_t": 10.0, "threshold": 1e-3},
        "kernel": {"kind": "kernel_bound", "kernel": {"ds": [16, 32, 64], "seeds": [0, 1], "tol": 1e-5}},
        "width": {"kind": "two_layer_widths", "ds": [20], "widths": [64, 256, 1024],
                  "base": {"n": 2000, "n_test": 500, "steps": 300, "seeds": SEEDS}},
        "escape": {"kind": "two_layer", "ds": [10, 20, 40], "base": {"n": 1000, "n_test": 500, "steps": 5000,
                                                                     "seeds": (0,)}},
        "first_layer": {"kind": "two_layer", "ds": [10, 20, 40], "scale_alpha": 0.5,
                        "base": {"layers": "first", "n": 500, "n_test": 500, "width": 64, "steps": 800,
                                 "seeds": SEEDS}},
        "phase": {"kind": "phase", "family": "two_layer", "grid": {"d": [8, 16, 32], "m_over_d": [1, 4, 16]},
                  "fixed": {"layers": "both", "activation": "erf", "n_exponent": 1.5, "n_scale": 8, "n_test": 200,
                            "steps_per_window": 3, "n_log": 30}, "seeds": [0, 1]},
    },
}
