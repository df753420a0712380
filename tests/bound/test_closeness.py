"""Closeness bounds tighten as d grows (docs/theory.md §4), and the tangent-kernel identity Θ(0) ≈ ΨΨᵀ.

Scaling chosen for these tests, and why. The theorem needs n, m ≳ d^{1+α}. The first-layer and
dimension errors fall like a power of d at n ∝ d^{1.25}, but the second-layer kernel carries a
finite-width error ≈ 2√(d/m) in relative terms, so the MSE it causes falls only like d/m: at
m ∝ d^{1.25} the decrease from d = 8 to 32 would be a factor 4^{0.25} ≈ 1.4, within the seed-to-seed
spread. We take m = 2d² (d/m = 1/(2d)) so that every layer's predicted decrease (a factor ≈ 4 over
d = 8 → 32) clearly exceeds the spread (the measured per-seed slopes lie in about [−1.2, −0.7] for
erf). n = 8·d^{1.25}, 3 seeds, steps up to the early window T = 5·d·log(d)/η, in float32, the
precision users train in: the MSEs whose slope is fitted are ≥ 4e-3 of O(1) outputs, five orders above
float32 rounding, and they equal the float64 run's to about 1e-7 relative (measured at d = 8, 16, 32);
float32 halves the test's time on a CPU. The kernel identity below compares small gaps, in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import earlylin
from earlylin.activations import gaussian_constants, get_activation
from earlylin.config import TwoLayerConfig, early_window
from earlylin.data.synthetic import make_dataset
from earlylin.linear.features import features
from earlylin.nets.two_layer import symmetric_init
from tests.conftest import assert_close
from tests.oracles import empirical_ntk, ntk_blocks

DS = (8, 16, 32)
SEEDS = (0, 1, 2)
SLOPE_MARGIN = -0.3  # every per-seed log-log slope must be below this


def _slopes(values: np.ndarray) -> np.ndarray:
    """Per-seed least-squares slopes of log(value) against log(d); values (len(DS), K)."""
    return np.array([np.polyfit(np.log(DS), np.log(values[:, k]), 1)[0] for k in range(values.shape[1])])


@pytest.mark.parametrize(("layers", "activation"), [("first", "erf"), ("second", "erf"), ("both", "erf"),
                                                    ("both", "relu")])
def test_early_mse_decreases_with_d(layers, activation):
    """max_{t ≤ T} test MSE(net, f^lin) has a negative log-log slope in d, for every seed."""
    rows = []
    for d in DS:
        cfg = TwoLayerConfig(
            d=d, n=round(8 * d**1.25), n_test=400, width=2 * d * d, layers=layers, activation=activation,
            steps=early_window(d, 1.0, 5.0), seeds=SEEDS, dtype="float32", device="cpu",
        )
        rows.append(earlylin.run(cfg).summary["max_test_mse_early_per_seed"])
    values = np.array(rows)
    slopes = _slopes(values)
    assert np.all(values.mean(axis=1)[1:] < values.mean(axis=1)[:-1]), values
    assert np.all(slopes < SLOPE_MARGIN), slopes


@pytest.mark.parametrize("name", ["erf", "relu"])
def test_torch_func_ntk_equals_formula(name):
    """The empirical NTK blocks from torch.func Jacobians equal the written-out Θ₁, Θ₂ (float64)."""
    act = get_activation(name)
    W, v = (torch.tensor(a) for a in symmetric_init(0, 64, 6))
    W = W + 0.2 * torch.randn(W.shape, generator=torch.Generator().manual_seed(1), dtype=W.dtype)
    X = torch.randn(9, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    Xp = torch.randn(5, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for auto, formula in zip(empirical_ntk(act, W, v, X, Xp), ntk_blocks(act, W, v, X, Xp), strict=True):
        assert_close(auto, formula)


@pytest.mark.parametrize("name", ["erf", "relu"])
def test_kernel_error_shrinks_with_d(name):
    """‖Θ(0) − ΨΨᵀ‖_op / ‖ΨΨᵀ‖_op falls with d at n = d^{1.5}, m = 16d² for Θ₁, Θ₂ and their sum
    (the proof's key step, docs/theory.md §4). Θ from the closed form, itself checked against torch.func above."""
    act = get_activation(name)
    c = gaussian_constants(act)
    ds = (12, 24, 48)
    ratios = np.zeros((len(ds), 3, 2))
    for i, d in enumerate(ds):
        for k, seed in enumerate((0, 1)):
            X = torch.tensor(make_dataset(seed, d, math.ceil(d**1.5), 2).x_train)
            W, v = (torch.tensor(a) for a in symmetric_init(seed, 16 * d * d, d))
            t1, t2 = ntk_blocks(act, W, v, X)
            for j, (layers, theta) in enumerate((("first", t1), ("second", t2), ("both", t1 + t2))):
                psi = features(X, c, c.nu(), layers)
                lin = psi @ psi.T
                ratios[i, j, k] = float(torch.linalg.matrix_norm(theta - lin, 2) / torch.linalg.matrix_norm(lin, 2))
    mean = ratios.mean(axis=2)
    slopes = [np.polyfit(np.log(ds), np.log(mean[:, j]), 1)[0] for j in range(3)]
    assert np.all(np.array(slopes) < -0.15), (slopes, mean)
    assert np.all(mean[-1] < 0.25), mean
