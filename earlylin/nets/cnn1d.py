"""The paper's 1D CNN (docs/theory.md §5.5): one circular conv layer with a per-position readout.

Network, for a signal x ∈ ℝ^d, m filters w_r ∈ ℝ^q (1 ≤ q ≤ d), stride 1, circular padding, no
pooling and a readout weight per (filter, position):

    x_[p] = (x_p, x_{p+1}, …, x_{p+q−1})   (indices mod d),      p = 1, …, d
    f(x)  = (1/√(m d)) Σ_r Σ_p v_{r,p} φ(w_rᵀ x_[p] / √q),       W ∈ ℝ^{m×q}, v ∈ ℝ^{m×d}
    L     = (1/2n) Σ_i (f(x_i) − y_i)²,   full-batch GD on W (first), v (second) or both.

Symmetric initialisation as the two-layer net: for r ≤ m/2, w_r ~ N(0, I_q), v_{r,p} ~ Unif{±1}
i.i.d.; w_{r+m/2} = w_r, v_{r+m/2,·} = −v_{r,·}, so f₀ ≡ 0. Tensors carry a leading seed axis K.

Gradients (Z_{i,p,r} = w_rᵀ x_{i,[p]}/√q, r_i = f(x_i) − y_i; checked against autograd in the tests):

    ∇_{v_{r,p}} L = (1/(n√(md))) Σ_i r_i φ(Z_{i,p,r})
    ∇_{w_r} L     = (1/(n√(md)√q)) Σ_{i,p} r_i v_{r,p} φ′(Z_{i,p,r}) x_{i,[p]}

Its linear model is :mod:`earlylin.linear.cnn1d`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from earlylin.activations import Activation
from earlylin.nets.two_layer import symmetric_init
from earlylin.runtime.rng import STREAM_CNN1D_SIGNS, stream


def patch_index(d: int, q: int, device: torch.device | None = None) -> torch.Tensor:
    """(d, q) indices of the circular patches: row p is (p, p+1, …, p+q−1) mod d."""
    return (torch.arange(d, device=device).unsqueeze(1) + torch.arange(q, device=device).unsqueeze(0)) % d


def patches(X: torch.Tensor, q: int) -> torch.Tensor:
    """Circular patches x_[p] of every signal: (..., n, d) → (..., n, d, q)."""
    return X[..., patch_index(X.shape[-1], q, X.device)]


def cnn1d_init(seed: int, m: int, q: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric initialisation: W (m, q) from :func:`earlylin.nets.two_layer.symmetric_init` (same stream) and
    v (m, d) with v_{r,p} ~ ±1 i.i.d. for r < m/2, v_{r+m/2,·} = −v_{r,·}; hence f₀ ≡ 0."""
    W, v0 = symmetric_init(seed, m, q)
    half = m // 2
    rng = stream(seed, STREAM_CNN1D_SIGNS)  # readout signs per position (own stream)
    v = rng.choice([-1.0, 1.0], size=(half, d))
    v[:, 0] = v0[:half]  # position 0 keeps the two-layer net's signs
    return W, np.concatenate([v, -v])


def cnn1d_readout(seed: int, m: int, q: int, d: int, outputs: int) -> np.ndarray:
    """The readout of a 1D CNN with ``outputs`` > 1 columns, (outputs, m, d): row 0 is :func:`cnn1d_init`'s v, each
    further row its own ±1 signs (``stream(seed, STREAM_CNN1D_SIGNS, c)``), mirrored the same way (f₀ ≡ 0)."""
    rows = [cnn1d_init(seed, m, q, d)[1]]
    for c in range(1, outputs):
        v = stream(seed, STREAM_CNN1D_SIGNS, c).choice([-1.0, 1.0], size=(m // 2, d))
        rows.append(np.concatenate([v, -v]))
    return np.stack(rows)


def preacts(W: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Z_{k,i,p,r} = w_rᵀ x_[p]/√q for patches P (K, n, d, q) and filters W (K, m, q) → (K, n, d, m)."""
    K, n, d, q = P.shape
    Z = torch.matmul(P.reshape(K, n * d, q), W.transpose(-1, -2) * (1.0 / math.sqrt(q)))
    return Z.reshape(K, n, d, W.shape[-2])


def readout(H: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(1/√(md)) Σ_{p,r} v_{r,p} H_{i,p,r} for H (K, n, d, m), v (K, m, d) → (K, n)."""
    K, n, d, m = H.shape
    flat = H.reshape(K, n, d * m)
    vt = v.transpose(-1, -2).reshape(K, d * m, 1)
    return torch.matmul(flat, vt).squeeze(-1) / math.sqrt(m * d)


def forward(act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Network outputs f(X), shape (K, n), for W (K, m, q), v (K, m, d), X (K, n, d); for a readout v of shape
    (K, C, m, d), (K, n, C)."""
    H = act.phi(preacts(W, patches(X, W.shape[-1])))
    if v.ndim == 4:
        return torch.stack([readout(H, v[:, c]) for c in range(v.shape[1])], dim=-1)
    return readout(H, v)


class Cnn1dStep:
    """Loss (K,), outputs (K, n) and explicit gradients ∇_W L, ∇_v L (module docstring) on a fixed
    batch. With ``grad_W`` off the hidden features φ(Z) never change and are computed once."""

    def __init__(self, act: Activation, X: torch.Tensor, y: torch.Tensor, q: int, grad_W: bool, grad_v: bool) -> None:
        self.act, self.y, self.grad_W, self.grad_v = act, y, grad_W, grad_v
        self.P = patches(X, q)
        self._H_fixed: torch.Tensor | None = None

    def __call__(
        self, W: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        K, n, d, q = self.P.shape
        m = W.shape[-2]
        if self.grad_W or self._H_fixed is None:
            Z = preacts(W, self.P)
            H = self.act.phi(Z)
            if not self.grad_W:
                self._H_fixed = H
        else:
            Z, H = None, self._H_fixed
        f = readout(H, v)
        r = f - self.y
        loss = 0.5 * torch.mean(r * r, dim=-1)
        scale = 1.0 / (n * math.sqrt(m * d))
        gv = None
        if self.grad_v:
            g = torch.matmul(r.unsqueeze(-2), H.reshape(K, n, d * m)).reshape(K, d, m)
            gv = g.transpose(-1, -2) * scale
        gW = None
        if self.grad_W:
            assert Z is not None
            A = self.act.dphi(Z) * v.transpose(-1, -2).unsqueeze(1) * r.view(K, n, 1, 1)
            gW = torch.matmul(A.reshape(K, n * d, m).transpose(-1, -2), self.P.reshape(K, n * d, q))
            gW = gW * (scale / math.sqrt(q))
        return loss, f, gW, gv
