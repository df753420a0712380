"""Test oracles: quantities the package computes one way, written out another way (docs/theory.md §1, §3, §4).

Nothing in earlylin imports this module; the tests compare the package's routes against these.

Empirical tangent kernels of the two-layer network at a given (W, v) (docs/theory.md §1):

    Θ₁(x, x′) = (xᵀx′/d) · (1/m) Σ_r v_r² φ′(w_rᵀx/√d) φ′(w_rᵀx′/√d)      (first-layer block)
    Θ₂(x, x′) = (1/m) Σ_r φ(w_rᵀx/√d) φ(w_rᵀx′/√d)                         (second-layer block)

:func:`empirical_ntk` gets both from ``torch.func`` (Jacobians of f with respect to W and v, an
autodiff route); :func:`ntk_blocks` writes them out as above. The function-space GD step is
f_{t+1}(X) ≈ f_t(X) − (1/n)(η₁Θ₁ + η₂Θ₂)(f_t(X) − y), which the linear models of
:mod:`earlylin.linear` mimic with Θ^lin = ΨΨᵀ.

The linear models' kernels written term by term: :func:`feature_kernel` (Θ^lin = ΨΨᵀ of
:func:`earlylin.linear.features.features`, docs/theory.md §3) and :func:`finite_width_kernel` (Θ^fw of
:func:`earlylin.linear.finite_width.finite_width_features`, docs/theory.md §4). :func:`loss_and_grads` is the
two-layer net's loss and gradients in one call (:class:`earlylin.nets.two_layer.TwoLayerStep` on a fresh batch).
"""

from __future__ import annotations

import math

import torch
from torch.func import jacrev

from earlylin.activations import Activation, GaussianConstants
from earlylin.linear.cnn1d import patch_norm_feature
from earlylin.linear.features import norm_feature
from earlylin.nets.cnn1d import patches, preacts
from earlylin.nets.two_layer import TwoLayerStep, forward


def empirical_ntk(
    act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor, Xp: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Θ₁, Θ₂) of one network (W (m, d), v (m,)) on X (n, d) × X′ (n′, d), by torch.func Jacobians."""
    Xp = X if Xp is None else Xp

    def f(Wq: torch.Tensor, vq: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        return forward(act, Wq, vq, A)

    jW, jv = jacrev(f, argnums=(0, 1))(W, v, X)
    jWp, jvp = jacrev(f, argnums=(0, 1))(W, v, Xp)
    theta1 = jW.reshape(X.shape[0], -1) @ jWp.reshape(Xp.shape[0], -1).T
    theta2 = jv @ jvp.T
    return theta1, theta2


def ntk_blocks(
    act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor, Xp: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Θ₁, Θ₂) from their closed form (module docstring); supports a leading seed axis."""
    Xp = X if Xp is None else Xp
    m, d = W.shape[-2], W.shape[-1]
    Z, Zp = X @ W.transpose(-1, -2) / math.sqrt(d), Xp @ W.transpose(-1, -2) / math.sqrt(d)
    gram = X @ Xp.transpose(-1, -2) / d
    theta1 = gram * ((act.dphi(Z) * (v * v).unsqueeze(-2)) @ act.dphi(Zp).transpose(-1, -2)) / m
    theta2 = act.phi(Z) @ act.phi(Zp).transpose(-1, -2) / m
    return theta1, theta2


def feature_kernel(
    X: torch.Tensor, Xp: torch.Tensor, consts: GaussianConstants, nu: float, layers: str
) -> torch.Tensor:
    """Θ^lin(X, X′) = Ψ(X)Ψ(X′)ᵀ written out term by term (docs/theory.md §3), an independent check of
    :func:`earlylin.linear.features.features`: first ζ²XXᵀ/d + ν²/d; second ζ²XXᵀ/d + ν²/(2d) + q qᵀ; both their sum."""
    d = X.shape[-1]

    def q(A: torch.Tensor) -> torch.Tensor:
        eps = torch.linalg.vector_norm(A, dim=-1) / math.sqrt(d) - 1.0
        return consts.theta0 + consts.theta1 * eps + consts.theta2 * eps**2

    lin = consts.zeta**2 * (X @ Xp.transpose(-1, -2)) / d
    k1 = lin + nu**2 / d
    k2 = lin + nu**2 / (2 * d) + q(X).unsqueeze(-1) * q(Xp).unsqueeze(-2)
    return {"first": k1, "second": k2, "both": k1 + k2}[layers]


def finite_width_kernel(
    X: torch.Tensor,
    Xp: torch.Tensor,
    W: torch.Tensor,
    v: torch.Tensor,
    consts: GaussianConstants,
    nu: float,
    layers: str,
) -> torch.Tensor:
    """Θ^fw(X, X′) written out term by term (an independent check of
    :func:`earlylin.linear.finite_width.finite_width_features`):

    first : mean(v²)·(ζ² XX′ᵀ/d + ν²/d)
    second: q qᵀ + ζ q (X′w̄)ᵀ/√d + ζ (Xw̄) q′ᵀ/√d + ζ² X(WᵀW/m)X′ᵀ/d + ν²/(2d)
    both  : their sum.
    """
    d, m = X.shape[-1], W.shape[-2]
    vv = torch.mean(v * v, dim=-1).view(*v.shape[:-1], 1, 1)
    k1 = vv * (consts.zeta**2 * X @ Xp.transpose(-1, -2) / d + nu**2 / d)
    q, qp = norm_feature(X, consts), norm_feature(Xp, consts)
    wbar = W.mean(dim=-2)  # (K, d)
    lin_x = (X @ wbar.unsqueeze(-1)).squeeze(-1) / math.sqrt(d)
    lin_xp = (Xp @ wbar.unsqueeze(-1)).squeeze(-1) / math.sqrt(d)
    G = W.transpose(-1, -2) @ W / m
    k2 = (
        q.unsqueeze(-1) * qp.unsqueeze(-2)
        + consts.zeta * q.unsqueeze(-1) * lin_xp.unsqueeze(-2)
        + consts.zeta * lin_x.unsqueeze(-1) * qp.unsqueeze(-2)
        + consts.zeta**2 * X @ G @ Xp.transpose(-1, -2) / d
        + nu**2 / (2 * d)
    )
    return {"first": k1, "second": k2, "both": k1 + k2}[layers]


def loss_and_grads(
    act: Activation,
    W: torch.Tensor,
    v: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    grad_W: bool,
    grad_v: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Per-seed loss (K,), outputs f (K, n) and the requested gradients ∇_W L, ∇_v L (one call)."""
    return TwoLayerStep(act, X, y, grad_W, grad_v)(W, v)


# ---------------------------------------------------------------- 1D CNN (docs/theory.md §5.5)

def cnn1d_empirical_ntk(
    act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor, Xp: torch.Tensor, layers: str
) -> torch.Tensor:
    """Θ = Θ₁ and/or Θ₂ at (W, v) (module docstring), (K, n, n′), from the explicit per-filter
    gradients: Θ₁ = (1/(mdq)) Σ_r G_r(x)·G_r(x′) with G_r(x) = Σ_p v_{r,p} φ′(Z_{p,r}) x_[p]."""
    m, q = W.shape[-2], W.shape[-1]
    d = X.shape[-1]
    P, Pp = patches(X, q), patches(Xp, q)
    Z, Zp = preacts(W, P), preacts(W, Pp)
    out = torch.zeros(*X.shape[:-1], Xp.shape[-2], dtype=X.dtype, device=X.device)
    if layers in ("first", "both"):
        vt = v.transpose(-1, -2).unsqueeze(1)  # (K, 1, d, m)
        G = torch.einsum("kipr,kipj->kirj", act.dphi(Z) * vt, P).flatten(-2)
        Gp = torch.einsum("kipr,kipj->kirj", act.dphi(Zp) * vt, Pp).flatten(-2)
        out = out + G @ Gp.transpose(-1, -2) / (m * d * q)
    if layers in ("second", "both"):
        H, Hp = act.phi(Z).flatten(-2), act.phi(Zp).flatten(-2)
        out = out + H @ Hp.transpose(-1, -2) / (m * d)
    return out


def cnn1d_feature_kernel(
    X: torch.Tensor, Xp: torch.Tensor, consts: GaussianConstants, nu: float, layers: str, q: int
) -> torch.Tensor:
    """Θ^lin written term by term, an independent check of :func:`cnn1d_features`:
    first ζ² Σ_p x_[p]ᵀx′_[p]/(qd) + ν²/q; second ζ² Σ_p x_[p]ᵀx′_[p]/(qd) + ν²/(2q) + (1/d) Σ_p q_p q′_p."""
    d = X.shape[-1]
    P, Pp = patches(X, q).flatten(-2), patches(Xp, q).flatten(-2)
    lin = consts.zeta**2 * (P @ Pp.transpose(-1, -2)) / (q * d)
    Q, Qp = patch_norm_feature(X, consts, q), patch_norm_feature(Xp, consts, q)
    k1 = lin + nu**2 / q
    k2 = lin + nu**2 / (2 * q) + Q @ Qp.transpose(-1, -2) / d
    return {"first": k1, "second": k2, "both": k1 + k2}[layers]
