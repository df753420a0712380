"""The features ψ of the predicted linear models (docs/theory.md §3; paper eqs 5, 9, 11).

Features, for x ∈ ℝ^d and the constants of :mod:`earlylin.activations`:

    first layer :  ψ₁(x) = [ ζ x/√d ; ν/√d ]                 (ζ = E[φ′(g)], ν = E[gφ′(g)]·√(TrΣ²/d): from φ′)
    second layer:  ψ₂(x) = [ a₁ x/√d ; ν₂/√(2d) ; q(x) ],    (a₁ = E[gφ(g)], ν₂ = E[(g²−1)φ(g)]·√(TrΣ²/d): from φ)
                   q(x)  = ϑ₀ + ϑ₁ (‖x‖/√d − 1) + ϑ₂ (‖x‖/√d − 1)²       (the norm feature, from φ)

    Where Stein's identities hold (φ′ is φ's derivative) a₁ = ζ and ν₂ = ν, the paper's form; for a
    step-like φ they differ (docs/theory.md §2).
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
    drop: str | None = None, nu2: float | None = None,
) -> torch.Tensor:
    """Feature matrix Ψ of shape (..., n, p) for inputs X (..., n, d); see the module docstring.
    ``drop`` ("norm" or "const") leaves out the norm column or the constant columns only. ``nu``: the first
    layer's ν (:meth:`~earlylin.activations.GaussianConstants.nu`); ``nu2``: the second layer's
    (:meth:`~earlylin.activations.GaussianConstants.nu2`; default ``nu``, equal where Stein holds)."""
    if drop is not None and drop not in ABLATIONS:
        raise ValueError(f"drop={drop!r}: valid are {ABLATIONS} or None")
    d = X.shape[-1]
    nu2 = nu if nu2 is None else nu2
    x1 = consts.zeta * X / math.sqrt(d)
    x2 = consts.hermite1 * X / math.sqrt(d)
    ones = torch.ones_like(X[..., :1])
    q = norm_feature(X, consts).unsqueeze(-1)
    const1 = [] if drop == "const" else [ones * (nu / math.sqrt(d))]
    const2 = [] if drop == "const" else [ones * (nu2 / math.sqrt(2 * d))]
    norm = [] if drop == "norm" else [q]
    psi1 = [x1] if stripped else [x1, *const1]
    psi2 = [x2] if stripped else [x2, *const2, *norm]
    blocks = {"first": psi1, "second": psi2, "both": psi1 + psi2}[layers]
    return torch.cat(blocks, dim=-1)


def ablation_is_lin(consts: GaussianConstants, nu: float, layers: str, drop: str, tol: float = 1e-12,
                    nu2: float | None = None) -> bool:
    """Whether ``features(..., drop=drop)`` trains to f^lin itself: the dropped columns are absent (no q in
    the first layer) or zero (the layers' ν, ν₂ = 0 for "const"; ϑ₀ = ϑ₁ = ϑ₂ = 0, e.g. erf, for "norm")."""
    if drop == "norm":
        return layers == "first" or max(abs(consts.theta0), abs(consts.theta1), abs(consts.theta2)) <= tol
    nus = {"first": (nu,), "second": (nu if nu2 is None else nu2,), "both": (nu, nu if nu2 is None else nu2)}
    return max(abs(v) for v in nus[layers]) <= tol
