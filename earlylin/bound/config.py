"""Configuration of a kernel-bound sweep (docs/theory.md §4): the grid d × n × m and its validation.

The one concern here is :class:`KernelBoundConfig`: which points (d, n, m) are measured, with

    n = n_scale · d^{1+α}   (or fixed ``ns``),   m = 2·round(width_scale · d^{1+α_m} / 2)   (or fixed ``widths``),

α_m defaulting to α, and a check of every field (:meth:`KernelBoundConfig.validate`) that names the
flag, the value and the valid range, including an estimate of the peak memory of each point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from earlylin.bound.lanczos import METHODS
from earlylin.bound.operator import BLOCKS, CACHE_ELEMENTS, CHUNK_ELEMENTS, VARIANTS
from earlylin.errors import ConfigError, config_class

__all__ = ["DEFAULT_ALPHA", "DEFAULT_N_SCALE", "DEFAULT_WIDTH_SCALE", "MAX_DIM", "KernelBoundConfig"]

DEFAULT_N_SCALE = 2.0
DEFAULT_ALPHA = 0.5
DEFAULT_WIDTH_SCALE = 2.0
MAX_DIM = 100_000


@config_class
class KernelBoundConfig:
    """A grid d × n × m of kernel-bound measurements, each over several seeds (batched).

    n is either fixed (``ns``, one or more values) or ``n_scale``·d^{1+alpha} (rounded); m likewise
    (``widths``, even) or ``width_scale``·d^{1+width_alpha} rounded to an even integer, with
    ``width_alpha`` defaulting to ``alpha``. Unset rules default to n = 2·d^{1.5}, m = 2·d^{1.5}.
    """

    ds: tuple[int, ...] = (25, 50, 100)
    ns: tuple[int, ...] | None = None
    n_scale: float | None = None
    alpha: float | None = None
    widths: tuple[int, ...] | None = None
    width_scale: float | None = None
    width_alpha: float | None = None
    activation: str = "erf"
    sigma: str = "iso"
    inputs: str = "gaussian"
    blocks: tuple[str, ...] = BLOCKS
    seeds: tuple[int, ...] = (0, 1)
    method: str = "lanczos"
    tol: float = 1e-6
    max_iter: int = 300
    chunk: int | None = None
    device: str = "auto"
    max_gb: float = 8.0

    def n_rule(self) -> tuple[float, float]:
        return (self.n_scale or DEFAULT_N_SCALE, DEFAULT_ALPHA if self.alpha is None else self.alpha)

    def m_rule(self) -> tuple[float, float]:
        a = self.width_alpha if self.width_alpha is not None else self.n_rule()[1]
        return (self.width_scale or DEFAULT_WIDTH_SCALE, a)

    def n_values(self, d: int) -> list[int]:
        if self.ns is not None:
            return list(self.ns)
        c, a = self.n_rule()
        return [round(c * d ** (1.0 + a))]

    def m_values(self, d: int) -> list[int]:
        if self.widths is not None:
            return list(self.widths)
        c, a = self.m_rule()
        return [2 * round(c * d ** (1.0 + a) / 2)]

    def grid(self) -> list[tuple[int, int, int]]:
        """All (d, n, m) points, d-major."""
        return [(d, n, m) for d in self.ds for n in self.n_values(d) for m in self.m_values(d)]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()
        }
        out["n_rule"] = None if self.ns is not None else {"scale": self.n_rule()[0], "alpha": self.n_rule()[1]}
        out["m_rule"] = None if self.widths is not None else {"scale": self.m_rule()[0], "alpha": self.m_rule()[1]}
        out["grid"] = [list(p) for p in self.grid()]
        return out

    def memory_bytes(self, d: int, n: int, m: int) -> int:
        """A generous estimate of the peak float64 memory of one grid point."""
        K, S = len(self.seeds), len(VARIANTS)
        m_sum = m // 2  # symmetric init: the mirrored half is dropped
        cache = 2 * K * n * m_sum if 2 * K * n * m_sum <= CACHE_ELEMENTS else 0
        krylov = K * S * (min(self.max_iter, n) + 2) * n
        elems = 4 * K * n * d + S * K * n * d + cache + 4 * CHUNK_ELEMENTS + krylov + K * n * (2 * d + 6)
        return 8 * elems

    def validate(self) -> KernelBoundConfig:
        """Check every field; raise :class:`ConfigError` naming the flag, value and valid range."""
        from earlylin.activations import get_activation
        from earlylin.data.synthetic import INPUT_NAMES, SIGMA_NAMES
        from earlylin.errors import choice, int_range, positive
        from earlylin.runtime.devices import DEVICES

        if not self.ds:
            raise ConfigError("--d: give at least one dimension (integers in [2, 100000])")
        for d in self.ds:
            int_range("d", d, 2, MAX_DIM)
        _distinct("--d", self.ds)
        if self.ns is not None:
            if not self.ns:
                raise ConfigError("--n: give at least one value (integers in [2, 100000000])")
            for n in self.ns:
                int_range("n", n, 2, 10**8)
            _distinct("--n", self.ns)
            if self.n_scale is not None:
                raise ConfigError(f"--n {list(self.ns)} and --n-scale {self.n_scale}: give one or the other")
        if self.widths is not None:
            if not self.widths:
                raise ConfigError("--width: give at least one value (even integers in [2, 10000000])")
            for m in self.widths:
                int_range("width", m, 2, 10**7)
                if m % 2:
                    raise ConfigError(
                        f"--width {m} is odd; symmetric initialisation pairs neurons, so the width must be an "
                        "even integer in [2, 10000000]"
                    )
            _distinct("--width", self.widths)
            for flag, val in (("--width-scale", self.width_scale), ("--width-alpha", self.width_alpha)):
                if val is not None:
                    raise ConfigError(f"--width {list(self.widths)} and {flag} {val}: give one or the other")
        if self.ns is not None and self.widths is not None and self.alpha is not None:
            raise ConfigError(f"--alpha {self.alpha}: has no effect with fixed --n and --width; leave it out")
        for field, val in (("n_scale", self.n_scale), ("width_scale", self.width_scale)):
            if val is not None:
                positive(field, val)
        for flag, val in (("--alpha", self.alpha), ("--width-alpha", self.width_alpha)):
            if val is not None and (isinstance(val, bool) or not isinstance(val, int | float)
                                    or not math.isfinite(val) or not 0.0 <= val <= 2.0):
                raise ConfigError(f"{flag} {val!r}: must be a number in [0, 2] (the theorem asks α ∈ (0, 1/4))")
        get_activation(self.activation)
        choice("sigma", self.sigma, SIGMA_NAMES)
        choice("inputs", self.inputs, INPUT_NAMES)
        if not self.blocks:
            raise ConfigError(f"--blocks: give at least one of {', '.join(BLOCKS)}")
        for b in self.blocks:
            choice("blocks", b, BLOCKS)
        _distinct("--blocks", self.blocks)
        if not self.seeds:
            raise ConfigError("--seeds: give at least one seed (integers ≥ 0)")
        for s in self.seeds:
            int_range("seeds", s, 0, 2**63 - 1)
        _distinct("--seeds", self.seeds)
        choice("method", self.method, METHODS)
        if isinstance(self.tol, bool) or not isinstance(self.tol, int | float) or not 1e-14 <= self.tol <= 0.1:
            raise ConfigError(f"--tol {self.tol!r}: must be a number in [1e-14, 0.1]")
        int_range("max_iter", self.max_iter, 2, 100_000)
        if self.chunk is not None:
            int_range("chunk", self.chunk, 1, 10**7)
        choice("device", self.device, DEVICES)
        positive("max_gb", self.max_gb)
        for d in self.ds:
            n_flag = "--n" if self.ns is not None else "--n-scale/--alpha"
            m_flag = "--width" if self.widths is not None else "--width-scale/--width-alpha"
            for n in self.n_values(d):
                if not 2 <= n <= 10**8:
                    raise ConfigError(f"{n_flag}: n = {n} at d = {d}; n must be an integer in [2, 100000000]")
            for m in self.m_values(d):
                if not 2 <= m <= 10**7:
                    raise ConfigError(f"{m_flag}: m = {m} at d = {d}; m must be an even integer in [2, 10000000]")
        for d, n, m in self.grid():
            gb = self.memory_bytes(d, n, m) / 2**30
            if gb > self.max_gb:
                raise ConfigError(
                    f"--max-gb {self.max_gb:g}: the point d={d}, n={n}, m={m} needs ≈ {gb:.1f} GB "
                    "(Krylov basis 2·seeds·min(max_iter, n)·n floats); lower --max-iter, n or the seed count, "
                    "or raise --max-gb"
                )
        return self


def _distinct(flag: str, values: Sequence[Any]) -> None:
    if len(set(values)) != len(values):
        raise ConfigError(f"{flag} {list(values)}: values must be distinct")

