"""Run configuration of the two-layer verifier, its presets and its validation.

Defaults are the paper's Fig 1 setting (THEORY §5): erf, m = 256, both layers, d = 50,
n = 20,000 train and 2,000 test points, teacher of width 5, η = 1. The paper's step count is
unknown; the default 1,600 steps show the agreement window (T = 5·d·log d/η ≈ 980 steps at d = 50)
and the start of the escape (after T the net's train loss keeps falling below the linear model's
plateau, and its MSE to f^lin reaches its minimum near step 1,600), in ≈ 47 s on a 2-core CPU.
The MSE doubles from its value at T only near step 5,200 at d = 50: ``--steps 6000`` (≈ 2.5 min on
a 2-core CPU) shows that escape.
``--quick`` (:data:`QUICK`) shrinks n, n_test and the step count for a smoke run in seconds.

Every check raises :class:`~earlylin.errors.ConfigError` naming the flag, the value and the valid
range, before any work starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from earlylin.activations import get_activation
from earlylin.data.synthetic import INPUT_NAMES, SIGMA_NAMES, TARGET_NAMES
from earlylin.errors import ConfigError
from earlylin.linear import LAYERS

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DEVICES = ("auto", "cpu", "cuda")
WINDOW_C = 5.0  # T = c·d·log(d)/η: c = 5 gives ≈ 1,000 steps at d = 50, η = 1 (Fig 1a's window)
MAX_DIM = 100_000


@dataclass(frozen=True)
class RunControls:
    """Fields every run shares: the early window T = c·d·log(d)/η, the escape factor, the number of
    log-spaced recorded steps, the network's dtype and the device."""

    window_c: float = WINDOW_C
    escape_factor: float = 2.0
    n_log: int = 60
    dtype: str = "float32"
    device: str = "auto"


@dataclass(frozen=True)
class TwoLayerConfig(RunControls):
    """One two-layer run at one input dimension d (several seeds, batched)."""

    d: int = 50
    layers: str = "both"
    activation: str = "erf"
    width: int = 256
    n: int = 20_000
    n_test: int = 2_000
    teacher_width: int = 5
    target: str = "teacher"
    sigma: str = "iso"
    inputs: str = "gaussian"
    lr: float = 1.0
    steps: int = 1_600
    seeds: tuple[int, ...] = (0,)
    ntk_lin: bool = False  # also train the θ-linearised network (Lee et al. 2019) and record its MSE

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seeds"] = list(self.seeds)
        return out

    def validate(self) -> TwoLayerConfig:
        """Check every field; return self so that calls chain."""
        _int_range("--d", self.d, 2, MAX_DIM)
        _int_range("--width", self.width, 2, 10**7)
        if self.width % 2:
            raise ConfigError(
                f"--width {self.width} is odd; symmetric initialisation pairs neurons, so the width "
                "must be an even integer ≥ 2"
            )
        _int_range("--n", self.n, 2, 10**8)
        _int_range("--n-test", self.n_test, 2, 10**8)
        _int_range("--teacher-width", self.teacher_width, 1, 10**6)
        _int_range("--steps", self.steps, 1, 10**9)
        _int_range("--n-log", self.n_log, 2, 10**5)
        _positive("--lr", self.lr)
        _positive("--window-c", self.window_c)
        if not (math.isfinite(self.escape_factor) and self.escape_factor > 1.0):
            raise ConfigError(f"--escape-factor {self.escape_factor}: must be a finite number > 1")
        if not self.seeds:
            raise ConfigError("--seeds: give at least one seed (integers ≥ 0)")
        for s in self.seeds:
            _int_range("--seeds", s, 0, 2**63 - 1)
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds {list(self.seeds)}: seeds must be distinct")
        _choice("--layers", self.layers, LAYERS)
        _choice("--sigma", self.sigma, SIGMA_NAMES)
        _choice("--target", self.target, TARGET_NAMES)
        _choice("--inputs", self.inputs, INPUT_NAMES)
        _choice("--dtype", self.dtype, tuple(DTYPES))
        _choice("--device", self.device, DEVICES)
        get_activation(self.activation)
        return self

    def with_(self, **changes: Any) -> TwoLayerConfig:
        return replace(self, **changes)


QUICK = {"n": 2_000, "n_test": 500, "steps": 1_000}


@dataclass(frozen=True)
class Sweep:
    """Several input dimensions; with ``scale_alpha`` set, n and m grow as (d/d₀)^{1+α} from d₀ = ds[0]."""

    base: TwoLayerConfig
    ds: tuple[int, ...] = (50,)
    scale_alpha: float | None = None

    def configs(self) -> list[TwoLayerConfig]:
        if not self.ds:
            raise ConfigError("--d: give at least one dimension")
        if len(set(self.ds)) != len(self.ds):
            raise ConfigError(f"--d {list(self.ds)}: dimensions must be distinct")
        if self.scale_alpha is not None and not 0.0 <= self.scale_alpha < 1.0:
            raise ConfigError(f"--scale-alpha {self.scale_alpha}: must be in [0, 1)")
        out = []
        for d in self.ds:
            cfg = self.base.with_(d=d)
            if self.scale_alpha is not None:
                factor = (d / self.ds[0]) ** (1.0 + self.scale_alpha)
                width = 2 * max(1, round(self.base.width * factor / 2))
                cfg = cfg.with_(n=max(2, round(self.base.n * factor)), width=width)
            out.append(cfg.validate())
        return out


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    _choice("--device", name, DEVICES)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to torch; use --device cpu or auto")
    return torch.device(name)


def set_exact_fp32() -> None:
    """Turn TF32 off for matmul and cuDNN: fp32 means fp32 (THEORY §6). cuDNN autotuning is on: it
    picks the fastest exact-fp32 convolution algorithm for the CIFAR CNN (the choice can differ
    between processes, so CUDA convolutions are not bit-reproducible; recorded in every record)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.set_float32_matmul_precision("highest")


def _int_range(flag: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{flag} {value!r}: must be an integer in [{lo}, {hi}]")


def _positive(flag: str, value: Any) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{flag} {value!r}: must be a finite number > 0")


def _choice(flag: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{flag} {value!r} is unknown; valid: {', '.join(valid)}")
