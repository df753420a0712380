"""The features ψ of the predicted linear models (docs/theory.md §3; paper eqs 5, 9, 11).

Features, for x ∈ ℝ^d and the constants of :mod:`earlylin.activations`:

    first layer :  ψ₁(x) = [ ζ x/√d ; ν/√d ]
    second layer:  ψ₂(x) = [ ζ x/√d ; ν/√(2d) ; q(x) ],
                   q(x)  = ϑ₀ + ϑ₁ (‖x‖/√d − 1) + ϑ₂ (‖x‖/√d − 1)²       (the norm feature)
    both layers :  ψ(x)  = [ ψ₁(x) ; ψ₂(x) ]
    stripped    :  the x columns only (no constant, no norm feature) — the Fig 2 foil.
    ablations   :  ``drop="norm"`` drops the column q(x) only; ``drop="const"`` drops the constant
                   columns ν/√d, ν/√(2d) only (Fig 2's ablations; :data:`ABLATIONS`).

The 1D CNN's features are in :mod:`earlylin.linear.cnn1d`; the GD trajectory of any of them is
:class:`earlylin.linear.trajectory.LinearTrajectory`.
"""

from __future__ import annotations

import math

import torch

from earlylin.activations import GaussianConstants

LAYERS = ("first", "second", "both")
ABLATIONS = ("norm", "const")  # drop= of features(): the f^lin ablations of Fig 2


def norm_feature(X: torch.Tensor, consts: GaussianConstants) -> torch.Tensor:
    """q(x) = ϑ₀ + ϑ₁ε + ϑ₂ε², ε = ‖x‖/√dim − 1 over the last axis of X, shape X.shape[:-1]."""
    eps = torch.linalg.vector_norm(X, dim=-1) / math.sqrt(X.shape[-1]) - 1.0
    return consts.theta0 + consts.theta1 * eps + consts.theta2 * eps * eps


def features(
    X: torch.Tensor, consts: GaussianConstants, nu: float, layers: str, stripped: bool = False,
    drop: str | None = None,
) -> torch.Tensor:
    """Feature matrix Ψ of shape (..., n, p) for inputs X (..., n, d); see the module docstring.
    ``drop`` ("norm" or "const") leaves out the norm column or the constant columns only."""
    if drop is not None and drop not in ABLATIONS:
        raise ValueError(f"drop={drop!r}: valid are {ABLATIONS} or None")
    d = X.shape[-1]
    x_part = consts.zeta * X / math.sqrt(d)
    ones = torch.ones_like(X[..., :1])
    q = norm_feature(X, consts).unsqueeze(-1)
    const1 = [] if drop == "const" else [ones * (nu / math.sqrt(d))]
    const2 = [] if drop == "const" else [ones * (nu / math.sqrt(2 * d))]
    norm = [] if drop == "norm" else [q]
    psi1 = [x_part] if stripped else [x_part, *const1]
    psi2 = [x_part] if stripped else [x_part, *const2, *norm]
    blocks = {"first": psi1, "second": psi2, "both": psi1 + psi2}[layers]
    return torch.cat(blocks, dim=-1)


def ablation_is_lin(consts: GaussianConstants, nu: float, layers: str, drop: str, tol: float = 1e-12) -> bool:
    """Whether ``features(..., drop=drop)`` trains to f^lin itself: the dropped columns are absent (no q in
    the first layer) or zero (ν = 0 for "const"; ϑ₀ = ϑ₁ = ϑ₂ = 0, e.g. erf, for "norm")."""
    if drop == "norm":
        return layers == "first" or max(abs(consts.theta0), abs(consts.theta1), abs(consts.theta2)) <= tol
    return abs(nu) <= tol
