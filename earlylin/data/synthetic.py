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
  Its mean is ≈ 0, so the constant features carry almost no signal (README.md, section Fig 2).
- ``relu_teacher`` (Fig 2, alternative): a positively homogeneous two-layer ReLU teacher,
  f*(x) = (1/√k) Σ_j a_j relu(u_jᵀx/√d), f*(cx) = c·f*(x) for c > 0; u_j ~ N(0, I_d) (the same u_j
  as ``teacher``), a_j ~ Unif{0.5, 1.5} — all positive, so the mean E f* = Σ a_j σ_j/√(2πk) is of
  the order of the fluctuations and not ≈ 0, and relu(z) = z/2 + |z|/2 puts the mean and the
  norm dependence on exactly the constant and norm features of f^lin. y = min(f*(x)/B, 1) with
  the fixed scale B = E f* + 5·std f*, computed in closed form (arc-cosine kernel) for Gaussian
  x = Σ^{1/2}x̄ from the teacher, Σ and d alone (the same for train and test); y ∈ [0, 1].
- ``radial``: a function of ‖x‖ alone, y = tanh(s(x)) with the s(x) of ``norm``; |y| < 1.

Every draw comes from ``numpy.random.default_rng([seed, stream])`` in float64 on the CPU, so a seed
gives the same data whatever the device, dtype or the other seeds of a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from earlylin.errors import ConfigError, arg
from earlylin.runtime.rng import STREAM_TEACHER, STREAM_TEST, STREAM_TRAIN, stream

SIGMA_NAMES = ("iso", "decay", "twolevel")
TARGET_NAMES = ("teacher", "norm", "relu_teacher", "radial")
LABEL_TARGETS = ("teacher",)  # the built-in targets whose values are labels ±1 (what cross-entropy takes)
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
        raise ConfigError(f"{arg('sigma', kind)} is unknown; valid: {', '.join(SIGMA_NAMES)}")
    return lam * (d / lam.sum())


def tr_sigma2_over_d(spectrum: np.ndarray) -> float:
    """Tr(Σ²)/d, the factor in ν (docs/theory.md §2)."""
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


@dataclass(frozen=True)
class ReluTeacher:
    """Positively homogeneous ReLU teacher f*(x) = (1/√k) Σ_j a_j relu(u_jᵀx/√d) (unscaled)."""

    u: np.ndarray  # (k, d)
    a: np.ndarray  # (k,), all > 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        d = x.shape[-1]
        return np.maximum(x @ self.u.T / np.sqrt(d), 0.0) @ self.a / np.sqrt(self.a.size)

    def moments(self, spectrum: np.ndarray) -> tuple[float, float]:
        """(E f*, std f*) for Gaussian x = Σ^{1/2}x̄, in closed form: g_j = u_jᵀx/√d is N(0, C) with
        C = U Σ Uᵀ/d, E relu(g_i) = σ_i/√(2π), E relu(g_i)relu(g_j) = σ_iσ_j (sin θ + (π − θ) cos θ)/(2π),
        cos θ = C_ij/(σ_iσ_j) (the order-1 arc-cosine kernel)."""
        k, d = self.u.shape
        C = (self.u * spectrum) @ self.u.T / d
        sig = np.sqrt(np.diag(C))
        cos = np.clip(C / np.outer(sig, sig), -1.0, 1.0)
        th = np.arccos(cos)
        second = np.outer(sig, sig) * (np.sin(th) + (np.pi - th) * cos) / (2 * np.pi)
        mean = float(self.a @ sig / np.sqrt(2 * np.pi * k))
        var = float(self.a @ second @ self.a / k) - mean**2
        return mean, float(np.sqrt(max(var, 0.0)))

    def scale(self, spectrum: np.ndarray) -> float:
        """The fixed scale B = E f* + 5·std f* (y = min(f*/B, 1))."""
        mean, std = self.moments(spectrum)
        return mean + RELU_TEACHER_Z * std


RELU_TEACHER_Z = 5.0  # B = mean + 5 std: f* > B on ≈ 2e-4 of Gaussian inputs (d = 50), where y is clipped to 1


def make_relu_teacher(seed: int, d: int, width: int = 5) -> ReluTeacher:
    """The u_j of :func:`make_teacher` (same stream, same draw order), a_j ~ Unif{0.5, 1.5}."""
    rng = stream(seed, STREAM_TEACHER)
    u = rng.standard_normal((width, d))
    return ReluTeacher(u=u, a=rng.choice([0.5, 1.5], size=width))


def standardised_sq_norm(x: np.ndarray, spectrum: np.ndarray) -> np.ndarray:
    """s(x) = (‖x‖² − Tr Σ)/√(2 Tr Σ²): mean 0, variance 1 for Gaussian x̄."""
    return (np.sum(x * x, axis=-1) - spectrum.sum()) / np.sqrt(2.0 * np.sum(spectrum**2))


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
        raise ConfigError(f"{arg('inputs', inputs)} is unknown; valid: {', '.join(INPUT_NAMES)}")
    return xbar * np.sqrt(spectrum)


def target(x: np.ndarray, teacher: Teacher | ReluTeacher, kind: str, spectrum: np.ndarray) -> np.ndarray:
    """Labels for inputs x: ``teacher`` → sign(f*(x)); ``norm`` → ½ sign(f*) + ½ tanh(s(x));
    ``relu_teacher`` (``teacher`` a :class:`ReluTeacher`) → min(f*(x)/B, 1); ``radial`` → tanh(s(x))."""
    if kind == "relu_teacher":
        if not isinstance(teacher, ReluTeacher):
            raise ConfigError("target relu_teacher needs a ReluTeacher (make_relu_teacher)")
        return np.minimum(teacher(x) / teacher.scale(spectrum), 1.0)
    if kind == "radial":
        return np.tanh(standardised_sq_norm(x, spectrum))
    sign = np.where(teacher(x) >= 0.0, 1.0, -1.0)
    if kind == "teacher":
        return sign
    if kind == "norm":
        return 0.5 * sign + 0.5 * np.tanh(standardised_sq_norm(x, spectrum))
    raise ConfigError(f"{arg('target', kind)} is unknown; valid: {', '.join(TARGET_NAMES)}")


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
    maker = make_relu_teacher if target_kind == "relu_teacher" else make_teacher
    teacher = maker(seed, d, teacher_width)
    return Dataset(
        x_train=x_tr,
        y_train=target(x_tr, teacher, target_kind, spectrum),
        x_test=x_te,
        y_test=target(x_te, teacher, target_kind, spectrum),
        spectrum=spectrum,
    )
