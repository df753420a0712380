"""The CIFAR nets' derived linear model (docs/theory.md §5.4): its coefficients (L1)/(L2) with Σ from the
training set, the map to its features Ψ (L3), the same as plain data and back, and the pixel weights of ρ_w.

A run computes :func:`linear_features` from its training images; its record keeps :func:`coeff_summary`,
from which :func:`features_from_summary` rebuilds the same Ψ for new inputs (``Result.linear_model.predict``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from earlylin.errors import ConfigError
from earlylin.ntk import linearise


def linear_features(arch: str, activation: str, depth: int, kernel_size: int, x_train: np.ndarray
                    ) -> tuple[Any, Any]:
    """Derived coefficients and a map X (…, n, 3, 8, 8) → (Ψ, Ψ_stripped), with Σ from the training set."""
    flat = x_train.reshape(x_train.shape[0], -1)
    cov = flat.T @ flat / flat.shape[0]
    d = flat.shape[1]
    if arch == "fc":
        coeffs = linearise.fc_linear_coeffs(activation, depth, d, float(np.sum(cov * cov) / d))

        def feats(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            psi = linearise.deep_features(X.reshape(*X.shape[:-3], d), coeffs)
            return psi, psi[..., :d]
    else:
        coeffs = linearise.cnn_linear_coeffs(activation, depth, x_train.shape[1:], kernel_size, input_cov=cov)

        def feats(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            psi = linearise.cnn_features(X, coeffs)
            return psi, psi[..., :d]
    return coeffs, feats


def pixel_weights(arch: str, d: int, m: Any = None) -> np.ndarray:
    """Per-coordinate weights w of ρ_w = xᵀdiag(w)x′/d: 1 for FC; m_p/mean(m) for the CNN (C, H, W order)."""
    if arch == "fc":
        return np.ones(d)
    m = np.asarray(m, dtype=np.float64)
    return np.tile(m / m.mean(), d // len(m))


def coeff_summary(coeffs: Any) -> dict[str, Any]:
    """The derived coefficients as plain data: all that :func:`features_from_summary` needs to rebuild Ψ."""
    out: dict[str, Any] = {"A": float(coeffs.A)}
    if hasattr(coeffs, "B"):
        out.update(B=float(coeffs.B), C=float(coeffs.C), D=float(coeffs.D), E=float(coeffs.E))
    else:  # CNN: B is the mean of the per-pixel weights m_p (Θ_lin = Σ_p m_p x_pᵀx′_p/d)
        out.update(B=float(np.mean(coeffs.m)), m=np.asarray(coeffs.m).tolist(), c=np.asarray(coeffs.c).tolist(),
                   D=np.asarray(coeffs.D).tolist(), E=np.asarray(coeffs.E).tolist(),
                   pixel_norms=np.asarray(coeffs.pixel_norms).tolist(), image_shape=list(coeffs.image_shape),
                   kernel_size=int(coeffs.kernel_size), depth=int(coeffs.depth))
    return out


def features_from_summary(arch: str, derived: dict[str, Any]) -> Any:
    """The map X (…, n, 3, 8, 8) → Ψ of the derived linear model, rebuilt from :func:`coeff_summary`'s data."""
    if arch == "fc":
        fc = linearise.FCLinearCoeffs(*(float(derived[k]) for k in ("A", "B", "C", "D", "E")))
        return lambda X: linearise.deep_features(X.reshape(*X.shape[:-3], -1), fc)
    missing = [k for k in ("c", "D", "E", "pixel_norms", "image_shape") if k not in derived]
    if missing:
        raise ConfigError(f"predict: this CIFAR CNN record lacks the derived coefficients {missing} (written by an "
                          "earlier earlylin); rerun it")
    a = {k: np.asarray(derived[k], dtype=np.float64) for k in ("m", "c", "D", "E", "pixel_norms")}
    cnn = linearise.CNNLinearCoeffs(A=float(derived["A"]), m=a["m"], c=a["c"], D=a["D"], E=a["E"], A0=float("nan"),
                                    H=np.zeros(0), tau=np.zeros(0), image_shape=tuple(derived["image_shape"]),
                                    kernel_size=int(derived["kernel_size"]), depth=int(derived["depth"]),
                                    pixel_norms=a["pixel_norms"])
    return lambda X: linearise.cnn_features(X, cnn)
