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
- ``fast`` — :class:`earlylin.nets.blocked.BlockedTwoLayerStep`, the same equations over blocks of rows
  that stay in the CPU's cache, erf's work in one compiled pass per block (see :mod:`earlylin.nets.blocked`);
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
from earlylin.errors import ConfigError, arg
from earlylin.nets.blocked import BlockedTwoLayerStep as BlockedTwoLayerStep  # re-exported: nets.BlockedTwoLayerStep
from earlylin.nets.blocked import default_block_rows as default_block_rows
from earlylin.nets.blocked import row_blocks, run_blocks
from earlylin.runtime.rng import STREAM_INIT, stream

NET_STEPS = ("auto", "reference", "fast", "fused")  # the network step's implementations (resolve_step)


def symmetric_init(seed: int, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric initialisation (docs/theory.md §1): w_r ~ N(0, I_d), v_r ~ ±1 for r < m/2, then the mirror
    w_{r+m/2} = w_r, v_{r+m/2} = −v_r, so that f(·; W(0), v(0)) ≡ 0 exactly. m must be even."""
    rng = stream(seed, STREAM_INIT)
    half = m // 2
    w = rng.standard_normal((half, d))
    v = rng.choice([-1.0, 1.0], size=half)
    return np.concatenate([w, w]), np.concatenate([v, -v])


def symmetric_readout(seed: int, m: int, d: int, outputs: int) -> np.ndarray:
    """The readout of a net with ``outputs`` > 1 columns, (outputs, m): row 0 is :func:`symmetric_init`'s v, each
    further row its own ±1 draw (``stream(seed, STREAM_INIT, c)``), mirrored the same way, so f ≡ 0 at init."""
    rows = [symmetric_init(seed, m, d)[1]]
    for c in range(1, outputs):
        v = stream(seed, STREAM_INIT, c).choice([-1.0, 1.0], size=m // 2)
        rows.append(np.concatenate([v, -v]))
    return np.stack(rows)


def forward(act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Network outputs f(X), shape (K, n); for a readout v of shape (K, C, m), (K, n, C)."""
    m, d = W.shape[-2], W.shape[-1]
    Z = torch.matmul(X, W.transpose(-1, -2)) / math.sqrt(d)
    if v.ndim == 3:
        return torch.matmul(act.phi(Z), v.transpose(-1, -2)) / math.sqrt(m)
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


def resolve_step(step: str, device: torch.device | str) -> str:
    """The implementation ``step`` names on ``device``: ``auto`` → ``fast`` on a CPU (faster there, see
    BENCHMARKS.md), ``reference`` on CUDA (the fused kernel becomes the CUDA default only once it is
    measured faster there); any other name is itself.

    Raises:
        ConfigError: ``step`` not one of :data:`NET_STEPS`.
    """
    if step not in NET_STEPS:
        raise ConfigError(f"{arg('step', step)} is unknown; valid: {', '.join(NET_STEPS)}")
    if step == "auto":
        return "fast" if torch.device(device).type == "cpu" else "reference"
    return step


def check_step(step: str, activation: str, device: torch.device | str, dtype: str) -> None:
    """Refuse, before any work, a ``step`` that cannot run here (``fused`` without Triton or CUDA, in
    float64, or with an activation the kernels lack).

    Raises:
        ConfigError: naming the flag and the fix.
    """
    if resolve_step(step, device) != "fused":
        return
    from earlylin.nets import fused

    reason = fused.unavailable_reason(activation, device, dtype)
    if reason is not None:
        raise ConfigError(f"{arg('step', 'fused')}: {reason}; choose another step: auto, fast or reference")


def step_info(step: str, gemm: str | None = None, phi: str | None = None) -> dict[str, str]:
    """What a record carries about a resolved step: its name, the precision of its products (``ieee``: fp32
    products; ``tf32x3``: three TF32 tensor-core products per fp32 product) and, for ``fast``, who computes
    its products (``gemm``: ``torch`` or ``numpy``, :mod:`earlylin.nets.providers`) and its φ and φ′ (``phi``:
    ``native`` or ``torch``, :mod:`earlylin.nets.native`)."""
    info = {"impl": step, "matmul_precision": "tf32x3" if step == "fused" else "ieee",
            "fused": str(step == "fused").lower()}
    return info | {k: v for k, v in (("gemm", gemm), ("phi", phi)) if v is not None}


def fast_choices(step: object, m: int) -> dict[str, str]:
    """A ``fast`` step's machine choices at width m, ``{"gemm": ..., "phi": ...}`` (measured or built now if not
    yet known), for :func:`step_info`; empty for the other steps."""
    if not isinstance(step, BlockedTwoLayerStep):
        return {}
    return {"gemm": step.gemm(m), "phi": step.phi_impl()}


def forward_rows(act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor, *,
                 block_rows: int | None = None, threads: int | None = None) -> torch.Tensor:
    """:func:`forward` over blocks of rows, each block's ops single-threaded on a worker of the pool (the
    ``fast`` step's way, :class:`BlockedTwoLayerStep`): the same bits whatever torch's thread count. A CPU's
    threaded matrix products may split their sums by thread (seen for vᵀHᵀ at n = 100, m = 256 on an
    AVX-512 Xeon: 4e-6 apart with 1 and 2 threads), so the test outputs of the ``fast`` path are made this
    way. W (K, m, d), v (K, m), X (K, n, d) → (K, n)."""
    K, n, _ = X.shape
    rows, blocks = row_blocks(K, n, W.shape[-2], block_rows)
    out = X.new_empty((K, n))
    threads = threads or torch.get_num_threads()

    def work(block: tuple[int, int]) -> None:
        k, b = block
        start, stop = b * rows, min(n, (b + 1) * rows)
        out[k, start:stop] = forward(act, W[k: k + 1], v[k: k + 1], X[k: k + 1, start:stop])[0]

    run_blocks(work, blocks, threads)
    return out


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
