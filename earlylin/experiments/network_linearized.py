"""A user's network linearised in its parameters, trained alongside it (docs/theory.md §3.3, §4.3).

For the doubled network f = α(g(θ_A) − g(θ_B))/√2 with θ_A(0) = θ_B(0) = θ₀ (so f₀ ≡ 0), the θ-linearisation is

    f^θ(x; θ) = α (J₀(x)(θ_A − θ₀) − J₀(x)(θ_B − θ₀)) / √2,      J₀ = ∂g/∂θ at θ₀,

trained from θ = θ₀ on the run's loss / α² by the run's optimizer and batches, like the network: its outputs are
Jacobian-vector products (``torch.func.jvp``) and its gradients vector-Jacobian products (``torch.func.vjp``), both
at θ₀. Unlike the fitted affine model it has no kernel mismatch at initialisation (its tangent kernel is the
network's), and under Adam it is the linear model that Adam on the network's parameters linearises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.func import jvp, vjp

from earlylin.training.losses import grad_outputs

GFn = Callable[[Sequence[torch.Tensor], torch.Tensor], torch.Tensor]


class ThetaLinear:
    """f^θ for K seeds: ``params`` (each (K, 2, *shape), both copies at θ₀ of their seed), trained by the pipeline
    with :meth:`grads`; :meth:`outputs` on any inputs."""

    def __init__(self, g: GFn, theta0: list[torch.Tensor], X: torch.Tensor, y: torch.Tensor, loss: str,
                 alpha: float) -> None:
        self.g, self.X, self.y, self.loss, self.alpha = g, X, y, loss, alpha
        self.theta0 = [p.detach().clone() for p in theta0]  # (K, 2, *shape), kept: the network moves its own
        self.params = [p.detach().clone() for p in theta0]

    def _outputs(self, X: torch.Tensor, k: int) -> torch.Tensor:
        th0 = tuple(p[k, 0] for p in self.theta0)  # both copies start at θ₀
        tangent = tuple(q[k, 0] - q[k, 1] for q in self.params)  # (θ_A − θ₀) − (θ_B − θ₀)
        return self.alpha * jvp(lambda *th: self.g(list(th), X), th0, tangent)[1] / math.sqrt(2.0)

    @torch.no_grad()
    def outputs(self, X: torch.Tensor) -> torch.Tensor:
        """f^θ(X) for every seed: X (K, n, …) → (K, n[, C])."""
        return torch.stack([self._outputs(X[k], k) for k in range(X.shape[0])])

    @torch.no_grad()
    def grads(self, idx: torch.Tensor | None) -> list[torch.Tensor]:
        """∂(L/α²)/∂θ of f^θ on the training points ``idx`` (None: all), one (K, 2, *shape) tensor per parameter:
        ±J₀ᵀ ∂L/∂f /(α√2) for the two copies."""
        X = self.X if idx is None else self.X[:, idx]
        y = self.y if idx is None else self.y[:, idx]
        per_seed = []
        for k in range(X.shape[0]):
            f = self._outputs(X[k], k)
            gf = grad_outputs(self.loss, f.unsqueeze(0), y[k].unsqueeze(0))[0] / (self.alpha * math.sqrt(2.0))
            Xk = X[k]
            _, pull = vjp(lambda *th, Xk=Xk: self.g(list(th), Xk), *(p[k, 0] for p in self.theta0))
            per_seed.append([torch.stack([t, -t]) for t in pull(gf.to(X.dtype))])
        return [torch.stack(ps) for ps in zip(*per_seed, strict=True)]
