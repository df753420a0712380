"""Deep-net kernels, their quadrature and linearisation (docs/theory.md §5 "Deep nets"), without JAX/NT.

Independent checks, each against something those modules do not use:
- closed forms (erf: arcsin kernels; ReLU/leaky ReLU: arc-cosine) for the quadrature, including the
  kink-aware rule with the closed forms switched off, and Price's theorem for the Hermite weights;
- Monte Carlo of wide float64 torch networks (FC and CNN, empirical NNGP and NTK by autograd);
- finite differences of the exact recursion for every linear coefficient: degree-12 least-squares
  fits on 25 Chebyshev points of [−0.2, 0.2] (the kernels are analytic there, so the truncation error
  of the low coefficients is ≈ 0.2¹²·|K^{(13)}|/13! ≲ 1e-12; round-off ≈ 1e-16/0.2^k for the k-th);
- docs/theory.md §3's two-layer constants and earlylin.linear's feature kernels for L = 1;
- for the CNN, a brute-force recursion over *all* pairs of positions (p, p′), written with torch
  convolutions and closed-form erf/ReLU kernels, differentiated by autograd: M, H, c, D, E.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from earlylin.activations import gaussian_constants, get_activation
from earlylin.ntk.exact import cnn_kernel, fc_kernel, fc_kernel_qr, same_patch_operator
from earlylin.ntk.jets import propagate
from earlylin.ntk.linearise import (
    cnn_features,
    cnn_linear_coeffs,
    deep_features,
    fc_linear_coeffs,
    fit_linear_coeffs,
)
from earlylin.quadrature import diag_expectations, gaussian_pair_expectations
from tests.conftest import TOL, assert_close
from tests.oracles import feature_kernel

# ---------------------------------------------------------------------------------------------
# quadrature
# ---------------------------------------------------------------------------------------------


def _random_points(n: int = 16):
    rng = np.random.default_rng(n)
    s = rng.uniform(0.3, 2.0, n)
    sp = rng.uniform(0.3, 2.0, n)
    r = rng.uniform(-0.95, 0.95, n)
    return s, sp, r * np.sqrt(s * sp)


def test_erf_quadrature_matches_arcsin_closed_forms():
    """The generic rule (closed forms off) vs the arcsin kernels, including nearly parallel pairs with
    large variances, where a tensor Gauss–Hermite rule would lose six digits."""
    s, sp, c = _random_points()
    s = np.concatenate([s, [2.3, 5.0, 0.4]])
    sp = np.concatenate([sp, [2.1, 5.0, 0.4]])
    c = np.concatenate([c, 0.9995 * np.sqrt(s[-3:] * sp[-3:])])
    E = gaussian_pair_expectations(get_activation("erf"), s, sp, c, closed_form=False)
    closed = gaussian_pair_expectations(get_activation("erf"), s, sp, c)
    root = np.sqrt((1 + 2 * s) * (1 + 2 * sp))
    F, G = 2 / np.pi * np.arcsin(2 * c / root), 4 / np.pi / np.sqrt(root**2 - 4 * c * c)
    for got in (E, closed):
        assert_close(got["F"], F, "quadrature_pair", rtol=0)
        assert_close(got["G"], G, "quadrature_pair", atol=0)


@pytest.mark.parametrize("name", ["relu", "leaky_relu:0.2"])
def test_kink_aware_rule_matches_arccos_closed_forms(name):
    s, sp, c = _random_points()
    exact = gaussian_pair_expectations(get_activation(name), s, sp, c)
    quad = gaussian_pair_expectations(get_activation(name), s, sp, c, closed_form=False)
    assert_close(quad["F"], exact["F"], "quadrature_pair", rtol=0)
    assert_close(quad["G"], exact["G"], "quadrature_pair", rtol=0)


@pytest.mark.parametrize("name", ["erf", "relu", "gelu"])
def test_hermite_weights_satisfy_price_theorem(name):
    """E[φφ h₁₂] = E[φ′φ′], E[φφ h₁₁₂₂] = E[φ′φ′ h₁₂], E[φφ h₁₁₁₂] = E[φ′φ′ h₁₁]: the weights (K5) move
    one derivative from each factor onto the density, whatever φ."""
    s, sp, c = _random_points(8)
    terms = ("G", "phi_h12", "phi_h1122", "dphi_h12", "phi_h1112", "dphi_h11")
    E = gaussian_pair_expectations(get_activation(name), s, sp, c, terms=terms, closed_form=False)
    assert_close(E["phi_h12"], E["G"], "exact", rtol=0)
    assert_close(E["phi_h1122"], E["dphi_h12"], "cancellation", rtol=0)
    assert_close(E["phi_h1112"], E["dphi_h11"], "cancellation", rtol=0)


# ---------------------------------------------------------------------------------------------
# exact FC kernel vs a wide random network
# ---------------------------------------------------------------------------------------------


def _mc_fc(act, X: torch.Tensor, depth: int, width: int, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """Empirical (NNGP, NTK) of NTK-parameterised FC nets in float64, per seed: (seeds, n, n) each.

    NTK = Σ_l (g_l g_lᵀ) ⊙ (a_{l−1} a_{l−1}ᵀ)/fan_l + a_L a_Lᵀ/N, the parameter-gradient inner product
    written per layer, with g_l = ∂f/∂z_l from one autograd backward pass (inputs do not interact)."""
    d = X.shape[1]
    nngps, ntks = [], []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        fans = [d] + [width] * (depth - 1)
        Ws = [torch.randn(width, f, generator=gen, dtype=torch.float64) for f in fans]
        v = torch.randn(width, generator=gen, dtype=torch.float64)
        a, inputs, zs = X, [], []
        for W in Ws:
            inputs.append(a)
            z = (a @ W.T / math.sqrt(W.shape[1])).requires_grad_()
            zs.append(z)
            a = act.phi(z)
        out = a @ v / math.sqrt(width)
        gs = torch.autograd.grad(out.sum(), zs)
        ntk = a @ a.T / width
        for g, inp in zip(gs, inputs, strict=True):
            ntk = ntk + (g @ g.T) * (inp @ inp.T) / inp.shape[1]
        nngps.append((a @ a.T / width).detach().numpy())
        ntks.append(ntk.detach().numpy())
    return np.stack(nngps), np.stack(ntks)


@pytest.mark.parametrize("name", ["erf", "relu"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_fc_kernel_matches_wide_network_monte_carlo(name, depth):
    act = get_activation(name)
    gen = torch.Generator().manual_seed(7)
    X = torch.randn(4, 6, generator=gen, dtype=torch.float64) * torch.tensor([[0.7], [1.0], [1.2], [1.4]])
    X[3] = 0.8 * X[2] + 0.6 * X[3]  # one strongly correlated pair
    nngp, ntk = fc_kernel(X, activation=name, depth=depth)
    mc_nngp, mc_ntk = _mc_fc(act, X, depth, width=768, seeds=12)
    for exact, mc in ((nngp, mc_nngp), (ntk, mc_ntk)):
        # seed-mean fluctuations are ≲ 4.5% of the largest entry here (measured over disjoint seed sets);
        # a wrong depth or normalisation is off by ≳ 25%
        err = np.abs(mc.mean(0) - exact).max() / np.abs(exact).max()
        assert err < 0.08, err


def test_fc_kernel_diagonal_and_symmetry():
    X = np.random.default_rng(1).standard_normal((5, 9))
    nngp, ntk = fc_kernel(X, activation="gelu", depth=2)
    assert_close(ntk, ntk.T, "ulp")
    q = (X * X).sum(1) / 9
    for i in range(5):  # the diagonal through the 1-D recursion V, V̇
        s, th = q[i], q[i]
        for _ in range(2):
            dg = diag_expectations(get_activation("gelu"), np.array(s))
            th, s = dg["V"] + th * dg["Vdot"], dg["V"]
        assert ntk[i, i] == pytest.approx(float(th), rel=TOL["exact"])
        assert nngp[i, i] == pytest.approx(float(s), rel=TOL["exact"])


def test_cross_kernels_are_blocks_of_the_joint_kernel():
    rng = np.random.default_rng(4)
    X, X2 = rng.standard_normal((3, 7)), rng.standard_normal((2, 7))
    for fn, A, B in (
        (lambda a, b=None: fc_kernel(a, b, activation="relu", depth=2), X, X2),
        (
            lambda a, b=None: cnn_kernel(a, b, activation="erf", depth=2),
            rng.standard_normal((3, 2, 4, 4)),
            rng.standard_normal((2, 2, 4, 4)),
        ),
    ):
        joint = fn(np.concatenate([A, B]))
        cross = fn(A, B)
        for j, c in zip(joint, cross, strict=True):
            assert_close(c, j[:3, 3:], "arith", atol=TOL["ulp"])


# ---------------------------------------------------------------------------------------------
# linearisation vs finite differences of the exact recursion
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["erf", "relu", "gelu", "leaky_relu:0.2"])
@pytest.mark.parametrize("depth", [1, 3])
def test_fc_linear_coeffs_match_finite_differences(name, depth):
    """Every coefficient of (L1), NTK and NNGP, vs Chebyshev fits of the exact recursion in ρ and q."""
    fits = {}
    for label, f in (
        ("rho", lambda t: fc_kernel_qr(1.0, 1.0, t, name, depth)),
        ("q", lambda t: fc_kernel_qr(1.0 + t, 1.0, 0.0, name, depth)),
        ("qq", lambda t: fc_kernel_qr(1.0 + t, 1.0 + t, 0.0, name, depth)),  # A₀ + 2Ct + (D + E)t²
    ):
        h = 0.2
        t = h * np.cos(np.pi * (np.arange(25) + 0.5) / 25)
        nngp, ntk = f(t)
        fits[label] = {k: np.polynomial.polynomial.polyfit(t, v, 12) for k, v in (("nngp", nngp), ("ntk", ntk))}
    for kernel in ("ntk", "nngp"):
        co = fc_linear_coeffs(name, depth, d=50, kernel=kernel)
        in_rho, in_q, in_qq = (fits[k][kernel] for k in ("rho", "q", "qq"))
        tol = TOL["conditioned"] * (abs(in_rho[0]) + abs(in_rho[1]))
        assert co.A0 == pytest.approx(in_rho[0], abs=tol)
        assert co.B == pytest.approx(in_rho[1], abs=tol)
        assert co.curvature == pytest.approx(2 * in_rho[2], abs=tol)
        assert co.C == pytest.approx(in_q[1], abs=tol)
        assert co.D == pytest.approx(2 * in_q[2], abs=tol)
        assert co.E == pytest.approx(in_qq[2] - 2 * in_q[2], abs=tol)
        assert co.A == pytest.approx(co.A0 + 0.5 * co.curvature / 50, rel=TOL["arith"])


def test_odd_activation_has_no_norm_terms_and_homogeneous_has_sqrt_form():
    erf = fc_linear_coeffs("erf", 3, d=10)
    assert erf.A0 == erf.C == erf.D == erf.E == 0.0 or max(abs(erf.A0), abs(erf.C), abs(erf.D), abs(erf.E)) < TOL["ulp"]
    # ReLU: K(q, q′, 0) = A₀√(qq′) ⇒ C = A₀/2, D = −A₀/4, E = A₀/4
    relu = fc_linear_coeffs("relu", 3, d=10)
    assert relu.C == pytest.approx(relu.A0 / 2, rel=TOL["exact"])
    assert relu.D == pytest.approx(-relu.A0 / 4, rel=TOL["exact"])
    assert relu.E == pytest.approx(relu.A0 / 4, rel=TOL["exact"])


# ---------------------------------------------------------------------------------------------
# L = 1: docs/theory.md §3's two-layer linear models
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["erf", "relu", "leaky_relu:0.3", "gelu", "tanh", "softplus"])
def test_one_hidden_layer_reduces_to_theory_constants(name):
    """NTK of the L = 1 FC net = Θ₁ + Θ₂ of docs/theory.md §1 (both layers), NNGP = Θ₂ (second layer). Their
    linearisations must be 2ζ²ρ + 3ν²/(2d) + q(x)q(x′) and ζ²ρ + ν²/(2d) + q(x)q(x′) (docs/theory.md §3),
    with q(x) = m(‖x‖²/d), m(q) = E[φ(√q g)]: m(1) = ϑ₀, m′(1) = ϑ₁/2, m″(1) = ϑ₂/2 − ϑ₁/4 (ε = q − 1),
    so A₀ = ϑ₀², C = ϑ₀m′, D = ϑ₀m″, E = m′²."""
    g = gaussian_constants(get_activation(name))
    d = 40
    nu2_over_d = g.nu(1.0) ** 2 / d
    ntk = fc_linear_coeffs(name, 1, d=d)
    nngp = fc_linear_coeffs(name, 1, d=d, kernel="nngp")
    m1, m2 = g.theta1 / 2, g.theta2 / 2 - g.theta1 / 4  # m′(1), m″(1) in q
    tol = dict(rel=TOL["conditioned"], abs=TOL["exact"])
    assert ntk.B == pytest.approx(2 * g.zeta**2, **tol)
    assert nngp.B == pytest.approx(g.zeta**2, **tol)
    assert ntk.A == pytest.approx(g.theta0**2 + 1.5 * nu2_over_d, **tol)
    assert nngp.A == pytest.approx(g.theta0**2 + 0.5 * nu2_over_d, **tol)
    for co in (ntk, nngp):
        assert co.A0 == pytest.approx(g.theta0**2, **tol)
        assert co.C == pytest.approx(g.theta0 * m1, **tol)
        assert co.D == pytest.approx(g.theta0 * m2, **tol)
        assert co.E == pytest.approx(m1**2, **tol)


@pytest.mark.parametrize("name", ["relu", "softplus"])
def test_one_hidden_layer_features_reproduce_theory_kernel(name):
    """ΨΨᵀ of deep_features (L = 1) vs tests.oracles.feature_kernel("both"/"second"): equal up to the
    O(ε³) terms by which the two norm features differ (ε ≈ √(2/d) ≈ 0.03 here)."""
    act = get_activation(name)
    consts = gaussian_constants(act)
    d, n = 2000, 30
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    nu = consts.nu(1.0)
    for kernel, layers in (("ntk", "both"), ("nngp", "second")):
        psi = deep_features(X, fc_linear_coeffs(name, 1, d=d, kernel=kernel))
        ours = psi @ psi.T
        theirs = feature_kernel(X, X, consts, nu, layers)
        off = ~torch.eye(n, dtype=torch.bool)
        err = (ours - theirs)[off].abs().max().item()
        assert err < 2e-4 * theirs.abs().max().item(), err


# ---------------------------------------------------------------------------------------------
# features and fitted coefficients
# ---------------------------------------------------------------------------------------------


def test_deep_features_realise_the_taylor_kernel_to_third_order():
    co = fc_linear_coeffs("softplus", 2, d=30)
    d = 30
    errs = []
    for scale in (0.04, 0.02):
        gen = torch.Generator().manual_seed(5)
        X = torch.randn(12, d, generator=gen, dtype=torch.float64)
        X = X / X.norm(dim=1, keepdim=True) * math.sqrt(d)  # q = 1 …
        X = X * torch.sqrt(1 + scale * torch.randn(12, 1, generator=gen, dtype=torch.float64))  # … then ε ~ scale
        psi = deep_features(X, co)
        q = ((X * X).sum(1) / d).numpy()
        taylor = co.taylor(q[:, None], q[None, :], (X @ X.T / d).numpy())
        errs.append(np.abs((psi @ psi.T).numpy() - taylor).max())
    assert errs[0] < 1e-5
    assert 6 < errs[0] / errs[1] < 10  # O(ε³)


def test_fit_recovers_coefficients_of_an_exact_taylor_kernel_and_of_the_true_kernel():
    d, n = 60, 80
    rng = np.random.default_rng(2)
    X = rng.standard_normal((n, d)) * np.sqrt(rng.uniform(0.7, 1.3, (n, 1)))
    q = (X * X).sum(1) / d
    rho = X @ X.T / d
    true = fc_linear_coeffs("relu", 2, d=d)
    fitted = fit_linear_coeffs(true.taylor(q[:, None], q[None, :], rho), X)
    for k in "ABCDE":
        assert getattr(fitted, k) == pytest.approx(getattr(true, k), rel=TOL["conditioned"], abs=TOL["exact"])
    # on the exact kernel the fit is close to the analytic coefficients (ρ², ρε terms are noise here)
    ntk = fc_kernel(X, activation="relu", depth=2)[1]
    fit2 = fit_linear_coeffs(ntk, X)
    assert fit2.B == pytest.approx(true.B, rel=0.02)
    assert fit2.A == pytest.approx(true.A, rel=0.01)
    only = fit_linear_coeffs(ntk, X, norm_terms=False)
    assert only.C == only.D == only.E == 0.0


# ---------------------------------------------------------------------------------------------
# CNN: brute-force all-pairs recursion (torch convs, closed forms, autograd) and Monte Carlo
# ---------------------------------------------------------------------------------------------


def _closed_F_G(name: str, s, sp, c):
    """Closed-form F, G (K1) in torch; for ReLU the r = 1 points (variances) are masked to F = s/2, G = ½
    so that autograd never meets the infinite slope of arcsin at 1."""
    if name == "erf":
        root2 = (1 + 2 * s) * (1 + 2 * sp)
        return 2 / math.pi * torch.asin(2 * c / torch.sqrt(root2)), 4 / math.pi / torch.sqrt(root2 - 4 * c * c)
    root = torch.sqrt(s * sp)
    r = c / root
    one = r >= 1 - 1e-12
    r = torch.where(one, torch.zeros_like(r), r)
    F = c / 4 + root / (2 * math.pi) * (torch.sqrt(1 - r * r) + r * torch.asin(r))
    G = 0.25 + torch.asin(r) / (2 * math.pi)
    return torch.where(one, c / 2, F), torch.where(one, torch.full_like(G, 0.5), G)


def _conv4(A: torch.Tensor, k: int) -> torch.Tensor:
    """(1/k²) Σ_δ A[p+δ, p′+δ] over the 'SAME' window with zero padding, for A of shape (H, W, H, W)."""
    H, W = A.shape[:2]
    b, a = (k - 1) // 2, k // 2
    Ap = torch.nn.functional.pad(A, (b, a, b, a, b, a, b, a))
    out = torch.zeros_like(A)
    for dh in range(k):
        for dw in range(k):
            out = out + Ap[dh : dh + H, dw : dw + W, dh : dh + H, dw : dw + W]
    return out / k**2


def _all_pairs_cnn(name: str, R, Sx, Sxp, depth: int, k: int):
    """Output (NNGP, NTK) from the full position-pair covariances: R = (x_pᵀx′_{p′}/C), Sx, Sxp the
    self-covariances, all (H, W, H, W). No use of the equal-position shortcut of (K4)."""
    c, s, sp = _conv4(R, k), _conv4(Sx, k), _conv4(Sxp, k)
    theta = c
    H, W = R.shape[:2]
    P = H * W
    for layer in range(depth):
        dx = torch.diagonal(s.reshape(P, P)).reshape(H, W)
        dxp = torch.diagonal(sp.reshape(P, P)).reshape(H, W)
        F, G = _closed_F_G(name, dx[:, :, None, None], dxp[None, None], c)
        Fx, _ = _closed_F_G(name, dx[:, :, None, None], dx[None, None], s)
        Fxp, _ = _closed_F_G(name, dxp[:, :, None, None], dxp[None, None], sp)
        theta = F + theta * G
        c, s, sp = F, Fx, Fxp
        if layer < depth - 1:
            c, s, sp, theta = (_conv4(t, k) for t in (c, s, sp, theta))
    diag = lambda t: torch.diagonal(t.reshape(P, P))  # noqa: E731
    return diag(c).mean(), diag(theta).mean()


@pytest.mark.parametrize("name", ["erf", "relu"])
@pytest.mark.parametrize("depth", [1, 3])
def test_cnn_linear_coeffs_match_brute_force_autograd(name, depth):
    C, H, W, k = 2, 3, 4, 3
    P = H * W
    co = cnn_linear_coeffs(name, depth, (C, H, W), k)

    def ntk(R_flat, eps, epsp):
        R = R_flat.reshape(H, W, H, W)
        Sx = torch.diag(1 + eps).reshape(H, W, H, W)
        Sxp = torch.diag(1 + epsp).reshape(H, W, H, W)
        return _all_pairs_cnn(name, R, Sx, Sxp, depth, k)[1]

    R0 = torch.zeros(P * P, dtype=torch.float64)
    e0 = torch.zeros(P, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda R: ntk(R, e0, e0), R0).reshape(P, P)
    # M = P·∂K/∂R_{pp′}: diagonal (no cross-position products), equal to m
    assert_close(P * jac.numpy(), np.diag(co.m), "exact", rtol=0)
    diag_idx = torch.arange(P) * (P + 1)

    def on_diag(a):
        R = torch.zeros(P * P, dtype=torch.float64).index_put((diag_idx,), a)
        return ntk(R, e0, e0)

    hess = torch.autograd.functional.hessian(on_diag, torch.zeros(P, dtype=torch.float64))
    assert_close(hess.numpy(), co.H, "cancellation", rtol=0)
    both = torch.autograd.functional.hessian(lambda e: ntk(R0, e[:P], e[P:]), torch.zeros(2 * P, dtype=torch.float64))
    grad = torch.autograd.functional.jacobian(lambda e: ntk(R0, e, e0), e0)
    assert_close(grad.numpy(), co.c, "exact", rtol=0)
    assert_close(both[:P, :P].numpy(), co.D, "cancellation", rtol=0)
    assert_close(both[:P, P:].numpy(), co.E, "cancellation", rtol=0)
    assert co.A0 == pytest.approx(float(ntk(R0, e0, e0)), rel=TOL["exact"])
    assert co.A == pytest.approx(co.A0 + 0.5 * float(torch.diagonal(hess).sum()) / C, rel=TOL["exact"])


@pytest.mark.parametrize("name", ["erf", "relu"])
def test_cnn_kernel_matches_all_pairs_recursion(name):
    C, H, W, k, depth = 3, 4, 5, 3, 3
    X = np.random.default_rng(3).standard_normal((3, C, H, W))
    nngp, ntk = cnn_kernel(X, activation=name, depth=depth, kernel_size=k)
    Xt = torch.from_numpy(X)
    for i in range(3):
        for j in range(3):
            gram = lambda a, b: torch.einsum("chw,cij->hwij", a, b) / C  # noqa: E731
            out = _all_pairs_cnn(name, gram(Xt[i], Xt[j]), gram(Xt[i], Xt[i]), gram(Xt[j], Xt[j]), depth, k)
            assert nngp[i, j] == pytest.approx(float(out[0]), rel=TOL["exact"], abs=TOL["arith"])
            assert ntk[i, j] == pytest.approx(float(out[1]), rel=TOL["exact"], abs=TOL["arith"])


def test_same_padding_border_variances():
    """With unit per-pixel norms the first-layer variances are (in-bounds taps)/k²: 4/9 corner, 6/9 edge."""
    T = same_patch_operator(4, 5, 3)
    s1 = T @ np.ones(20)
    assert s1[0] == pytest.approx(4 / 9)
    assert s1[1] == pytest.approx(6 / 9)
    assert s1[6] == pytest.approx(1.0)


def test_circular_padding_gives_the_fc_linear_coefficient():
    """With a circulant patch operator (circular padding) every pixel sees k² taps, the per-pixel
    recursion is the FC one, and m_p = B of the FC net for every p (module docstring, (L2))."""
    H, W, k, depth = 4, 5, 3, 3
    P = H * W
    T = np.zeros((P, P))
    for h in range(H):
        for w in range(W):
            for dh in (-1, 0, 1):
                for dw in (-1, 0, 1):
                    T[h * W + w, ((h + dh) % H) * W + (w + dw) % W] += 1 / k**2
    fc = fc_linear_coeffs("relu", depth, d=10)
    _, ntk = propagate(get_activation("relu"), T, np.full((1, P), 1 / P), T @ np.ones(P), depth)
    assert_close(P * ntk.a[0], fc.B, "exact", atol=0)
    assert ntk.v[0] == pytest.approx(fc.A0, rel=TOL["exact"])
    assert_close(ntk.e[0].sum(), fc.C, "exact", atol=0)  # all pixels' norms moving together = q


def _mc_cnn(name: str, X: torch.Tensor, depth: int, width: int, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """Empirical (NNGP, NTK) of wide 'SAME' 3×3 CNNs (torch conv2d, NTK parameterisation), float64.

    Per conv layer ∂f_i/∂W = g_iᵀ U_i/√fan with U_i the unfolded input patches (P × C_in·9) and
    g_i = ∂f_i/∂z (P × C_out) from one autograd backward pass; NTK_ij = Σ_l ⟨g_iᵀU_i, g_jᵀU_j⟩/fan."""
    act = get_activation(name)
    n, C, H, Wd = X.shape
    ntks, nngps = [], []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(100 + seed)
        chans = [C] + [width] * depth
        Ws = [torch.randn(width, ci, 3, 3, generator=gen, dtype=torch.float64) for ci in chans[:-1]]
        v = torch.randn(width * H * Wd, generator=gen, dtype=torch.float64)
        h, patches, zs = X, [], []
        for Wt in Ws:
            patches.append(torch.nn.functional.unfold(h, 3, padding=1))  # (n, C_in·9, P)
            z = (torch.nn.functional.conv2d(h, Wt, padding="same") / math.sqrt(Wt.shape[1] * 9)).requires_grad_()
            zs.append(z)
            h = act.phi(z)
        feat = h.reshape(n, -1)
        out = feat @ v / math.sqrt(feat.shape[1])
        gs = torch.autograd.grad(out.sum(), zs)
        ntk = feat @ feat.T / feat.shape[1]
        for g, U in zip(gs, patches, strict=True):
            J = torch.einsum("nop,nkp->nok", g.reshape(n, width, -1), U) / math.sqrt(U.shape[1])
            ntk = ntk + torch.einsum("iok,jok->ij", J, J)
        nngps.append((feat @ feat.T / feat.shape[1]).detach().numpy())
        ntks.append(ntk.detach().numpy())
    return np.stack(nngps), np.stack(ntks)


@pytest.mark.parametrize("name", ["erf", "relu"])
def test_cnn_kernel_matches_wide_cnn_monte_carlo(name):
    gen = torch.Generator().manual_seed(11)
    X = torch.randn(3, 2, 4, 4, generator=gen, dtype=torch.float64)
    nngp, ntk = cnn_kernel(X, activation=name, depth=2)
    mc_nngp, mc_ntk = _mc_cnn(name, X, depth=2, width=256, seeds=10)
    for exact, mc in ((nngp, mc_nngp), (ntk, mc_ntk)):
        err = np.abs(mc.mean(0) - exact).max() / np.abs(exact).max()  # ≲ 4% measured; see the FC test
        assert err < 0.08, err


def test_cnn_features_realise_the_linearised_kernel():
    co = cnn_linear_coeffs("relu", 2, (3, 4, 4))
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(6, 3, 4, 4, generator=gen, dtype=torch.float64)
    X = X / X.norm(dim=1, keepdim=True) * math.sqrt(3)  # unit per-pixel norms: ε = 0
    psi = cnn_features(X, co)
    pix = X.reshape(6, 3, 16)
    lin = torch.einsum("icp,jcp,p->ij", pix, pix, torch.from_numpy(co.m)) / 48
    assert_close((psi @ psi.T).numpy(), (lin + co.A).numpy(), "roundoff")
    assert psi.shape == (6, 48 + 1 + 16)
