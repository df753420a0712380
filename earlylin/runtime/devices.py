"""Devices and precision: which torch device a name means, and fp32 that is fp32 (docs/theory.md §6)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from earlylin.errors import ConfigError, arg, choice

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    choice("device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{arg('device', 'cuda')}: no CUDA device is visible to torch; use "
                          f"{arg('device', 'cpu')} or {arg('device', 'auto')}")
    return torch.device(name)


# what fp32 means in every run (docs/theory.md §6): the settings exact_fp32() applies, and what records record
EXACT_FP32 = {"tf32_matmul": False, "tf32_cudnn": False, "float32_matmul_precision": "highest",
              "cudnn_benchmark": True}


@contextmanager
def exact_fp32() -> Iterator[None]:
    """Inside the block, :data:`EXACT_FP32`: TF32 off for matmul and cuDNN, so that fp32 means fp32
    (docs/theory.md §6), and cuDNN autotuning on, which picks the fastest exact-fp32 convolution algorithm
    for the CIFAR CNN (the choice can differ between processes, so CUDA convolutions are not
    bit-reproducible; recorded in every record). torch's previous settings are restored after the block."""
    cuda, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (cuda.allow_tf32, cudnn.allow_tf32, cudnn.benchmark, torch.get_float32_matmul_precision())
    cuda.allow_tf32 = EXACT_FP32["tf32_matmul"]
    cudnn.allow_tf32 = EXACT_FP32["tf32_cudnn"]
    cudnn.benchmark = EXACT_FP32["cudnn_benchmark"]
    torch.set_float32_matmul_precision(EXACT_FP32["float32_matmul_precision"])
    try:
        yield
    finally:
        cuda.allow_tf32, cudnn.allow_tf32, cudnn.benchmark = saved[:3]
        torch.set_float32_matmul_precision(saved[3])
