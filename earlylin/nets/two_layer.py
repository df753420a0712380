"""The two-layer network of docs/theory.md §1, batched over seeds, with its analytic gradients.

    f(x; W, v) = (1/√m) Σ_r v_r φ(w_rᵀx/√d),     L = (1/2n) Σ_i (f(x_i) − y_i)²

Every tensor carries a leading seed axis K: W (K, m, d), v (K, m), X (K, n, d), y (K, n), so that
K independent runs are one batched computation. Gradients (checked against autograd in the tests):

    Z = X Wᵀ/√d,  r = f − y,
    ∇_v L = φ(Z)ᵀ r / (n√m),      ∇_W L = diag(v) · φ′(Z)ᵀ (r ⊙ X) / (n√m√d).

The second form of ∇_W scales the n×d input rows by r instead of the n×m matrix φ′(Z), and
:class:`TwoLayerStep` keeps the three n×m buffers (Z, φ(Z), φ′(Z)) allocated across steps: on a CPU
the allocation of fresh 20 MB buffers every step costs as much as the arithmetic.

Three implementations of one step, chosen by ``TwoLayerConfig.step`` (:func:`make_step`):

- ``reference`` — :class:`TwoLayerStep`, whole n×m matrices (the path the golden records were made with);
- ``fast`` — :class:`BlockedTwoLayerStep`, the same equations over blocks of rows: per block of B rows,
  Z_B = X_B Wᵀ/√d, φ(Z_B), f_B, r_B, then its contributions to ∇_v and ∇_W, so that the n×m matrices
  are never formed and each B×m tile stays in the CPU's cache (fp32 products; the sums over blocks
  change only the order of the fp32 additions);
- ``fused`` — :class:`earlylin.nets.fused.FusedTwoLayerStep`, two Triton kernels (CUDA) with
  split-precision "3×TF32" tensor-core products.

``auto`` takes ``fast`` on a CPU and ``reference`` on CUDA (:func:`resolve_step`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from earlylin.activations import Activation
from earlylin.config import NET_STEPS
from earlylin.errors import ConfigError
from earlylin.rng import STREAM_INIT, stream


def symmetric_init(seed: int, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric initialisation (docs/theory.md §1): w_r ~ N(0, I_d), v_r ~ ±1 for r < m/2, then the mirror
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


def default_block_rows(m: int) -> int:
    """Rows per block of :class:`BlockedTwoLayerStep`: a B×m fp32 tile of about 1 MiB (B = 1,024 at
    m = 256), so that the block's Z/φ′(Z) and φ(Z) tiles stay in a core's L2 cache; at least 64."""
    return max(64, (1 << 20) // (4 * max(m, 1)))


class BlockedTwoLayerStep:
    """The step of :class:`TwoLayerStep` over blocks of ``block_rows`` rows (the ``fast`` CPU path).

    Per seed k and block B of rows: Z_B = X_B (W/√d)ᵀ, H_B = φ(Z_B), f_B = H_B v/√m, r_B = f_B − y_B;
    ∇_v += H_Bᵀ r_B and (∇_W)ᵀ += (r_B ⊙ X_B)ᵀ φ′(Z_B), both accumulated in fp32 in block order (a fixed
    order: the result is reproducible run to run), scaled once at the end as in :class:`TwoLayerStep`.
    φ′(Z_B) overwrites Z_B in place. Two B×m buffers and one B×d buffer are kept across calls. X may
    be (n, d) or batched (K, n, d).
    """

    def __init__(self, act: Activation, X: torch.Tensor, y: torch.Tensor, grad_W: bool, grad_v: bool,
                 *, block_rows: int | None = None) -> None:
        if block_rows is not None and block_rows < 1:
            raise ConfigError(f"block_rows {block_rows}: must be an integer ≥ 1")
        self.act, self.grad_W, self.grad_v = act, grad_W, grad_v
        self._batched = X.dim() == 3
        self.X = (X if self._batched else X.unsqueeze(0)).contiguous()
        self.y = (y if self._batched else y.unsqueeze(0)).contiguous()
        self.block_rows = block_rows
        self._buffers: tuple[torch.Tensor, ...] | None = None

    def _get_buffers(self, rows: int, m: int) -> tuple[torch.Tensor, ...]:
        d = self.X.shape[-1]
        if self._buffers is None or self._buffers[0].shape != (rows, m):
            new = self.X.new_empty
            self._buffers = (new((rows, m)), new((rows, m)), new((rows, d)))
        return self._buffers

    def __call__(
        self, W: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        X, y = self.X, self.y
        if not self._batched:
            W, v = W.unsqueeze(0), v.unsqueeze(0)
        K, n, d = X.shape
        m = W.shape[-2]
        rows = min(n, self.block_rows or default_block_rows(m))
        Zb, Hb, RXb = self._get_buffers(rows, m)
        Wt = (W * (1.0 / math.sqrt(d))).transpose(-1, -2).contiguous()  # (K, d, m)
        f, r = X.new_empty((K, n)), X.new_empty((K, n))
        gv = X.new_zeros((K, m)) if self.grad_v else None
        gWt = X.new_zeros((K, d, m)) if self.grad_W else None
        inv_sqrt_m = 1.0 / math.sqrt(m)
        for k in range(K):
            for start in range(0, n, rows):
                stop = min(n, start + rows)
                b = stop - start
                Xb, Z, H = X[k, start:stop], Zb[:b], Hb[:b]
                torch.mm(Xb, Wt[k], out=Z)
                self.act.phi_out(Z, H)
                fb, rb = f[k, start:stop], r[k, start:stop]
                torch.mv(H, v[k], out=fb).mul_(inv_sqrt_m)
                torch.sub(fb, y[k, start:stop], out=rb)
                if gv is not None:
                    gv[k].addmv_(H.transpose(0, 1), rb)
                if gWt is not None:
                    G = self.act.dphi_out(Z, Z)  # φ′(Z_B) in place of Z_B
                    rX = torch.mul(Xb, rb.unsqueeze(-1), out=RXb[:b])
                    gWt[k].addmm_(rX.transpose(0, 1), G)
        loss = 0.5 * torch.mean(r * r, dim=-1)
        scale = 1.0 / (n * math.sqrt(m))
        if gv is not None:
            gv.mul_(scale)
        gW = None
        if gWt is not None:
            gW = gWt.transpose(-1, -2) * (v * (scale / math.sqrt(d))).unsqueeze(-1)
        if not self._batched:
            loss, f = loss[0], f[0]
            gW = None if gW is None else gW[0]
            gv = None if gv is None else gv[0]
        return loss, f, gW, gv


def resolve_step(step: str, device: torch.device | str) -> str:
    """The implementation ``step`` names on ``device``: ``auto`` → ``fast`` on a CPU (faster there, see
    BENCHMARKS.md), ``reference`` on CUDA (the fused kernel becomes the CUDA default only once it is
    measured faster there); any other name is itself.

    Raises:
        ConfigError: ``step`` not one of :data:`earlylin.config.NET_STEPS`.
    """
    if step not in NET_STEPS:
        raise ConfigError(f"--step {step!r} is unknown; valid: {', '.join(NET_STEPS)}")
    if step == "auto":
        return "fast" if torch.device(device).type == "cpu" else "reference"
    return step


def step_info(step: str) -> dict[str, str]:
    """What a record carries about a resolved step: its name and the precision of its products
    (``ieee``: fp32 products; ``tf32x3``: three TF32 tensor-core products per fp32 product)."""
    return {"impl": step, "matmul_precision": "tf32x3" if step == "fused" else "ieee",
            "fused": str(step == "fused").lower()}


def make_step(step: str, act: Activation, X: torch.Tensor, y: torch.Tensor, grad_W: bool,
              grad_v: bool) -> TwoLayerStep | BlockedTwoLayerStep | Any:
    """The step function of the resolved ``step`` (``reference``, ``fast`` or ``fused``) on X's device.

    Raises:
        ConfigError: an unknown name, or ``fused`` where it cannot run (no Triton, no CUDA, a dtype other
            than float32, an activation the kernel lacks) — before any work.
    """
    name = resolve_step(step, X.device)
    if name == "reference":
        return TwoLayerStep(act, X, y, grad_W, grad_v)
    if name == "fast":
        return BlockedTwoLayerStep(act, X, y, grad_W, grad_v)
    from earlylin.nets import fused  # Triton is imported only when the fused step is asked for

    return fused.FusedTwoLayerStep(act, X, y, grad_W, grad_v)
