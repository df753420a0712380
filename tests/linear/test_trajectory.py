"""Predicted linear models (docs/theory.md §3): features, their kernel, the closed-form GD trajectory."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from earlylin.activations import gaussian_constants, get_activation
from earlylin.linear.features import LAYERS, features
from earlylin.linear.trajectory import LinearTrajectory, stability_bound
from tests.conftest import ALL_ACTIVATIONS, TOL, assert_close
from tests.oracles import feature_kernel


def _iterate(psi: torch.Tensor, y: torch.Tensor, lr: float, steps: list[int]) -> torch.Tensor:
    """Explicit GD β ← β − η Ψᵀ(Ψβ − y)/n from β = 0, recording β at ``steps``; shape (K, R, p)."""
    n = psi.shape[-2]
    beta = torch.zeros(psi.shape[0], psi.shape[-1], dtype=torch.float64)
    out = []
    for t in range(max(steps) + 1):
        if t in steps:
            out.append(beta.clone())
        r = (psi @ beta.unsqueeze(-1)).squeeze(-1) - y
        beta = beta - lr * (psi.transpose(-1, -2) @ r.unsqueeze(-1)).squeeze(-1) / n
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("layers", LAYERS)
@pytest.mark.parametrize("name", ["erf", "relu", "softplus"])
def test_closed_form_equals_iteration(small_problem, layers, name):
    """β_t = U(I − (I − ηΛ)^t)Λ⁻¹Uᵀb equals 400 explicit GD steps to 1e-10 (float64), incl. a
    learning rate close to the stability bound where (1 − ηλ) is negative."""
    data, _, _ = small_problem
    c = gaussian_constants(get_activation(name))
    X = torch.tensor(data.x_train).unsqueeze(0)
    y = torch.tensor(data.y_train).unsqueeze(0)
    psi = features(X, c, c.nu(), layers)
    bound = float(stability_bound(psi)[0])
    steps = [0, 1, 2, 7, 50, 399]
    for lr in (0.37, 0.95 * bound):
        traj = LinearTrajectory.fit(psi, y, lr)
        assert_close(traj.coef(torch.tensor(steps)), _iterate(psi, y, lr, steps), "iterated")


def test_closed_form_many_steps_and_zero_directions():
    """Cost independent of the step count: t = 10⁶ in one call equals the least-squares limit, and
    directions with λ = 0 (a zero feature column, as ν = 0 gives for erf) stay at zero."""
    g = torch.Generator().manual_seed(0)
    psi = torch.randn(1, 30, 4, generator=g, dtype=torch.float64)
    psi[..., 2] = 0.0
    y = torch.randn(1, 30, generator=g, dtype=torch.float64)
    traj = LinearTrajectory.fit(psi, y, 0.5)
    beta = traj.coef(torch.tensor([10**6]))[0, 0]
    assert_close(beta, torch.linalg.pinv(psi[0]) @ y[0], "conditioned")  # min-norm least squares
    assert float(beta[2].abs()) < TOL["arith"]


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(2, 20),
    n=st.integers(1, 12),
    name=st.sampled_from(ALL_ACTIVATIONS),
    layers=st.sampled_from(LAYERS),
    tr=st.floats(0.5, 3.0),
    seed=st.integers(0, 1000),
)
def test_feature_kernel_formula(d, n, name, layers, tr, seed):
    """ΨΨᵀ equals docs/theory.md §3's written-out kernel (ζ²XXᵀ/d + ν²/d …) for random inputs."""
    c = gaussian_constants(get_activation(name))
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64) * 1.3
    Xp = torch.randn(n + 1, d, generator=g, dtype=torch.float64)
    nu = c.nu(tr)
    kernel = features(X, c, nu, layers) @ features(Xp, c, nu, layers).T
    assert_close(kernel, feature_kernel(X, Xp, c, nu, layers))


def test_both_layer_kernel_is_sum_and_stripped_is_x_only():
    """ψ for both layers gives 2ζ²XXᵀ/d + (3ν²/2d) + qqᵀ; the stripped model keeps only ζx/√d columns."""
    c = gaussian_constants(get_activation("relu"))
    X = torch.randn(9, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    d, nu = 6, c.nu()
    eps = X.norm(dim=-1) / math.sqrt(d) - 1
    q = c.theta0 + c.theta1 * eps + c.theta2 * eps**2
    expected = 2 * c.zeta**2 * X @ X.T / d + 1.5 * nu**2 / d + q[:, None] * q[None, :]
    psi = features(X, c, nu, "both")
    assert_close(psi @ psi.T, expected)
    stripped = features(X, c, nu, "both", stripped=True)
    assert_close(stripped @ stripped.T, 2 * c.zeta**2 * X @ X.T / d)


def test_stability_bound_is_sharp():
    """GD on the linear model converges just below 2n/λ_max(ΨᵀΨ) and blows up just above it."""
    g = torch.Generator().manual_seed(4)
    psi = torch.randn(1, 50, 5, generator=g, dtype=torch.float64)
    y = torch.randn(1, 50, generator=g, dtype=torch.float64)
    bound = float(stability_bound(psi)[0])
    below = _iterate(psi, y, 0.99 * bound, [3000])
    above = _iterate(psi, y, 1.01 * bound, [3000])
    assert torch.isfinite(below).all() and float(below.norm()) < 10 * float((torch.linalg.pinv(psi[0]) @ y[0]).norm())
    assert float(above.norm()) > 1e6


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 25),
    p=st.integers(1, 6),
    seed=st.integers(0, 10**6),
    frac=st.floats(0.05, 0.98),
    steps=st.lists(st.integers(0, 60), min_size=1, max_size=4, unique=True),
)
def test_closed_form_equals_iteration_random_problems(n, p, seed, frac, steps):
    """Random small problems (any n, p, incl. rank-deficient p > n) and η up to 0.98 × the bound."""
    g = torch.Generator().manual_seed(seed)
    psi = torch.randn(1, n, p, generator=g, dtype=torch.float64)
    y = torch.randn(1, n, generator=g, dtype=torch.float64)
    lr = frac * float(stability_bound(psi)[0])
    traj = LinearTrajectory.fit(psi, y, lr)
    assert_close(traj.coef(torch.tensor(sorted(steps))), _iterate(psi, y, lr, sorted(steps)), "conditioned")


def test_kernel_features_of_a_linear_kernel_give_the_linear_model():
    """k = XXᵀ/d: the kernel model equals f^lin with ψ = x/√d (a different closed form, p = d)."""
    from earlylin.linear.trajectory import kernel_features

    g = torch.Generator().manual_seed(0)
    n, nt, d, lr = 30, 12, 6, 0.7
    X, Xt = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(nt, d, generator=g, dtype=torch.float64)
    y = torch.sign(torch.randn(n, generator=g, dtype=torch.float64))
    psi, psi_t = kernel_features(X @ X.T / d, Xt @ X.T / d)
    steps = torch.tensor([0, 1, 7, 50, 400])
    kern = LinearTrajectory.fit(psi[None], y[None], lr)
    lin = LinearTrajectory.fit((X / math.sqrt(d))[None], y[None], lr)
    assert_close(kern.outputs(psi[None], steps), lin.outputs((X / math.sqrt(d))[None], steps), "conditioned",
                 atol=TOL["iterated"])
    assert_close(kern.outputs(psi_t[None], steps), lin.outputs((Xt / math.sqrt(d))[None], steps), "conditioned",
                 atol=TOL["iterated"])


def test_kernel_features_equal_explicit_kernel_gd():
    """For a full-rank kernel, the closed form equals iterating f ← f − (η/n) K(f − y), f* ← f* − (η/n) K*(f − y)."""
    from earlylin.linear.trajectory import kernel_features

    g = torch.Generator().manual_seed(1)
    n, nt, d, lr = 25, 10, 4, 0.9
    X, Xt = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(nt, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)

    def rbf(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / d) + 0.5 * (a @ b.T) / d

    K, Ks = rbf(X, X), rbf(Xt, X)
    psi, psi_t = kernel_features(K, Ks)
    traj = LinearTrajectory.fit(psi[None], y[None], lr)
    f, fs = torch.zeros(n, dtype=torch.float64), torch.zeros(nt, dtype=torch.float64)
    for t in range(1, 61):
        r = f - y
        f, fs = f - lr / n * K @ r, fs - lr / n * Ks @ r
        if t in (1, 13, 60):
            assert_close(traj.outputs(psi[None], torch.tensor([t]))[0, 0], f, "conditioned",
                         atol=TOL["cancellation"])
            assert_close(traj.outputs(psi_t[None], torch.tensor([t]))[0, 0], fs, "conditioned",
                         atol=TOL["cancellation"])
