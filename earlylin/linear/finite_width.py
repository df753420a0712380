"""The finite-width linear model: f^lin built on the network's own first-layer weights W(0).

docs/theory.md §4 names *finite width* as an error source separate from the genuinely nonlinear ones: at
width m the linear part of Θ₂ is ζ² X (WᵀW/m) Xᵀ/d, not ζ² XXᵀ/d, a relative spectral difference
≈ 2√(d/m). The model here keeps that structure, so that

    f_net − f^lin  =  (f_net − f^lin_fw)  +  (f^lin_fw − f^lin)
                       nonlinear part        width part (→ 0 like √(d/m))

Derivation (docs/theory.md §3's Hermite structure, now per neuron at fixed W). Write u_r = w_rᵀx/√d and
t = ‖x‖/√d. Over w ~ N(0, I_d) at fixed x, u is N(0, t²), and the Hermite expansion of φ in u/t is

    φ(u) = a₀(t) + a₁(t)·He₁(u/t) + ½a₂(t)·He₂(u/t) + …,   a_k(t) = E_g[φ(tg) He_k(g)],
    a₀(t) ≈ q(x) = ϑ₀ + ϑ₁(t − 1) + ϑ₂(t − 1)²   (the norm feature),
    a₁(t)·He₁(u/t) = E_g[φ′(tg)]·u ≈ ζ u,        a₂(t) ≈ E[φ″(g)] = ν (isotropic).

The infinite-width model keeps, of Θ₂ = E_w[φ(u)φ(u′)], the degree-0 product q(x)q(x′), the
degree-1 product ζ² xᵀx′/d and the *mean* of the degree-2 product, ν²/(2d) (ρ² averaged). The
finite-width model keeps the same terms but averages over the network's m neurons instead of over
w, i.e. per neuron (second-layer feature, one per hidden unit)

    h_r(x) = q(x) + ζ u_r = q(x) + ζ w_rᵀx/√d,

    Θ₂^fw(x, x′) = (1/m) Σ_r h_r(x) h_r(x′) + ν²/(2d)
                 = q(x)q(x′) + ζ q(x) w̄ᵀx′/√d + ζ q(x′) w̄ᵀx/√d + ζ² xᵀ(WᵀW/m)x′/d + ν²/(2d),

with w̄ = (1/m)Σ_r w_r. As m → ∞, w̄ → 0 and WᵀW/m → I, so Θ₂^fw → ψ₂ψ₂ᵀ (docs/theory.md §3) with
fluctuations O(m^{−1/2}). For erf (q ≡ 0, ν = 0) it is exactly ζ² X(WᵀW/m)Xᵀ/d.

Choices, documented:

- **q(x) is not made per-neuron** (no ‖w_r‖ in it). Using ε_r = ‖w_r‖‖x‖/d − 1 would add, after
  averaging over neurons, a constant ϑ₁² Var(‖w‖/√d) ≈ ϑ₁²/(2d) which in the exact kernel is cancelled
  by the (dropped) He₂ term's negative correlation at ρ = 0 (on the sphere E[(g²−1)(g′²−1)] = −2/(d+2));
  keeping it would stop Θ₂^fw converging to ψ₂ψ₂ᵀ as m → ∞.
- **The ν²/(2d) constant stays a constant**: its finite-width fluctuation is O(1/(d√m)).
- **The w̄ cross terms are kept**: they are part of the network's degree-0 × degree-1 product (with
  symmetric init w̄ is the mean of m/2 Gaussians, not 0).
- **First layer: ψ₁ as in docs/theory.md §3, scaled by √(mean v_r²)** (= 1 for v_r = ±1). Replacing φ′(u_r)
  by ζ in Θ₁ = (xᵀx′/d)(1/m)Σ v_r² φ′(u_r)φ′(u′_r) leaves ζ² mean(v²) xᵀx′/d: no W at all, which is
  why Θ₁ is robust to width. The next Hermite term φ′(u_r) ≈ ζ + ν u_r adds ν²(xᵀx′/d)·xᵀ(WᵀW/m)x′/d,
  whose mean is the ν²/d constant of ψ₁ and whose width correction is O(√(d/m)/d), and cross terms
  ζν(xᵀx′/d) w̄ᵀ(x + x′)/√d of size O(1/√(dm)); neither is low rank, so both are left out.

Low-rank features. With Z(x) = [q(x), ζxᵀ/√d] ∈ ℝ^{d+1} and B = [1, W] ∈ ℝ^{m×(d+1)},
(1/m)Σ_r h_r(x)h_r(x′) = Z(x) M Z(x′)ᵀ with M = BᵀB/m, so with M^{1/2} from eigh of the (d+1)×(d+1)
matrix M

    ψ₂^fw(x) = [ Z(x) M^{1/2} ; ν/√(2d) ]     (d + 2 columns, as ψ₂),

and "both" concatenates [ψ₁ ; ψ₂^fw]. :class:`earlylin.linear.trajectory.LinearTrajectory` trains it in closed
form exactly like f^lin.

:func:`earlylin.experiments.width_split.width_split` measures the split for the second layer alone,
where the network is exactly kernel GD with Θ₂ = HHᵀ/m (H = φ(XWᵀ/√d) fixed, f(v₀) = 0), so the
network's trajectory is itself a closed-form linear trajectory (:func:`svd_trajectory`).
"""

from __future__ import annotations

import math

import torch

from earlylin.activations import GaussianConstants
from earlylin.errors import ConfigError, arg
from earlylin.linear.features import features, norm_feature
from earlylin.linear.trajectory import LinearTrajectory


def _psd_sqrt(M: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a batch of PSD matrices via eigh (negative round-off clipped)."""
    lam, U = torch.linalg.eigh(M)
    return (U * lam.clamp_min(0.0).sqrt().unsqueeze(-2)) @ U.transpose(-1, -2)


def finite_width_features(
    X: torch.Tensor,
    W: torch.Tensor,
    v: torch.Tensor,
    consts: GaussianConstants,
    nu: float,
    layers: str,
    nu2: float | None = None,
) -> torch.Tensor:
    """Ψ_fw of shape (K, n, p) for X (K, n, d), W (K, m, d), v (K, m); see the module docstring.

    first: √(mean v²)·ψ₁(x) (p = d + 1); second: [Z(x)M^{1/2}, ν/√(2d)] (p = d + 2); both: the two.
    """
    n, d = X.shape[-2], X.shape[-1]
    m = W.shape[-2]
    vscale = torch.sqrt(torch.mean(v * v, dim=-1)).to(X.dtype).view(*v.shape[:-1], 1, 1)
    psi1 = features(X, consts, nu, "first") * vscale
    if layers == "first":
        return psi1
    B = torch.cat([torch.ones_like(W[..., :1]), W], dim=-1).to(X.dtype)  # (K, m, d+1)
    M = B.transpose(-1, -2) @ B / m
    Z = torch.cat([norm_feature(X, consts).unsqueeze(-1), consts.hermite1 * X / math.sqrt(d)], dim=-1)
    nu2 = nu if nu2 is None else nu2  # the second layer's ν₂ (from φ), as in features()
    const = torch.full((*X.shape[:-2], n, 1), nu2 / math.sqrt(2 * d), dtype=X.dtype, device=X.device)
    psi2 = torch.cat([Z @ _psd_sqrt(M), const], dim=-1)
    if layers == "second":
        return psi2
    if layers == "both":
        return torch.cat([psi1, psi2], dim=-1)
    raise ConfigError(f"{arg('layers', layers)} is unknown; valid: first, second, both")


def svd_trajectory(psi_train: torch.Tensor, y: torch.Tensor, lr: float) -> LinearTrajectory:
    """The closed-form GD trajectory of :class:`LinearTrajectory` from a thin SVD Ψ = USVᵀ instead of
    an eigh of the p×p matrix ΨᵀΨ/n — for wide features (p = m ≫ n). Eigenvalues S²/n, eigenvectors
    V (p × min(n, p)), Vᵀb = S Uᵀy/n; directions outside the row space get no gradient, so dropping
    them is exact."""
    psi = psi_train.double()
    n = psi.shape[-2]
    U, S, Vh = torch.linalg.svd(psi, full_matrices=False)
    b_eig = S * (U.transpose(-1, -2) @ y.double().unsqueeze(-1)).squeeze(-1) / n
    return LinearTrajectory((S * S / n).clamp_min(0.0), Vh.transpose(-1, -2), b_eig, lr)
