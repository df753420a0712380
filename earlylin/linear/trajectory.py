"""Exact GD trajectory of a linear model from zero (docs/theory.md §3.2), its stability bound, and kernel features.

Each model f^lin(x) = βᵀψ(x) is trained by GD on L = (1/2n)‖Ψβ − y‖² from β₀ = 0 with the learning
rate of the layer(s) it mimics. With F = ΨᵀΨ/n = U Λ Uᵀ and b = Ψᵀy/n the iterates are, exactly,

    β_t = U · diag((1 − (1 − ηλ_k)^t) / λ_k) · Uᵀ b          (λ_k = 0: the limit η t)

so a whole trajectory costs one p×p eigendecomposition, whatever the number of steps. GD is stable
iff η < 2/λ_max(F) = 2n/λ_max(ΨᵀΨ) (:func:`stability_bound`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LinearTrajectory:
    """Closed-form GD trajectory of f^lin = βᵀψ for a batch of K problems (float64); targets y (K, n), or (K, n, C)
    for C outputs (each column its own β, the same features)."""

    eigvals: torch.Tensor  # (K, p)
    eigvecs: torch.Tensor  # (K, p, p)
    b_eig: torch.Tensor  # (K, p), or (K, p, C):  Uᵀ b
    lr: float

    @classmethod
    def fit(cls, psi_train: torch.Tensor, y: torch.Tensor, lr: float) -> LinearTrajectory:
        psi = psi_train.double()
        n = psi.shape[-2]
        F = psi.transpose(-1, -2) @ psi / n
        lam, U = torch.linalg.eigh(F)
        y = y.double()
        cols = y if y.ndim == 3 else y.unsqueeze(-1)
        b_eig = U.transpose(-1, -2) @ ((psi.transpose(-1, -2) @ cols) / n)
        b_eig = b_eig if y.ndim == 3 else b_eig.squeeze(-1)
        return cls(lam.clamp_min(0.0), U, b_eig, lr)

    def gain(self, steps: torch.Tensor) -> torch.Tensor:
        """(1 − (1 − ηλ)^t)/λ for every step and eigenvalue, shape (K, R, p); ηt where λ = 0."""
        t = steps.double().to(self.eigvals.device).view(1, -1, 1)
        lam = self.eigvals.unsqueeze(1)
        a = self.lr * lam
        # 1 − (1 − a)^t: expm1/log1p keeps full relative precision when a is tiny
        small = -torch.expm1(t * torch.log1p(-a.clamp(max=0.5)))
        num = torch.where(a < 0.5, small, 1.0 - torch.pow(1.0 - a, t))
        safe = torch.where(lam > 0, lam, torch.ones_like(lam))
        return torch.where(lam > 0, num / safe, self.lr * t)

    def coef(self, steps: torch.Tensor) -> torch.Tensor:
        """β_t for each step, shape (K, R, p), or (K, R, p, C)."""
        if self.b_eig.ndim == 3:
            return self.eigvecs.unsqueeze(1) @ (self.gain(steps).unsqueeze(-1) * self.b_eig.unsqueeze(1))
        return (self.gain(steps) * self.b_eig.unsqueeze(1)) @ self.eigvecs.transpose(-1, -2)

    def outputs(self, psi: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        """f^lin_t(X) = Ψ β_t for each step, shape (K, R, n), or (K, R, n, C)."""
        if self.b_eig.ndim == 3:
            return psi.double().unsqueeze(1) @ self.coef(steps)
        return self.coef(steps) @ psi.double().transpose(-1, -2)


def stability_bound(psi_train: torch.Tensor) -> torch.Tensor:
    """Largest stable GD learning rate 2n/λ_max(ΨᵀΨ) per batch entry, shape (K,)."""
    psi = psi_train.double()
    n = psi.shape[-2]
    lam_max = torch.linalg.eigvalsh(psi.transpose(-1, -2) @ psi / n)[..., -1]
    return 2.0 / lam_max


def kernel_features(k_train: torch.Tensor, k_test_train: torch.Tensor, rtol: float = 1e-12
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Features whose linear model *is* kernel GD with kernel k: Ψ = U Λ^{1/2}, Ψ* = k(X*, X) U Λ^{−1/2}.

    With k(X, X) = U Λ Uᵀ, ΨΨᵀ = k(X, X) and Ψ*Ψᵀ = k(X*, X), so GD on (1/2n)‖Ψβ − y‖² from β = 0
    moves the train outputs as f_{t+1} = f_t − (η/n) k(X, X)(f_t − y) and the test outputs as
    f_t(X*) = k(X*, X) α_t — the kernel (e.g. infinite-width NTK) model, trained by the same closed
    form (:class:`LinearTrajectory`). Eigenvalues below ``rtol``·λ_max are dropped (their directions
    move by at most η·t·λ/n, i.e. not at all). Shapes: k_train (…, n, n), k_test_train (…, n*, n)."""
    lam, U = torch.linalg.eigh(k_train.double())
    keep = lam > rtol * lam.amax(dim=-1, keepdim=True)
    root = torch.where(keep, lam.clamp_min(0.0).sqrt(), torch.zeros_like(lam))
    inv_root = torch.where(keep, 1.0 / torch.where(keep, root, torch.ones_like(root)), torch.zeros_like(root))
    return U * root.unsqueeze(-2), (k_test_train.double() @ U) * inv_root.unsqueeze(-2)
