"""A trainer step for any network given as a forward function, any loss of :mod:`earlylin.training.losses` and any
batch (docs/theory.md §3.3): the gradients by autograd. The built-in nets' analytic steps stay for the paper's
training; this one serves every other choice."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from earlylin.training.losses import loss as loss_of

Forward = Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]
Step = Callable[..., tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor | None]]]


def autograd_step(forward: Forward, X: torch.Tensor, y: torch.Tensor, loss: str, trained: Sequence[bool],
                  alpha: float = 1.0) -> Step:
    """``step(params, idx=None)`` → (per-seed loss on the batch, outputs on every training point or None for a
    mini-batch, one gradient per parameter: None where ``trained`` is False or the outputs do not depend on it).
    ``forward(params, X)`` maps inputs with the seed axis first to outputs (K, n[, C]). ``alpha``: the output
    scale of lazy training — the net trains as α·f on the loss / α² (docs/theory.md §3.3), and the outputs
    returned are α·f."""

    def step(params: list[torch.Tensor], idx: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor | None]]:
        Xb, yb = (X, y) if idx is None else (X[:, idx], y[:, idx])
        with torch.enable_grad():
            ps = [p.detach().requires_grad_(t) for p, t in zip(params, trained, strict=True)]
            f = forward(ps, Xb) if alpha == 1.0 else alpha * forward(ps, Xb)
            L = loss_of(loss, f, yb) if alpha == 1.0 else loss_of(loss, f, yb) / alpha**2
            grads = iter(torch.autograd.grad(L.sum(), [p for p, t in zip(ps, trained, strict=True) if t],
                                             allow_unused=True))  # a user's module may leave a parameter unused
        return L.detach(), (f.detach() if idx is None else None), [next(grads) if t else None for t in trained]

    return step
