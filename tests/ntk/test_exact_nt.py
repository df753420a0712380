"""earlylin.ntk against neural-tangents' analytic ``kernel_fn`` (docs/theory.md §5: NT is the oracle for A, B).

Skipped where neural-tangents cannot be imported (it needs jax ≤ 0.5.3 and TensorFlow, docs/theory.md §6;
install with the ``nt`` extra). float64 throughout (``jax_enable_x64``).

Same architectures on both sides: NTK parameterisation, W_std = 1, no biases (b_std=None):
FC = [Dense, φ] × L + Dense(1); CNN = [Conv(3×3, 'SAME'), φ] × L + Flatten + Dense(1), NHWC for NT.

Linear coefficients from NT: its kernel evaluated on constructed inputs with prescribed
q = ‖x‖²/d, q′, ρ (FC: d = 2, x = √(2q)·e₁, x′ = √(2q′)(ρ̂ e₁ + √(1−ρ̂²) e₂), ρ̂ = ρ/√(qq′)), or
prescribed per-pixel products and norms (CNN: x_p = √C e₁, x′_p = √C e₂, then one pixel changed), and
least-squares polynomial fits in the varied quantity t on Chebyshev points:
- FC: degree 12 on 25 points of [−0.2, 0.2]. The kernels are analytic for |ρ̂| < 1, so the truncation
  error of the k-th coefficient is ≈ 0.2^{13−k}·|c₁₃| ≲ 1e-11, and NT's float64 round-off
  (≈ 1e-10 relative, measured against earlylin's exact kernel) enters the k-th coefficient as
  ≈ 1e-10/0.2^k ≤ 3e-9: far below the 1e-6 tolerance.
- CNN: degree 6 on 9 points of [−0.25, 0.25]. One pixel moves its neighbours' first-layer covariances
  by t/9, so the coefficients decay like 9^{−k}: truncation ≈ (0.25/9)^7 ≈ 1e-11.
Tolerances: 1e-6 relative to the size of the coefficients being compared (the required agreement
with the analytic oracle); the measured errors are ~1e-9.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter (imported by NT)
nt = pytest.importorskip("neural_tangents", exc_type=ImportError)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from neural_tangents import stax  # noqa: E402

from earlylin.ntk.exact import cnn_kernel, fc_kernel  # noqa: E402
from earlylin.ntk.linearise import cnn_linear_coeffs, fc_linear_coeffs  # noqa: E402
from tests.conftest import TOL  # noqa: E402

RTOL = TOL["neural_tangents"]
ACTIVATIONS = {
    "erf": stax.Erf,  # a·erf(b·x) + c with a = b = 1, c = 0
    "relu": stax.Relu,
    "gelu": lambda: stax.Gelu(approximate=False),  # x·Φ(x), earlylin's "gelu"
    "leaky_relu:0.2": lambda: stax.LeakyRelu(0.2),
}


def _fc(name: str, depth: int):
    layers = []
    for _ in range(depth):
        layers += [stax.Dense(512, W_std=1.0, b_std=None, parameterization="ntk"), ACTIVATIONS[name]()]
    layers.append(stax.Dense(1, W_std=1.0, b_std=None, parameterization="ntk"))
    return stax.serial(*layers)[2]


def _cnn(name: str, depth: int):
    layers = []
    for _ in range(depth):
        conv = stax.Conv(64, (3, 3), padding="SAME", W_std=1.0, b_std=None, parameterization="ntk")
        layers += [conv, ACTIVATIONS[name]()]
    layers += [stax.Flatten(), stax.Dense(1, W_std=1.0, b_std=None, parameterization="ntk")]
    return stax.serial(*layers)[2]


def _nt(kernel_fn, X1: np.ndarray, X2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = kernel_fn(jnp.asarray(X1), jnp.asarray(X2), ("nngp", "ntk"))
    return np.asarray(k.nngp, dtype=np.float64), np.asarray(k.ntk, dtype=np.float64)


def _cheb(h: float, n: int) -> np.ndarray:
    return h * np.cos(np.pi * (np.arange(n) + 0.5) / n)


def _rel(a, b, scale: float | None = None) -> float:
    """max|a − b| relative to ``scale`` (default max|b|): coefficients that vanish (erf's norm terms and
    A₀) are compared on the scale of the nonzero ones."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / (scale if scale is not None else np.abs(b).max()))


# ---------------------------------------------------------------------------------------------
# FC
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_fc_exact_kernel_matches_nt(name, depth):
    rng = np.random.default_rng(depth)
    X = rng.standard_normal((6, 5)) * rng.uniform(0.6, 1.4, (6, 1))
    X[5] = 0.9 * X[4] + 0.1 * X[5]  # a nearly parallel pair
    nngp, ntk = fc_kernel(X, activation=name, depth=depth)
    nt_nngp, nt_ntk = _nt(_fc(name, depth), X, X)
    assert _rel(nngp, nt_nngp) < RTOL
    assert _rel(ntk, nt_ntk) < RTOL


def _fc_inputs(q: np.ndarray, qp: np.ndarray, rho: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows x, x′ ∈ ℝ² with ‖x‖²/2 = q, ‖x′‖²/2 = q′, xᵀx′/2 = ρ."""
    cos = rho / np.sqrt(q * qp)
    x = np.stack([np.sqrt(2 * q), np.zeros_like(q)], axis=1)
    xp = np.sqrt(2 * qp)[:, None] * np.stack([cos, np.sqrt(1 - cos * cos)], axis=1)
    return x, xp


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_fc_linear_coeffs_match_nt(name, depth):
    """A₀, B, Θ″(0), C, D, E (L1) of NTK and NNGP from NT's kernel on constructed pairs (one NT call:
    the three fits are the first row, the first column and the diagonal of one kernel matrix)."""
    t = _cheb(0.2, 25)
    one, zero = np.ones_like(t), np.zeros_like(t)
    x_rho, xp_rho = _fc_inputs(one, one, t)  # ρ = t at q = q′ = 1
    x_q, xp_q = _fc_inputs(1 + t, one, zero)  # q = 1 + t, ρ = 0
    x_qq, xp_qq = _fc_inputs(1 + t, 1 + t, zero)  # q = q′ = 1 + t, ρ = 0
    X1 = np.concatenate([x_rho[:1], x_q, x_qq])
    X2 = np.concatenate([xp_q[:1], xp_rho, xp_qq])
    n = t.size
    nngp, ntk = _nt(_fc(name, depth), X1, X2)
    for kernel, mat in (("nngp", nngp), ("ntk", ntk)):
        in_rho = np.polynomial.polynomial.polyfit(t, mat[0, 1 : n + 1], 12)
        in_q = np.polynomial.polynomial.polyfit(t, mat[1 : n + 1, 0], 12)
        in_qq = np.polynomial.polynomial.polyfit(t, np.diag(mat[n + 1 :, n + 1 :]), 12)
        co = fc_linear_coeffs(name, depth, d=50, kernel=kernel)
        scale = abs(in_rho[0]) + abs(in_rho[1])
        nt_vals = {
            "A0": in_rho[0],
            "B": in_rho[1],
            "curvature": 2 * in_rho[2],
            "C": in_q[1],
            "D": 2 * in_q[2],
            "E": in_qq[2] - 2 * in_q[2],
        }
        for key, want in nt_vals.items():
            got = getattr(co, key)
            assert abs(got - want) <= RTOL * scale, (kernel, key, got, want)
        # A = A₀ + ½Θ″(0)·Tr(Σ²)/d² with NT's A₀ and Θ″(0)
        assert co.A == pytest.approx(nt_vals["A0"] + 0.5 * nt_vals["curvature"] / 50, abs=RTOL * scale)


# ---------------------------------------------------------------------------------------------
# CNN
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "depth"), [(a, L) for a in ("erf", "relu") for L in (1, 2, 4)] + [("gelu", 2)])
def test_cnn_exact_kernel_matches_nt(name, depth):
    """GELU (no closed form in earlylin: a 2-D quadrature per pair and pixel) on one depth and a 6×6
    image only, for time."""
    rng = np.random.default_rng(10 + depth)
    X = rng.standard_normal((3, 3, 6, 6) if name == "gelu" else (4, 3, 8, 8))  # (n, C, H, W)
    X[-1] = 0.8 * X[-2] + 0.6 * X[-1]
    nngp, ntk = cnn_kernel(X, activation=name, depth=depth)
    nt_nngp, nt_ntk = _nt(_cnn(name, depth), X.transpose(0, 2, 3, 1), X.transpose(0, 2, 3, 1))
    assert _rel(nngp, nt_nngp) < RTOL
    assert _rel(ntk, nt_ntk) < RTOL


def _base(C: int, H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """NHWC x with x_p = √C e₁ and x′ with x′_p = √C e₂ at every pixel: a⁰ = 0, unit per-pixel norms."""
    x = np.zeros((H, W, C))
    xp = np.zeros((H, W, C))
    x[..., 0] = np.sqrt(C)
    xp[..., 1] = np.sqrt(C)
    return x, xp


@pytest.mark.parametrize("name", ["erf", "relu", "gelu"])
def test_cnn_linear_coeffs_match_nt(name):
    """m (all 64 pixels), diag H and A, c, diag D of the default 4-layer 3×8×8 CNN from one NT call each;
    E and off-diagonal H, D on corner, edge and interior pixels (and neighbours) by two-variable fits."""
    C, H, W, depth = 3, 8, 8, 4
    P = H * W
    co = cnn_linear_coeffs(name, depth, (C, H, W))
    kfn = _cnn(name, depth)
    big = max(np.abs(co.m).max() / P, np.abs(co.H).max(), np.abs(co.c).max())
    x, xp = _base(C, H, W)
    t = _cheb(0.25, 9)
    fit = lambda v: np.polynomial.polynomial.polyfit(t, v, 6)  # noqa: E731

    # a⁰_p = t: x′_p = √C (t e₁ + √(1−t²) e₂)
    var = np.repeat(xp[None], P * t.size, axis=0).reshape(P, t.size, H, W, C)
    for p in range(P):
        var[p, :, p // W, p % W, :2] = np.sqrt(C) * np.stack([t, np.sqrt(1 - t * t)], axis=1)
    ntk = _nt(kfn, x[None], var.reshape(-1, H, W, C))[1].reshape(P, t.size)
    coef = np.stack([fit(row) for row in ntk])
    assert _rel(coef[:, 0], np.full(P, co.A0), max(abs(co.A0), big)) < RTOL
    assert _rel(co.m, P * coef[:, 1]) < RTOL
    assert _rel(np.diag(co.H), 2 * coef[:, 2], max(np.abs(coef[:, 2]).max(), big)) < RTOL
    assert co.A == pytest.approx(
        coef[0, 0] + coef[:, 2].sum() / C, abs=RTOL * max(abs(co.A), big)
    )  # ½ΣH_pp τ_pp, τ = I/C

    # ε_p = t: x_p = √(C(1+t)) e₁
    var = np.repeat(x[None], P * t.size, axis=0).reshape(P, t.size, H, W, C)
    for p in range(P):
        var[p, :, p // W, p % W, 0] = np.sqrt(C * (1 + t))
    ntk = _nt(kfn, var.reshape(-1, H, W, C), xp[None])[1].reshape(P, t.size)
    coef = np.stack([fit(row) for row in ntk])
    assert _rel(co.c, coef[:, 1], max(np.abs(coef[:, 1]).max(), big)) < RTOL
    assert _rel(np.diag(co.D), 2 * coef[:, 2], max(np.abs(coef[:, 2]).max(), big)) < RTOL

    # two-variable fits: coefficient of t·u in K(…t…, …u…) on a 7×7 Chebyshev grid, degree 4 in each
    u = _cheb(0.25, 7)
    T, U = np.meshgrid(u, u, indexing="ij")
    basis = np.stack([T.ravel() ** i * U.ravel() ** j for i in range(5) for j in range(5)], axis=1)
    tu = 1 * 5 + 1  # index of t¹u¹

    def cross_coef(values: np.ndarray) -> float:
        return float(np.linalg.lstsq(basis, values.ravel(), rcond=None)[0][tu])

    for p, q in ((0, 0), (0, 1), (27, 27), (27, 36), (3, 12)):
        # E_pq: x with ε_p = t (rows), x′ with ε′_q = u (columns)
        xs = np.repeat(x[None], u.size, axis=0)
        xs[:, p // W, p % W, 0] = np.sqrt(C * (1 + u))
        xps = np.repeat(xp[None], u.size, axis=0)
        xps[:, q // W, q % W, 1] = np.sqrt(C * (1 + u))
        assert cross_coef(_nt(kfn, xs, xps)[1]) == pytest.approx(co.E[p, q], abs=RTOL * big)
        if p == q:
            continue
        # H_pq: x′ with a⁰_p = t and a⁰_q = u;  D_pq: x with ε_p = t and ε_q = u
        grid = np.repeat(xp[None], T.size, axis=0)
        grid[:, p // W, p % W, :2] = np.sqrt(C) * np.stack([T.ravel(), np.sqrt(1 - T.ravel() ** 2)], axis=1)
        grid[:, q // W, q % W, :2] = np.sqrt(C) * np.stack([U.ravel(), np.sqrt(1 - U.ravel() ** 2)], axis=1)
        assert cross_coef(_nt(kfn, x[None], grid)[1]) == pytest.approx(co.H[p, q], abs=RTOL * big)
        grid = np.repeat(x[None], T.size, axis=0)
        grid[:, p // W, p % W, 0] = np.sqrt(C * (1 + T.ravel()))
        grid[:, q // W, q % W, 0] = np.sqrt(C * (1 + U.ravel()))
        assert cross_coef(_nt(kfn, grid, xp[None])[1]) == pytest.approx(co.D[p, q], abs=RTOL * big)
