"""The two-layer network of THEORY §1, batched over seeds, with its analytic gradients.

    f(x; W, v) = (1/√m) Σ_r v_r φ(w_rᵀx/√d),     L = (1/2n) Σ_i (f(x_i) − y_i)²

Every tensor carries a leading seed axis K: W (K, m, d), v (K, m), X (K, n, d), y (K, n), so that
K independent runs are one batched computation. Gradients (checked against autograd in the tests):

    Z = X Wᵀ/√d,  r = f − y,
    ∇_v L = φ(Z)ᵀ r / (n√m),      ∇_W L = diag(v) · φ′(Z)ᵀ (r ⊙ X) / (n√m√d).

The second form of ∇_W scales the n×d input rows by r instead of the n×m matrix φ′(Z), and
:class:`TwoLayerStep` keeps the three n×m buffers (Z, φ(Z), φ′(Z)) allocated across steps: on a CPU
the allocation of fresh 20 MB buffers every step costs as much as the arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from earlylin.activations import Activation
from earlylin.rng import STREAM_INIT, stream


def symmetric_init(seed: int, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric initialisation (THEORY §1): w_r ~ N(0, I_d), v_r ~ ±1 for r < m/2, then the mirror
    w_{r+m/2} = w_r, v_{r+m/2} = −v_r, so that f(·; W(0), v(0)) ≡ 0 exactly. m must be even."""
    rng = stream(seed, STREAM_INIT)
    half = m // 2
    w = rng.standard_normal((half, d))
    v = rng.choice([-1.0, 1.0], size=half)
    return np.concatenate([w, w]), np.concatenate([v, -v])


def forward(act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Network outputs f(X), shape (K, n)."""
    m, d = W.shape[-2], W.shape[-1]
    Z = torch.matmul(X, W.transpose(-1, -2)) / math.sqrt(d)
    return readout(act.phi(Z), v) / math.sqrt(m)


def readout(H: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """H v for H (K, n, m), v (K, m) → (K, n), written as vᵀHᵀ: torch's CPU batched matrix-vector
    product is 2–4× slower in the H @ v form."""
    return torch.matmul(v.unsqueeze(-2), H.transpose(-1, -2)).squeeze(-2)


def backprop_readout(H: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Hᵀ r for H (K, n, m), r (K, n) → (K, m), written as rᵀH (the transposed form is slower)."""
    return torch.matmul(r.unsqueeze(-2), H).squeeze(-2)


class TwoLayerStep:
    """Loss, outputs and gradients of the two-layer net on a fixed batch, with reused buffers."""

    def __init__(self, act: Activation, X: torch.Tensor, y: torch.Tensor, grad_W: bool, grad_v: bool) -> None:
        self.act, self.X, self.y = act, X, y
        self.grad_W, self.grad_v = grad_W, grad_v
        self._buffers: tuple[torch.Tensor, ...] | None = None

    def _get_buffers(self, m: int) -> tuple[torch.Tensor, ...]:
        if self._buffers is None or self._buffers[0].shape[-1] != m:
            shape = (*self.X.shape[:-1], m)
            count = 3 if self.grad_W else 2
            self._buffers = tuple(self.X.new_empty(shape) for _ in range(count))
        return self._buffers

    def __call__(
        self, W: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        X, y = self.X, self.y
        n, d = X.shape[-2], X.shape[-1]
        m = W.shape[-2]
        bufs = self._get_buffers(m)
        Z, H = bufs[0], bufs[1]
        torch.matmul(X, (W * (1.0 / math.sqrt(d))).transpose(-1, -2), out=Z)
        self.act.phi_out(Z, H)
        f = readout(H, v) * (1.0 / math.sqrt(m))
        r = f - y
        loss = 0.5 * torch.mean(r * r, dim=-1)
        scale = 1.0 / (n * math.sqrt(m))
        gv = backprop_readout(H, r) * scale if self.grad_v else None
        gW = None
        if self.grad_W:
            G = self.act.dphi_out(Z, bufs[2])
            rX = X * (r * (scale / math.sqrt(d))).unsqueeze(-1)
            gW = torch.matmul(rX.transpose(-1, -2), G).transpose(-1, -2) * v.unsqueeze(-1)
        return loss, f, gW, gv
