"""Deep FC and CNN networks of the CIFAR experiment (paper Fig 3), batched over seeds, f₀ ≡ 0.

NTK parameterisation: every weight is N(0, 1) at initialisation and the forward pass divides each
layer's pre-activation by √fan_in; no biases (docs/theory.md §5, the architectures of :mod:`earlylin.kernels`).

- FC:  h¹ = W¹x/√d, h^{l+1} = W^{l+1}φ(h^l)/√N, f = wᵀφ(h^L)/√N   (``depth`` hidden layers of width N)
- CNN: ``depth`` k×k convolutions (stride 1, 'SAME' zero padding, fan-in C_in·k²), each followed by
  φ, then flatten and a dense readout with fan-in C·H·W.

Symmetric initialisation for deep nets: a network is the difference of two copies,
f(x) = (g(x; θ_A) − g(x; θ_B))/√2 with θ_B = θ_A at initialisation, so f₀ ≡ 0 exactly and the tangent
kernel at initialisation is (Θ_A + Θ_B)/2 = Θ_A, the kernel of one copy. (Mirroring only the last
layer, as the two-layer net does, would cancel every earlier layer's gradient at initialisation.)
Both copies then train by the same GD. Parameters carry a leading (K, 2) axis: K seeds × 2 copies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from earlylin.activations import Activation
from earlylin.runtime.rng import STREAM_INIT, SUBSTREAM_DEEP, stream

ARCHS = ("fc", "cnn")


@dataclass(frozen=True)
class DeepSpec:
    """Architecture of the CIFAR nets: ``arch`` fc or cnn, ``depth`` hidden/conv layers, ``width``
    hidden units (FC) or channels (CNN), ``kernel_size`` (CNN), input shape (C, H, W), ``outputs`` the readout's
    outputs (1: f (K, n); C > 1: f (K, n, C), one readout row per output)."""

    arch: str = "fc"
    depth: int = 4
    width: int = 512
    kernel_size: int = 3
    in_shape: tuple[int, int, int] = (3, 8, 8)
    outputs: int = 1

    def shapes(self) -> list[tuple[int, ...]]:
        """Weight shapes of one copy, input layer first, readout last."""
        c, h, w = self.in_shape
        if self.arch == "fc":
            dims = [c * h * w] + [self.width] * self.depth
            return [(dims[i + 1], dims[i]) for i in range(self.depth)] + [self._readout(self.width)]
        k = self.kernel_size
        chans = [c] + [self.width] * self.depth
        return [(chans[i + 1], chans[i], k, k) for i in range(self.depth)] + [self._readout(self.width * h * w)]

    def _readout(self, fan_in: int) -> tuple[int, ...]:
        return (fan_in,) if self.outputs == 1 else (self.outputs, fan_in)


def init_params(spec: DeepSpec, seeds: list[int], dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    """Weights with shape (K, 2, *shape): N(0, 1) from each seed's init stream, copy B = copy A."""
    params = []
    rngs = [stream(s, STREAM_INIT, SUBSTREAM_DEEP) for s in seeds]
    for shape in spec.shapes():
        w = np.stack([rng.standard_normal(shape) for rng in rngs])[:, None]
        w = np.concatenate([w, w], axis=1)
        params.append(torch.from_numpy(w).to(device=device, dtype=dtype).requires_grad_(True))
    return params


def copies_forward(spec: DeepSpec, act: Activation, params: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """g(x; θ) of both copies, shape (K, 2, n) (or (K, 2, n, outputs)), for inputs X (K, n, C, H, W) or
    (K, n, C·H·W)."""
    K, n = X.shape[0], X.shape[1]
    if spec.arch == "fc":
        h = X.reshape(K, 1, n, -1)
        for W in params[:-1]:
            h = act.phi(torch.matmul(h, W.transpose(-1, -2)) / math.sqrt(W.shape[-1]))
        return _readout(h, params[-1])
    c, hgt, wid = spec.in_shape
    k = spec.kernel_size
    groups = 2 * K
    # (n, K·2·C, H, W): every (seed, copy) pair is a convolution group
    h = X.reshape(K, 1, n, c, hgt, wid).expand(K, 2, n, c, hgt, wid)
    h = h.permute(2, 0, 1, 3, 4, 5).reshape(n, groups * c, hgt, wid)
    for W in params[:-1]:
        c_out, c_in = W.shape[2], W.shape[3]
        weight = W.reshape(groups * c_out, c_in, k, k) / math.sqrt(c_in * k * k)
        h = act.phi(F.conv2d(h, weight, padding=k // 2, groups=groups))
    flat = h.reshape(n, K, 2, -1).permute(1, 2, 0, 3)  # (K, 2, n, C·H·W)
    return _readout(flat, params[-1])


def _readout(h: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
    """h (K, 2, n, F) through the readout (K, 2, F) → (K, 2, n), or (K, 2, C, F) → (K, 2, n, C)."""
    if w_out.ndim == 3:
        return torch.matmul(h, w_out.unsqueeze(-1)).squeeze(-1) / math.sqrt(w_out.shape[-1])
    return torch.matmul(h, w_out.transpose(-1, -2)) / math.sqrt(w_out.shape[-1])


def forward(spec: DeepSpec, act: Activation, params: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """f(x) = (g_A(x) − g_B(x))/√2, shape (K, n) (or (K, n, outputs))."""
    g = copies_forward(spec, act, params, X)
    return (g[:, 0] - g[:, 1]) / math.sqrt(2.0)
