"""Synthetic inputs x = Σ^{1/2} x̄ (Assumption 3.1) and the targets of Fig 1 and Fig 2.

Inputs. x̄ has i.i.d. N(0, 1) entries (or Rademacher ±1, also sub-Gaussian); Σ is diagonal with a
spectrum normalised to Tr Σ = d:

- ``iso``:   Σ = I (the paper's default);
- ``decay``: λ_i ∝ 1/(1 + 4(i − 1)/(d − 1)), i = 1..d: a smooth 5:1 decay, ‖Σ‖ → 4/ln 5 ≈ 2.49,
  so ‖Σ‖ = O(1) as the assumption asks, and Tr(Σ²)/d → 16/(5 ln²5) ≈ 1.24;
- ``twolevel``: half the coordinates at 1.5, half at 0.5.

A diagonal Σ loses no generality here: the teacher and the network weights are rotation-invariant.

Targets.
- ``teacher`` (Fig 1): a two-layer erf net of width k = 5, f*(x) = (1/√k) Σ_j a_j erf(u_jᵀx/√d),
  u_j ~ N(0, I_d), a_j ~ Unif{±1}; y = sign(f*(x)).
- ``norm`` (Fig 2, our choice — the paper's formula is unknown): y = ½ sign(f*(x)) + ½ tanh(s(x)),
  s(x) = (‖x‖² − d)/√(2 Tr Σ²), the standardised squared norm (s ≈ N(0, 1) for Gaussian x̄).
  Half of the target depends on ‖x‖ only, which a model linear in x cannot represent; |y| ≤ 1.

Every draw comes from ``numpy.random.default_rng([seed, stream])`` in float64 on the CPU, so a seed
gives the same data whatever the device, dtype or the other seeds of a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from earlylin.errors import ConfigError
from earlylin.rng import STREAM_TEACHER, STREAM_TEST, STREAM_TRAIN, stream

SIGMA_NAMES = ("iso", "decay", "twolevel")
TARGET_NAMES = ("teacher", "norm")
INPUT_NAMES = ("gaussian", "rademacher")

TargetFn = Callable[[np.ndarray], np.ndarray]


def sigma_spectrum(kind: str, d: int) -> np.ndarray:
    """Eigenvalues of Σ (diagonal), normalised to Tr Σ = d."""
    if kind == "iso":
        lam = np.ones(d)
    elif kind == "decay":
        lam = 1.0 / (1.0 + 4.0 * np.arange(d) / max(d - 1, 1))
    elif kind == "twolevel":
        lam = np.where(np.arange(d) < d // 2, 1.5, 0.5)
    else:
        raise ConfigError(f"--sigma {kind!r} is unknown; valid: {', '.join(SIGMA_NAMES)}")
    return lam * (d / lam.sum())


def tr_sigma2_over_d(spectrum: np.ndarray) -> float:
    """Tr(Σ²)/d, the factor in ν (THEORY §2)."""
    return float(np.sum(spectrum**2) / spectrum.size)


@dataclass(frozen=True)
class Teacher:
    """Two-layer erf teacher f*(x) = (1/√k) Σ_j a_j erf(u_jᵀx/√d)."""

    u: np.ndarray  # (k, d)
    a: np.ndarray  # (k,)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from scipy.special import erf

        d = x.shape[-1]
        return erf(x @ self.u.T / np.sqrt(d)) @ self.a / np.sqrt(self.a.size)


def make_teacher(seed: int, d: int, width: int = 5) -> Teacher:
    rng = stream(seed, STREAM_TEACHER)
    return Teacher(u=rng.standard_normal((width, d)), a=rng.choice([-1.0, 1.0], size=width))


def sample_inputs(
    rng: np.random.Generator, n: int, spectrum: np.ndarray, inputs: str = "gaussian"
) -> np.ndarray:
    """n inputs x = Σ^{1/2} x̄, shape (n, d)."""
    d = spectrum.size
    if inputs == "gaussian":
        xbar = rng.standard_normal((n, d))
    elif inputs == "rademacher":
        xbar = rng.choice([-1.0, 1.0], size=(n, d))
    else:
        raise ConfigError(f"--inputs {inputs!r} is unknown; valid: {', '.join(INPUT_NAMES)}")
    return xbar * np.sqrt(spectrum)


def target(x: np.ndarray, teacher: Teacher, kind: str, spectrum: np.ndarray) -> np.ndarray:
    """Labels for inputs x: ``teacher`` → sign(f*(x)); ``norm`` → ½ sign(f*) + ½ tanh(s(x))."""
    sign = np.where(teacher(x) >= 0.0, 1.0, -1.0)
    if kind == "teacher":
        return sign
    if kind == "norm":
        s = (np.sum(x * x, axis=-1) - spectrum.sum()) / np.sqrt(2.0 * np.sum(spectrum**2))
        return 0.5 * sign + 0.5 * np.tanh(s)
    raise ConfigError(f"--target {kind!r} is unknown; valid: {', '.join(TARGET_NAMES)}")


def user_target(fn: TargetFn, x: np.ndarray) -> np.ndarray:
    """Labels y = fn(x) of a user's target function: x (n, d) float64 → y (n,), finite."""
    name = getattr(fn, "__name__", repr(fn))
    try:
        y = np.asarray(fn(x.copy()), dtype=np.float64)
    except Exception as err:
        raise ConfigError(f"target function {name} failed on inputs of shape {x.shape}: {err}") from err
    if y.shape != (x.shape[0],):
        raise ConfigError(f"target function {name} returned shape {y.shape}; it must map (n, d) inputs to (n,)")
    if not np.all(np.isfinite(y)):
        raise ConfigError(f"target function {name} returned NaN or inf values")
    return y


@dataclass(frozen=True)
class Dataset:
    """Train and test arrays of one seed (float64, CPU)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    spectrum: np.ndarray


def make_dataset(
    seed: int,
    d: int,
    n: int,
    n_test: int,
    sigma: str = "iso",
    target_kind: str = "teacher",
    teacher_width: int = 5,
    inputs: str = "gaussian",
    target_fn: TargetFn | None = None,
) -> Dataset:
    """The synthetic train/test set of one seed; ``target_fn`` (a user's f: (n, d) → (n,)) replaces
    the named target when given."""
    spectrum = sigma_spectrum(sigma, d)
    x_tr = sample_inputs(stream(seed, STREAM_TRAIN), n, spectrum, inputs)
    x_te = sample_inputs(stream(seed, STREAM_TEST), n_test, spectrum, inputs)
    if target_fn is not None:
        return Dataset(x_tr, user_target(target_fn, x_tr), x_te, user_target(target_fn, x_te), spectrum)
    teacher = make_teacher(seed, d, teacher_width)
    return Dataset(
        x_train=x_tr,
        y_train=target(x_tr, teacher, target_kind, spectrum),
        x_test=x_te,
        y_test=target(x_te, teacher, target_kind, spectrum),
        spectrum=spectrum,
    )
