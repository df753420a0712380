"""Empirical tangent kernels of the two-layer network at a given (W, v) (THEORY §1).

    Θ₁(x, x′) = (xᵀx′/d) · (1/m) Σ_r v_r² φ′(w_rᵀx/√d) φ′(w_rᵀx′/√d)      (first-layer block)
    Θ₂(x, x′) = (1/m) Σ_r φ(w_rᵀx/√d) φ(w_rᵀx′/√d)                         (second-layer block)

:func:`empirical_ntk` gets both from ``torch.func`` (Jacobians of f with respect to W and v, an
autodiff route); :func:`ntk_blocks` writes them out as above. The function-space GD step is
f_{t+1}(X) ≈ f_t(X) − (1/n)(η₁Θ₁ + η₂Θ₂)(f_t(X) − y), which the linear models of
:mod:`earlylin.linear` mimic with Θ^lin = ΨΨᵀ.
"""

from __future__ import annotations

import math

import torch
from torch.func import jacrev

from earlylin.activations import Activation
from earlylin.nets import forward


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
