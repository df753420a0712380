"""How close the network stays to its linear model: MSE, relative MSE, V_lin split, escape step.

All functions take tensors with the seed axis first and return one value per seed.

- MSE(f, g) = (1/n) Σ_i (f(x_i) − g(x_i))²                              (THEORY §4)
- relative MSE = MSE(f_net, f_lin) / ((1/n) Σ_i f_net(x_i)²), undefined (NaN) while the network
  output is zero up to rounding, i.e. mean f_net² ≤ 1e-12 (step 0 of a symmetric initialisation)
- V_lin = column span of the linear model's test feature matrix Ψ_test, P its orthogonal projector;
  a residual r = f − y splits as ‖Pr‖²/n + ‖(I − P)r‖²/n (THEORY §5, Fig 3a). A linear model's
  V_lin⊥ part is −(I − P)y at every step; the network's falls only once it goes beyond linear.
- early window T = c·d·log(d)/η (THEORY §4) and the escape step: the first recorded step after T
  at which the test MSE(net, f_lin) exceeds ``escape_factor`` × its value at T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

ZERO_OUTPUT = 1e-12  # mean f² at or below this is an all-zero output up to fp32 rounding


def mse(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return torch.mean((f - g) ** 2, dim=-1)


def half_mse_loss(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The training objective (1/2n) Σ (f − y)²."""
    return 0.5 * mse(f, y)


def relative_mse(f_net: torch.Tensor, f_lin: torch.Tensor) -> torch.Tensor:
    """MSE(net, lin) / mean(f_net²); NaN where mean f_net² ≤ 1e-12 (the output is zero up to rounding)."""
    denom = torch.mean(f_net**2, dim=-1)
    ok = denom > ZERO_OUTPUT
    return torch.where(ok, mse(f_net, f_lin) / torch.where(ok, denom, 1.0), math.nan)


def class_error(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of points where sign(f) ≠ sign(y) (f = 0 counts as +1)."""
    pred = torch.where(f >= 0, 1.0, -1.0)
    truth = torch.where(y >= 0, 1.0, -1.0)
    return torch.mean((pred != truth).to(f.dtype), dim=-1)


class VlinSplit:
    """Orthogonal split of test residuals onto V_lin = span(Ψ_test) and its complement."""

    def __init__(self, psi_test: torch.Tensor, rtol: float = 1e-10) -> None:
        U, S, _ = torch.linalg.svd(psi_test.double(), full_matrices=False)
        keep = S > rtol * S[..., :1]  # columns above the numerical rank tolerance
        self.Q = U * keep.unsqueeze(-2)  # (K, n, p) with zeroed columns beyond the rank
        self.rank = keep.sum(-1)

    def split(self, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(‖P r‖²/n, ‖(I − P) r‖²/n) per seed for residuals r (K, n)."""
        r = residual.double()
        n = r.shape[-1]
        coef = (self.Q.transpose(-1, -2) @ r.unsqueeze(-1)).squeeze(-1)
        par = (self.Q @ coef.unsqueeze(-1)).squeeze(-1)
        return torch.sum(par**2, -1) / n, torch.sum((r - par) ** 2, -1) / n


def early_window(d: int, lr: float, c: float) -> int:
    """T = c·d·log(d)/η, rounded to a whole step (at least 1)."""
    return max(1, round(c * d * math.log(d) / lr))


def escape_step(steps: Sequence[int], test_mse: Sequence[float], window: int, factor: float) -> int | None:
    """First recorded step > T with test MSE > factor × (test MSE at T), or None if never.

    ``steps`` must contain T itself (the recording schedule always adds it). NaN values never count.
    """
    if window not in steps:
        return None
    ref = test_mse[list(steps).index(window)]
    for s, value in zip(steps, test_mse, strict=True):
        if s > window and value > factor * ref:
            return int(s)
    return None
