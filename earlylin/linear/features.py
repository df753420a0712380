"""The features ψ of the predicted linear models (docs/theory.md §3; paper eqs 5, 9, 11).

Features, for x ∈ ℝ^d and the constants of :mod:`earlylin.activations`:

    first layer :  ψ₁(x) = [ ζ x/√d ; ν/√d ]
    second layer:  ψ₂(x) = [ ζ x/√d ; ν/√(2d) ; q(x) ],
                   q(x)  = ϑ₀ + ϑ₁ (‖x‖/√d − 1) + ϑ₂ (‖x‖/√d − 1)²       (the norm feature)
    both layers :  ψ(x)  = [ ψ₁(x) ; ψ₂(x) ]
    stripped    :  the x columns only (no constant, no norm feature) — the Fig 2 foil.

The 1D CNN's features are in :mod:`earlylin.linear.cnn1d`; the GD trajectory of any of them is
:class:`earlylin.linear.trajectory.LinearTrajectory`.
"""

from __future__ import annotations

import math

import torch

from earlylin.activations import GaussianConstants

LAYERS = ("first", "second", "both")


def norm_feature(X: torch.Tensor, consts: GaussianConstants) -> torch.Tensor:
    """q(x) = ϑ₀ + ϑ₁ε + ϑ₂ε², ε = ‖x‖/√dim − 1 over the last axis of X, shape X.shape[:-1]."""
    eps = torch.linalg.vector_norm(X, dim=-1) / math.sqrt(X.shape[-1]) - 1.0
    return consts.theta0 + consts.theta1 * eps + consts.theta2 * eps * eps


def features(
    X: torch.Tensor, consts: GaussianConstants, nu: float, layers: str, stripped: bool = False
) -> torch.Tensor:
    """Feature matrix Ψ of shape (..., n, p) for inputs X (..., n, d); see the module docstring."""
    d = X.shape[-1]
    x_part = consts.zeta * X / math.sqrt(d)
    ones = torch.ones_like(X[..., :1])
    q = norm_feature(X, consts).unsqueeze(-1)
    psi1 = [x_part] if stripped else [x_part, ones * (nu / math.sqrt(d))]
    psi2 = [x_part] if stripped else [x_part, ones * (nu / math.sqrt(2 * d)), q]
    blocks = {"first": psi1, "second": psi2, "both": psi1 + psi2}[layers]
    return torch.cat(blocks, dim=-1)
