"""The training losses (docs/theory.md §3.3), with their gradients in the outputs.

Outputs f and targets y have the seed axis first: (K, n) for one output column, (K, n, C) for C columns.

- ``squared``: L = (1/2n) Σ_i Σ_c (f_ic − y_ic)²,                ∂L/∂f = (f − y)/n
- ``cross_entropy``, C ≥ 2 (softmax, y one-hot or any rows of probabilities):
      L = −(1/n) Σ_i Σ_c y_ic log softmax(f_i)_c,                  ∂L/∂f = (softmax(f) − y)/n
- ``cross_entropy``, one column (binary logistic, labels y = ±1):
      L = (1/n) Σ_i log(1 + e^{−y_i f_i}),                         ∂L/∂f = −y σ(−y f)/n

The gradient in the outputs is what a linear model f = Ψβ needs: ∂L/∂β = Ψᵀ ∂L/∂f. It is written out, not
taken by autograd, so the linear model's step is two matrix products; tests check it against autograd.
"""

from __future__ import annotations

import torch

from earlylin.errors import ConfigError, arg

LOSSES = ("squared", "cross_entropy")


def loss(name: str, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L per seed, shape (K,), for outputs and targets of shape (K, n) or (K, n, C)."""
    if name == "squared":
        r = (f - y) ** 2
        return 0.5 * torch.mean(r.sum(-1) if r.ndim == 3 else r, dim=-1)
    if f.ndim == 2:
        return torch.mean(torch.nn.functional.softplus(-y * f), dim=-1)
    return torch.mean(-(y * torch.log_softmax(f, dim=-1)).sum(-1), dim=-1)


def grad_outputs(name: str, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∂L/∂f, the shape of f."""
    n = f.shape[1]
    if name == "squared":
        return (f - y) / n
    if f.ndim == 2:
        return -y * torch.sigmoid(-y * f) / n
    return (torch.softmax(f, dim=-1) - y) / n


def check_targets(name: str, *ys: torch.Tensor) -> None:
    """Refuse targets the loss ``name`` cannot take: cross-entropy needs ±1 labels for one output (K, n) and rows of
    class probabilities (≥ 0, summing to 1) for several (K, n, C); squared takes any."""
    if name == "squared":
        return
    if ys[0].ndim == 2:
        ok = all(bool((y.abs() == 1.0).all()) for y in ys)
    else:
        ok = all(bool((y >= 0).all() and torch.allclose(y.sum(-1), torch.ones_like(y[..., 0]))) for y in ys)
    if not ok:
        raise ConfigError(f"{arg('loss', name)}: the targets must be labels, ±1 for one column or rows of class "
                          "probabilities; use the squared loss")
