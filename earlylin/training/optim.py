"""The update rules (docs/theory.md §3.3), applied alike to the network's parameters and to its linear model's.

Every tensor has the seed axis first and every rule is elementwise, so the seeds of a batch stay independent.
With gradient g_t of the step-t loss (on the whole training set, or on the step's mini-batch:
:mod:`earlylin.training.batches`):

- ``gd`` / ``sgd``: θ ← θ − η g  (``sgd`` is the same rule on mini-batches);
- ``momentum`` (heavy ball, μ = ``momentum``): v ← μ v + g,  θ ← θ − η v  (v₀ = 0; torch's SGD with momentum);
- ``adam`` (β₁ = ``momentum``, β₂ = ``beta2``): m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,
  θ ← θ − η (m/(1−β₁ᵗ)) / (√v/√(1−β₂ᵗ) + ε)  (torch's Adam, no weight decay).

The state (v, or m and v, and the step count) is plain tensors: a checkpoint saves it and a resumed run goes on
bit-identically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

OPTIMIZERS = ("gd", "sgd", "momentum", "adam")


@dataclass(frozen=True)
class OptimSpec:
    """One update rule and its constants."""

    name: str = "gd"
    momentum: float = 0.9  # heavy ball's μ; Adam's β₁
    beta2: float = 0.999
    eps: float = 1e-8


class Optimizer:
    """``spec``'s rule for ``params`` with one learning rate per tensor (``lrs``; 0 freezes a tensor)."""

    def __init__(self, spec: OptimSpec, params: Sequence[torch.Tensor], lrs: Sequence[float]) -> None:
        self.spec, self.lrs = spec, list(lrs)
        self.t = 0
        names = {"momentum": ("v",), "adam": ("m", "v")}.get(spec.name, ())
        self.buffers = {k: [torch.zeros_like(p) for p in params] for k in names}

    @torch.no_grad()
    def step(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> None:
        """One update of every parameter with a gradient, in place."""
        self.t += 1
        rule = self.spec.name
        for i, (p, g, lr) in enumerate(zip(params, grads, self.lrs, strict=True)):
            if g is None or lr == 0.0:
                continue
            if rule in ("gd", "sgd"):
                p.sub_(g, alpha=lr)
            elif rule == "momentum":
                v = self.buffers["v"][i]
                v.mul_(self.spec.momentum).add_(g)
                p.sub_(v, alpha=lr)
            else:
                b1, b2 = self.spec.momentum, self.spec.beta2
                m, v = self.buffers["m"][i], self.buffers["v"][i]
                m.mul_(b1).add_(g, alpha=1.0 - b1)
                v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                denom = (v.sqrt() / math.sqrt(1.0 - b2**self.t)).add_(self.spec.eps)
                p.addcdiv_(m, denom, value=-lr / (1.0 - b1**self.t))

    def state(self) -> dict[str, object]:
        """The state a checkpoint keeps: the step count and every buffer (on the CPU)."""
        return {"t": self.t, **{k: [b.detach().cpu().clone() for b in v] for k, v in self.buffers.items()}}

    def load(self, state: dict[str, object], device: torch.device) -> None:
        self.t = int(state["t"])  # type: ignore[call-overload]
        for k, bufs in self.buffers.items():
            for b, saved in zip(bufs, state[k], strict=True):  # type: ignore[call-overload]
                b.copy_(saved.to(device))


def stability_factor(loss: str, optimizer: str, momentum: float, outputs: int) -> float | None:
    """How far past GD-on-squared-loss's bound 2n/λ_max a learning rate stays stable on a quadratic model
    (docs/theory.md §3.3): 1/c for a loss of curvature at most c in f (squared 1, binary logistic ¼, softmax
    cross-entropy ½), times 1 + μ for heavy-ball momentum. None for Adam, whose steps have no such bound."""
    if optimizer == "adam":
        return None
    curvature = 1.0 if loss == "squared" else (0.25 if outputs == 1 else 0.5)
    return (1.0 + momentum if optimizer == "momentum" else 1.0) / curvature
