"""A linear model f = Ψβ trained step by step, by the run's own loss, optimizer and mini-batches (docs/theory.md §3.3).

Where the closed form of :class:`earlylin.linear.trajectory.LinearTrajectory` does not hold — cross-entropy, SGD,
momentum, Adam — the linear model trains in the network's own loop: β (K seeds, p features[, C outputs]) starts at
0, and at every step its gradient on the step's batch,

    ∂L/∂β = Ψ_Bᵀ ∂L/∂f(Ψ_B β)        (:func:`earlylin.training.losses.grad_outputs`),

goes to the same :class:`earlylin.training.optim.Optimizer` as the network's. For squared loss and full-batch GD
it retraces the closed form (a test).
"""

from __future__ import annotations

import torch

from earlylin.training.losses import grad_outputs


class IteratedLinear:
    """Ψβ for the features ``psi_train`` (K, n, p) and targets ``y`` (K, n) or (K, n, C), in float64.
    ``beta`` is (K, p) for one output, (K, p, C) for C."""

    def __init__(self, psi_train: torch.Tensor, y: torch.Tensor, loss: str) -> None:
        self.psi, self.y, self.loss = psi_train.double(), y.double(), loss
        self.single = self.y.ndim == 2
        K, _, p = self.psi.shape
        self.beta = torch.zeros((K, p, *self.y.shape[2:]), dtype=torch.float64, device=self.psi.device)

    @property
    def params(self) -> list[torch.Tensor]:
        """What the optimizer updates (the pipeline's protocol for models trained in the loop)."""
        return [self.beta]

    def grads(self, idx: torch.Tensor | None) -> list[torch.Tensor]:
        return [self.grad(idx)]

    def _cols(self) -> torch.Tensor:
        return self.beta.unsqueeze(-1) if self.single else self.beta

    def outputs(self, psi: torch.Tensor) -> torch.Tensor:
        """Ψβ, (K, n) or (K, n, C), for features ``psi`` (K, n, p)."""
        out = psi.double() @ self._cols()
        return out.squeeze(-1) if self.single else out

    def grad(self, idx: torch.Tensor | None) -> torch.Tensor:
        """∂L/∂β on the training points ``idx`` (None: all of them, in order), the shape of β."""
        psi = self.psi if idx is None else self.psi[:, idx]
        y = self.y if idx is None else self.y[:, idx]
        f = psi @ self._cols()
        g = grad_outputs(self.loss, f.squeeze(-1) if self.single else f, y)
        out = psi.transpose(-1, -2) @ (g.unsqueeze(-1) if self.single else g)
        return out.squeeze(-1) if self.single else out
