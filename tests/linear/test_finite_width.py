"""The finite-width linear model (earlylin.linear.finite_width): its kernel, its m → ∞ limit, its fit to Θ₂."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from earlylin.activations import gaussian_constants, get_activation
from earlylin.experiments.width_split import width_split
from earlylin.linear.features import LAYERS, features
from earlylin.linear.finite_width import (
    finite_width_features,
    svd_trajectory,
)
from earlylin.linear.trajectory import LinearTrajectory
from earlylin.nets.two_layer import symmetric_init
from tests.conftest import TOL, assert_close
from tests.oracles import feature_kernel, finite_width_kernel, ntk_blocks


def _problem(seeds: list[int], m: int, d: int, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gaussian inputs X (K, n, d) and the symmetric init W (K, m, d), v (K, m), float64."""
    X = torch.stack([torch.from_numpy(np.random.default_rng([s, 99]).standard_normal((n, d))) for s in seeds])
    inits = [symmetric_init(s, m, d) for s in seeds]
    W = torch.from_numpy(np.stack([w for w, _ in inits]))
    v = torch.from_numpy(np.stack([b for _, b in inits]))
    return X, W, v


def _spec(A: torch.Tensor) -> torch.Tensor:
    return torch.linalg.matrix_norm(A, ord=2)


@pytest.mark.parametrize("act_name", ["erf", "relu", "gelu"])
@pytest.mark.parametrize("layers", LAYERS)
def test_gram_equals_term_by_term_formula(act_name: str, layers: str) -> None:
    consts = gaussian_constants(get_activation(act_name))
    nu = consts.nu()
    X, W, v = _problem([0, 1], m=32, d=6, n=15)
    v = v * torch.linspace(0.5, 1.5, 32)  # |v_r| ≠ 1 exercises the mean(v²) scale of ψ₁
    psi = finite_width_features(X, W, v, consts, nu, layers)
    assert psi.shape[-1] == {"first": 7, "second": 8, "both": 15}[layers]
    assert_close(psi @ psi.transpose(-1, -2), finite_width_kernel(X, X, W, v, consts, nu, layers), "cancellation",
                 atol=TOL["exact"])


def test_second_layer_kernel_is_the_neuron_average() -> None:
    """Θ₂^fw = (1/m) Σ_r h_r h_rᵀ + ν²/(2d) with h_r(x) = q(x) + ζ w_rᵀx/√d, by a loop over neurons."""
    consts = gaussian_constants(get_activation("relu"))
    nu = consts.nu()
    X, W, v = _problem([3], m=10, d=5, n=7)
    x, w = X[0], W[0]
    d = x.shape[-1]
    q = consts.theta0 + consts.theta1 * (x.norm(dim=-1) / math.sqrt(d) - 1) + consts.theta2 * (
        x.norm(dim=-1) / math.sqrt(d) - 1
    ) ** 2
    K = torch.zeros(7, 7, dtype=torch.float64)
    for r in range(10):
        h = q + consts.zeta * x @ w[r] / math.sqrt(d)
        K += torch.outer(h, h) / 10
    K += nu**2 / (2 * d)
    psi = finite_width_features(X, W, v, consts, nu, "second")[0]
    assert_close(psi @ psi.T, K, "cancellation", atol=TOL["exact"])


@pytest.mark.parametrize("act_name", ["erf", "relu"])
def test_infinite_width_limit(act_name: str) -> None:
    """‖Θ^fw − ψψᵀ‖/‖ψψᵀ‖ falls like m^{−1/2}: ×16 in m gives ≈ ÷4 in error."""
    consts = gaussian_constants(get_activation(act_name))
    nu = consts.nu()
    errs = []
    for m in (256, 4096, 65536):
        X, W, v = _problem([0, 1, 2], m=m, d=20, n=60)
        psi = finite_width_features(X, W, v, consts, nu, "both")
        ref = feature_kernel(X, X, consts, nu, "both")
        errs.append(float((_spec(psi @ psi.transpose(-1, -2) - ref) / _spec(ref)).mean()))
    assert errs[0] > errs[1] > errs[2]
    for a, b in itertools.pairwise(errs):
        assert 2.0 < a / b < 8.0, errs  # ideal 4 = √16
    assert errs[2] < 0.02


@pytest.mark.parametrize(("act_name", "bound"), [("erf", 0.5), ("relu", 0.7)])
def test_closer_to_empirical_theta2_than_infinite_width(act_name: str, bound: float) -> None:
    """At m = 256, d = 50, n = 400 the finite-width kernel removes most of the gap to the network's Θ₂
    (erf: ratio ≈ 0.3; ReLU ≈ 0.52, its larger Hermite tail Var φ − ϑ₀² − ζ² ≈ 0.09 is left over)."""
    consts = gaussian_constants(get_activation(act_name))
    nu = consts.nu()
    X, W, v = _problem([0, 1], m=256, d=50, n=400)
    _, theta2 = ntk_blocks(get_activation(act_name), W, v, X)
    psi_fw = finite_width_features(X, W, v, consts, nu, "second")
    err_fw = _spec(theta2 - psi_fw @ psi_fw.transpose(-1, -2))
    err_inf = _spec(theta2 - feature_kernel(X, X, consts, nu, "second"))
    ratio = err_fw / err_inf
    assert bool((ratio < bound).all()), ratio


def test_first_layer_is_width_free() -> None:
    """Θ₁'s model does not depend on W: with v_r = ±1 it is exactly ψ₁ of docs/theory.md §3."""
    consts = gaussian_constants(get_activation("relu"))
    X, W, v = _problem([0], m=16, d=4, n=9)
    nu = consts.nu()
    assert_close(finite_width_features(X, W, v, consts, nu, "first"), features(X, consts, nu, "first"))


def test_svd_trajectory_matches_eigh_trajectory() -> None:
    torch.manual_seed(0)
    psi = torch.randn(2, 30, 12, dtype=torch.float64)
    psi_t = torch.randn(2, 9, 12, dtype=torch.float64)
    y = torch.randn(2, 30, dtype=torch.float64)
    steps = torch.tensor([0, 1, 7, 50])
    a = LinearTrajectory.fit(psi, y, 0.3).outputs(psi_t, steps)
    b = svd_trajectory(psi, y, 0.3).outputs(psi_t, steps)
    assert_close(a, b, "iterated", atol=TOL["cancellation"])


def test_width_split_smoke() -> None:
    """Small run: all MSEs finite and non-negative; the width part shrinks with m."""
    rows = width_split(widths=(64, 1024), d=10, n=200, n_test=100, seeds=(0,), n_steps=8)
    assert [r["m"] for r in rows] == [64, 1024]
    for r in rows:
        assert all(math.isfinite(r[k]) and r[k] >= 0 for k in ("mse_lin", "mse_fw", "mse_lin_fw"))
    assert rows[1]["mse_lin_fw"] < rows[0]["mse_lin_fw"]
