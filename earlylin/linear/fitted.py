"""The affine-plus-norm model fitted to a network's own empirical tangent kernel (docs/theory.md §5.4).

Where no derived linear model exists (a user's network) or to test a derived one (the CIFAR nets,
``--linear fitted``), fit the off-diagonal entries of the empirical NTK Θ(0) on ``n_fit`` training
points by least squares:

    Θ_ij ≈ A + B ρ_w + C (ε_i + ε_j) + D (ε_i² + ε_j²)/2 + E ε_i ε_j,
    ρ_w = x_iᵀ diag(w) x_j / d,   ε = ‖x‖²/d − 1,

and train the linear model with those features, Ψ = [√B (x ⊙ √w)/√d ; norm columns]
(:func:`earlylin.ntk.linearise.deep_features` builds the norm columns from A, C, D, E).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from earlylin.ntk.linearise import FCLinearCoeffs, deep_features


def fit_affine(theta: np.ndarray, x: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """Least squares of the off-diagonal Θ_ij on [1, ρ_w, ε_i+ε_j, (ε_i²+ε_j²)/2, ε_iε_j],
    ρ_w = x_iᵀdiag(w)x_j/d, ε = ‖x‖²/d − 1; returns A, B, C, D, E of that affine-plus-norm model."""
    n, d = x.shape
    iu, ju = np.triu_indices(n, 1)
    rho = ((x * w) @ x.T / d)[iu, ju]
    eps = np.sum(x * x, axis=1) / d - 1.0
    ei, ej = eps[iu], eps[ju]
    design = np.stack([np.ones_like(rho), rho, ei + ej, 0.5 * (ei**2 + ej**2), ei * ej], axis=1)
    coef, *_ = np.linalg.lstsq(design, theta[iu, ju], rcond=None)
    return dict(zip("ABCDE", (float(c) for c in coef), strict=True))


def fitted_features(flat: torch.Tensor, fit: dict[str, float], w: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(Ψ, Ψ_stripped) of the fitted model for flat inputs (…, n, d):
    [√B (x⊙√w)/√d ; norm columns of :func:`deep_features`], and the x part alone."""
    d = flat.shape[-1]
    coeffs = FCLinearCoeffs(A=fit["A"], B=fit["B"], C=fit["C"], D=fit["D"], E=fit["E"])
    xpart = math.sqrt(max(fit["B"], 0.0)) * flat * torch.as_tensor(np.sqrt(w), dtype=flat.dtype, device=flat.device)
    xpart = xpart / math.sqrt(d)
    norm_cols = deep_features(flat, coeffs)[..., d:]
    return torch.cat([xpart, norm_cols], dim=-1), xpart
