"""Devices and precision: which torch device a name means, and fp32 that is fp32 (docs/theory.md §6)."""

from __future__ import annotations

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


def set_exact_fp32() -> None:
    """Turn TF32 off for matmul and cuDNN: fp32 means fp32 (docs/theory.md §6). cuDNN autotuning is on: it
    picks the fastest exact-fp32 convolution algorithm for the CIFAR CNN (the choice can differ
    between processes, so CUDA convolutions are not bit-reproducible; recorded in every record)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("highest")
