"""A user's own data: train and test arrays, checked once, with the fingerprint that keys the cache."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

from earlylin.errors import ConfigError, arg
from earlylin.runtime.fingerprint import array_fingerprint

C = TypeVar("C", bound=Any)


@dataclass(frozen=True, eq=False)
class Arrays:
    """Your own data for :func:`earlylin.run` (``data=``) and :func:`earlylin.run_network`.

    Args:
        x_train: (n, d) training inputs, any float dtype (kept as float64), or image-shaped (n, C, H, W) for a
            convolutional network of :func:`earlylin.run_network` (d = C·H·W; the fitted linear model sees the
            flattened pixels). The theory's scale is ‖x‖² ≈ d (docs/theory.md §1).
        y_train: (n,) training targets, or (n, K) for K outputs (:func:`earlylin.run_network`, the built-in
            nets); integer class labels (n,) become one-hot rows with ``NetworkConfig(classes=K)``.
        x_test: test inputs, shaped as x_train.
        y_test: test targets, shaped as y_train.

    Example::

        import numpy as np, earlylin
        x = np.random.default_rng(0).standard_normal((300, 10))
        data = earlylin.Arrays(x[:200], np.sign(x[:200, 0]), x[200:], np.sign(x[200:, 0]))
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def __post_init__(self) -> None:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            try:
                arr = np.asarray(getattr(self, name), dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"{name}: not a numeric array ({err})") from err
            if not np.all(np.isfinite(arr)):
                raise ConfigError(f"{name}: holds NaN or inf values; give finite numbers")
            object.__setattr__(self, name, np.ascontiguousarray(arr))
        for x, y, split in ((self.x_train, self.y_train, "train"), (self.x_test, self.y_test, "test")):
            if x.ndim not in (2, 4) or y.ndim not in (1, 2) or x.shape[0] != y.shape[0] or x.shape[0] < 2:
                raise ConfigError(
                    f"{split} arrays of shapes x {x.shape}, y {y.shape}: need x of shape (n, d) or (n, C, H, W) and "
                    "y of shape (n,) or (n, K) with n ≥ 2"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:] or self.d < 2:
            raise ConfigError(
                f"x_train has points of shape {self.x_train.shape[1:]}, x_test {self.x_test.shape[1:]}: "
                "they must agree, with d ≥ 2 numbers per point"
            )
        if self.y_train.shape[1:] != self.y_test.shape[1:]:
            raise ConfigError(f"y_train has targets of shape {self.y_train.shape[1:]}, y_test "
                              f"{self.y_test.shape[1:]}: they must agree")

    @property
    def d(self) -> int:
        """Numbers per input point (C·H·W for images)."""
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def outputs(self) -> int:
        """K, the target columns (1 for targets of shape (n,))."""
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])

    @property
    def images(self) -> bool:
        return self.x_train.ndim == 4

    def flat(self, split: str) -> np.ndarray:
        """The inputs of ``split`` ("train" or "test") as (n, d)."""
        x = self.x_train if split == "train" else self.x_test
        return x.reshape(len(x), -1)

    @property
    def n(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def sized(self, cfg: C) -> C:
        """``cfg`` with d, n and n_test of these arrays. A config that set one of them (to a value other than
        its class default) disagreeing with the data is refused: the data are not silently adopted."""
        default = type(cfg)()
        for name, have in (("d", self.d), ("n", self.n), ("n_test", self.n_test)):
            given = getattr(cfg, name)
            if given != have and given != getattr(default, name):
                raise ConfigError(f"{arg(name, given)}: the data have {name} = {have}; leave {name} at its default "
                                  "(it is taken from the data) or give data of that size")
        return cfg.with_(d=self.d, n=self.n, n_test=self.n_test)  # type: ignore[attr-defined]

    @cached_property
    def fingerprint(self) -> str:
        return array_fingerprint(self.x_train, self.y_train, self.x_test, self.y_test)

    def tr_sigma2_over_d(self) -> float:
        """Tr(Σ̂²)/d of the empirical second moment Σ̂ = XᵀX/n of the training inputs (ν, docs/theory.md §2)."""
        x = self.flat("train")
        cov = x.T @ x / self.n
        return float(np.sum(cov * cov) / self.d)
