"""Activations φ, their derivatives φ′, and the Gaussian constants of docs/theory.md §2.

For g ~ N(0, 1) the linear models of docs/theory.md §3 use

    ζ  = E[φ′(g)]
    ϑ₀ = E[φ(g)],   ϑ₁ = E[g φ′(g)],   ϑ₂ = ½ E[g² φ″(g)] = ½ E[(g³ − 2g) φ′(g)]
    ν  = E[g φ′(g)] · √(Tr(Σ²)/d)          (Stein: E[g φ′(g)] = E[φ″(g)])

The φ′ forms avoid φ″, so piecewise-linear activations (ReLU, leaky ReLU) are covered without
delta functions. Expectations are computed by quadrature for *any* activation
(:func:`earlylin.quadrature.gaussian_expectation`): Gauss–Hermite for smooth φ, composite
Gauss–Legendre split at the kinks declared in the registry otherwise.

:func:`get_activation` takes a registered name, an :class:`Activation`, or any elementwise torch
callable φ, whose φ′ then comes from autograd (a smooth activation named ``custom:<__name__>``).

Closed forms (erf: ζ = 2/√(3π); ReLU: ζ = ½, ϑ₀ = ϑ₁ = 1/√(2π)) are in the tests, not here.

Example:
    >>> c = gaussian_constants(get_activation("erf"))
    >>> round(c.zeta, 6)
    0.651470
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache

import numpy as np
import torch

from earlylin.errors import ConfigError, arg
from earlylin.quadrature import gaussian_expectation

Fn = Callable[[torch.Tensor], torch.Tensor]

_SQRT_2 = math.sqrt(2.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_LOG_TWO_OVER_SQRT_PI = math.log(_TWO_OVER_SQRT_PI)
_LOG2_TWO_OVER_SQRT_PI = math.log2(_TWO_OVER_SQRT_PI)
_LOG2_E = math.log2(math.e)


@dataclass(frozen=True)
class Activation:
    """An activation φ with its derivative φ′ (torch, elementwise), the points where φ′ jumps and, for the
    piecewise-linear family φ(z) = max(z, a·z), its slope a (ReLU: 0; None for every other φ). The slope is
    resolved once, here, from the name or the caller's number: nothing parses it from the name again."""

    name: str
    phi: Fn
    dphi: Fn
    kinks: tuple[float, ...] = ()
    dphi_into: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    slope: float | None = None

    def phi_out(self, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """φ(z) written into the preallocated ``out`` (the trainer's hot path avoids allocations)."""
        if self.phi is torch.erf or self.phi is torch.tanh:
            return self.phi(z, out=out)
        if self.name == "relu":
            return torch.clamp(z, min=0.0, out=out)
        return out.copy_(self.phi(z))

    def dphi_out(self, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """φ′(z) written into the preallocated ``out``."""
        if self.dphi_into is not None:
            return self.dphi_into(z, out)
        return out.copy_(self.dphi(z))


def _erf_dphi(z: torch.Tensor) -> torch.Tensor:
    return _TWO_OVER_SQRT_PI * torch.exp(-z * z)


def _erf_dphi_into(z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    # (2/√π) e^{−z²} in two passes over memory instead of four. In float32, as 2^(log2(2/√π) − z² log2 e): torch's
    # CPU exp goes through MKL's vector maths, 2.7× slower than its own exp2 on an AMD EPYC (BENCHMARKS.md), and the
    # rounded exponent costs < 4e-6 relative (tests/test_activations.py). Float64 (the constants) keeps exp.
    if z.dtype == torch.float32:
        torch.addcmul(torch.full((), _LOG2_TWO_OVER_SQRT_PI, dtype=z.dtype, device=z.device), z, z, value=-_LOG2_E,
                      out=out)
        return out.exp2_()
    torch.addcmul(torch.full((), _LOG_TWO_OVER_SQRT_PI, dtype=z.dtype, device=z.device), z, z, value=-1.0, out=out)
    return out.exp_()


def _gelu_dphi(z: torch.Tensor) -> torch.Tensor:
    # φ(z) = z Φ(z)  ⇒  φ′(z) = Φ(z) + z·ϕ(z), ϕ the standard normal density
    return 0.5 * (1.0 + torch.erf(z / _SQRT_2)) + z * _INV_SQRT_2PI * torch.exp(-0.5 * z * z)


def _leaky(slope: float) -> Activation:
    def phi(z: torch.Tensor) -> torch.Tensor:
        return torch.where(z >= 0, z, slope * z)

    def dphi(z: torch.Tensor) -> torch.Tensor:
        return torch.where(z >= 0, torch.ones_like(z), torch.full_like(z, slope))

    def dphi_into(z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        # heaviside(z, 1) is 1 for z ≥ 0, else 0; then a + (1 − a)·H
        torch.heaviside(z, torch.ones((), dtype=z.dtype, device=z.device), out=out)
        return out if slope == 0.0 else out.mul_(1.0 - slope).add_(slope)

    name = "relu" if slope == 0.0 else f"leaky_relu:{slope:g}"
    return Activation(name, phi, dphi, kinks=(0.0,), dphi_into=dphi_into, slope=float(slope))


_SMOOTH: dict[str, Activation] = {
    "erf": Activation("erf", torch.erf, _erf_dphi, dphi_into=_erf_dphi_into),
    "tanh": Activation("tanh", torch.tanh, lambda z: 1.0 - torch.tanh(z) ** 2),
    "gelu": Activation("gelu", lambda z: z * 0.5 * (1.0 + torch.erf(z / _SQRT_2)), _gelu_dphi),
    "softplus": Activation("softplus", torch.nn.functional.softplus, torch.sigmoid),
}

DEFAULT_LEAKY_SLOPE = 0.1
ACTIVATION_NAMES = (*_SMOOTH, "relu", "leaky_relu[:slope]")


CUSTOM_PREFIX = "custom:"
# probe points for a user's φ: both signs, zero, and the range a unit Gaussian mostly covers
_PROBE = (-2.5, -1.0, -0.3, 0.0, 0.4, 1.1, 2.7, 4.0)


def get_activation(spec: str | Activation | Fn) -> Activation:
    """The activation ``spec`` names or is.

    Args:
        spec: a registered name (erf, tanh, gelu, softplus, relu, leaky_relu or leaky_relu:SLOPE); an
            :class:`Activation` (returned as it is); or a plain callable φ acting elementwise on torch
            tensors, wrapped as a smooth (no kinks) activation named ``custom:<φ.__name__>`` whose φ′
            comes from autograd (:func:`custom_activation`).

    Returns:
        The :class:`Activation`: φ, φ′, the kinks of φ′ and, for the piecewise-linear family, its slope.

    Raises:
        ConfigError: unknown name, a leaky slope outside [0, 1), a callable that is not elementwise
            (:func:`custom_activation`), or anything else.

    Example::

        import torch, earlylin
        relu = earlylin.get_activation("leaky_relu:0.2")
        softsign = earlylin.get_activation(lambda z: z / (1 + z.abs()))
        softsign.dphi(torch.zeros(1))   # 1: φ′ by autograd
    """
    if isinstance(spec, Activation):
        return spec
    if isinstance(spec, str):
        return _named(spec)
    if callable(spec):
        return custom_activation(spec)
    raise ConfigError(
        f"activation {spec!r}: give a name ({', '.join(ACTIVATION_NAMES)}), an Activation or an elementwise "
        "torch callable"
    )


def _named(spec: str) -> Activation:
    if spec in _SMOOTH:
        return _SMOOTH[spec]
    if spec == "relu":
        return _leaky(0.0)
    if spec == "leaky_relu" or spec.startswith("leaky_relu:"):
        text = spec.partition(":")[2] or str(DEFAULT_LEAKY_SLOPE)
        try:
            slope = float(text)
        except ValueError:
            slope = math.nan
        if not 0.0 <= slope < 1.0:
            raise ConfigError(
                f"{arg('activation', spec)}: the leaky ReLU slope must be a number in [0, 1), got {text!r}"
            )
        return _leaky(slope)
    raise ConfigError(
        f"{arg('activation', spec)} is unknown; valid: {', '.join(ACTIVATION_NAMES)}"
    )




def custom_activation(fn: Fn) -> Activation:
    """Wrap an elementwise torch callable φ as an :class:`Activation` named ``custom:<__name__>``.

    φ′(z) = ∂/∂z_i Σ_j φ(z_j), by ``torch.func.grad`` of the sum (equal to the elementwise derivative
    because φ acts elementwise). No kinks are declared, so the Gaussian constants and kernels use the
    smooth quadrature rules, as for erf or tanh. φ is checked on a few float64 probe points: it must
    return a finite float64 tensor of the input's shape, give each entry the value it gives that entry
    alone (elementwise), and be differentiable by autograd.

    Raises:
        ConfigError: naming φ, when any of these checks fails.
    """
    name = CUSTOM_PREFIX + getattr(fn, "__name__", type(fn).__name__)

    def dphi(z: torch.Tensor) -> torch.Tensor:
        return torch.func.grad(lambda t: fn(t).sum())(z)

    _check_elementwise(fn, dphi, name)
    return Activation(name, fn, dphi, kinks=breakpoints(fn) + breakpoints(dphi))


_SCAN = np.linspace(-12.0, 12.0, 24_001) + 1e-3 * (math.sqrt(2.0) - 1.0)  # no grid point on 0 or a round number
_JUMP_RATIO = 20.0  # a step of f this many times its neighbours' steps is a jump, not a steep slope
_BISECT = 60  # halvings of a grid step (1e-3): the jump located to ~1e-21, below float64's spacing near it


def breakpoints(f: Fn) -> tuple[float, ...]:
    """The points in [−12, 12] where the elementwise f jumps, located to float64 precision.

    f is scanned on a grid of step 1e-3; a grid step over which f changes by more than 20× the change over
    both neighbouring steps (and by > 1e-9) holds a jump, which bisection then locates. A step-like φ
    (sign, a threshold) gives its jumps; applied to φ′ it gives the kinks of a piecewise-linear φ. These
    become the quadrature's panel edges (:func:`earlylin.quadrature.gaussian_expectation`), where a
    Gauss–Hermite rule would be only O(N^{-1}) accurate. A smooth f gives none."""
    with torch.no_grad():
        z = torch.from_numpy(_SCAN)
        step = np.abs(np.diff(f(z).numpy()))
    left, right = np.r_[0.0, step[:-1]], np.r_[step[1:], 0.0]
    found = np.nonzero((step > 1e-9) & (step > _JUMP_RATIO * np.maximum(left, right)))[0]
    out: list[float] = []
    for i in found:
        lo, hi = float(_SCAN[i]), float(_SCAN[i + 1])
        f_lo, f_hi = (float(f(torch.tensor([t], dtype=torch.float64))[0]) for t in (lo, hi))
        for _ in range(_BISECT):
            mid = 0.5 * (lo + hi)
            f_mid = float(f(torch.tensor([mid], dtype=torch.float64))[0])
            if abs(f_mid - f_lo) >= abs(f_hi - f_mid):
                hi, f_hi = mid, f_mid
            else:
                lo, f_lo = mid, f_mid
        point = hi if abs(hi) > 1e-300 else 0.0
        out.append(0.0 if abs(point) < 1e-15 else point)
    return tuple(sorted(set(out)))


def _check_elementwise(fn: Fn, dphi: Fn, name: str) -> None:
    z = torch.tensor(_PROBE, dtype=torch.float64)
    try:
        outputs = {"z": fn(z), "z as 2×4": fn(z.reshape(2, -1)), "φ′": dphi(z)}
        outputs.update({f"z[{i}] alone": fn(z[i : i + 1]) for i in range(len(z))})
    except Exception as err:
        raise ConfigError(
            f"activation {name!r}: evaluating it (or its autograd derivative) on a float64 tensor of shape "
            f"{tuple(z.shape)} failed with {type(err).__name__}: {err}"
        ) from err
    shapes = {"z": z.shape, "z as 2×4": (2, len(z) // 2), "φ′": z.shape}
    for what, out in outputs.items():
        want = shapes.get(what, (1,))
        if not isinstance(out, torch.Tensor) or out.shape != want or out.dtype != z.dtype:
            got = (f"shape {tuple(out.shape)}, dtype {out.dtype}" if isinstance(out, torch.Tensor)
                   else type(out).__name__)
            raise ConfigError(
                f"activation {name!r} must act elementwise, returning a float64 tensor of the input's shape: "
                f"on {what} (shape {tuple(want)}) it returned {got}"
            )
        if not bool(torch.isfinite(out).all()):
            raise ConfigError(f"activation {name!r} returned non-finite values on {what} (z = {z.tolist()})")
    y = outputs["z"]
    alone = torch.cat([outputs[f"z[{i}] alone"] for i in range(len(z))])
    for what, other in (("each entry alone", alone), ("z as 2×4", outputs["z as 2×4"].reshape(-1))):
        if not torch.allclose(other, y, rtol=1e-10, atol=1e-12):
            raise ConfigError(
                f"activation {name!r} is not elementwise: φ(z) on z = {z.tolist()} differs from φ applied to "
                f"{what} (max difference {float((other - y).abs().max()):.3g})"
            )


STEIN_TOL = 1e-8  # |E[φ′] − E[gφ]| and |E[gφ′] − E[(g²−1)φ]| above this (× max(1, |·|)): Stein fails


@dataclass(frozen=True)
class GaussianConstants:
    """The Gaussian constants of one activation (docs/theory.md §2). ν depends on Σ: see :meth:`nu`, :meth:`nu2`.

    Those that enter through the first layer's gradient come from the derivative φ′ that training uses:
    ``zeta`` = E[φ′(g)], ``e_g_dphi`` = E[gφ′(g)]. Those that enter through φ itself (the second layer's kernel
    and the norm feature) are φ's Hermite coefficients: ``hermite1`` = E[gφ(g)], ``hermite2`` = E[(g²−1)φ(g)],
    ``theta0`` = E[φ(g)], ``theta1`` = E[(g²−1)φ(g)], ``theta2`` = ½E[(g⁴−5g²+2)φ(g)]. Stein's identities make
    the two routes agree (ζ = a₁, E[gφ′] = a₂) whenever φ′ is φ's derivative; for a step-like φ, whose φ′ is
    0 almost everywhere, they do not (:attr:`stein_holds`, :meth:`note`)."""

    zeta: float
    e_g_dphi: float
    theta0: float
    theta1: float
    theta2: float
    hermite1: float
    hermite2: float

    def nu(self, tr_sigma2_over_d: float = 1.0) -> float:
        """ν = E[gφ′(g)]·√(Tr(Σ²)/d), the first layer's constant; Tr(Σ²)/d = 1 for isotropic inputs."""
        return self.e_g_dphi * math.sqrt(tr_sigma2_over_d)

    def nu2(self, tr_sigma2_over_d: float = 1.0) -> float:
        """ν₂ = E[(g²−1)φ(g)]·√(Tr(Σ²)/d), the second layer's constant (equal to :meth:`nu` where Stein holds)."""
        return self.hermite2 * math.sqrt(tr_sigma2_over_d)

    @property
    def stein_gaps(self) -> tuple[float, float]:
        """(E[φ′] − E[gφ], E[gφ′] − E[(g²−1)φ]): both 0 (to quadrature accuracy) when φ′ is φ's derivative."""
        return self.zeta - self.hermite1, self.e_g_dphi - self.hermite2

    @property
    def stein_holds(self) -> bool:
        """Whether Stein's identities E[φ′(g)] = E[gφ(g)] and E[gφ′(g)] = E[(g²−1)φ(g)] hold (to ``STEIN_TOL``)."""
        pairs = ((self.zeta, self.hermite1), (self.e_g_dphi, self.hermite2))
        return all(abs(a - b) <= STEIN_TOL * max(1.0, abs(a), abs(b)) for a, b in pairs)

    def note(self, name: str) -> str | None:
        """One line saying what a failed Stein identity means and which constants are used; None if they hold."""
        if self.stein_holds:
            return None
        return (f"activation {name}: E[φ′(g)] = {self.zeta:.4g} ≠ E[gφ(g)] = {self.hermite1:.4g} (Stein fails: φ is "
                "step-like and its training derivative φ′ is 0 almost everywhere, so the first layer gets no "
                f"gradient through φ); the first layer's features use ζ = {self.zeta:.4g}, ν = E[gφ′] = "
                f"{self.e_g_dphi:.4g}; the second layer's use φ's Hermite coefficients E[gφ] = {self.hermite1:.4g}, "
                f"E[(g²−1)φ] = {self.hermite2:.4g}")

    def as_dict(self) -> dict[str, float | bool]:
        return {**asdict(self), "stein_holds": self.stein_holds}

    def used(self, name: str, tr_sigma2_over_d: float) -> dict[str, float | bool | str | None]:
        """Every constant a run's linear model uses, for its record: :meth:`as_dict`, ν and ν₂ at this Σ
        (``tr_sigma2_over_d`` = Tr(Σ²)/d), and the note of a failed Stein identity (:meth:`note`, or None)."""
        return {**self.as_dict(), "tr_sigma2_over_d": float(tr_sigma2_over_d), "nu": self.nu(tr_sigma2_over_d),
                "nu2": self.nu2(tr_sigma2_over_d), "note": self.note(name)}


def _compute_constants(act: Activation) -> GaussianConstants:
    """Every constant by quadrature (docs/theory.md §2): the φ′ route and φ's Hermite coefficients."""
    dphi, phi, k = act.dphi, act.phi, act.kinks
    e_h2_phi = gaussian_expectation(lambda g: (g * g - 1.0) * phi(g), k)
    return GaussianConstants(
        zeta=gaussian_expectation(dphi, k),
        e_g_dphi=gaussian_expectation(lambda g: g * dphi(g), k),
        theta0=gaussian_expectation(phi, k),
        theta1=e_h2_phi,
        theta2=0.5 * gaussian_expectation(lambda g: (g**4 - 5.0 * g * g + 2.0) * phi(g), k),
        hermite1=gaussian_expectation(lambda g: g * phi(g), k),
        hermite2=e_h2_phi,
    )


@cache
def _constants(name: str) -> GaussianConstants:
    return _compute_constants(get_activation(name))


def _registered(name: str) -> bool:
    return name in _SMOOTH or name == "relu" or name.startswith("leaky_relu:")


def gaussian_constants(act: Activation) -> GaussianConstants:
    """The Gaussian constants ζ = E φ′(g), ν = E φ″(g) and ϑ₀, ϑ₁, ϑ₂ of the norm feature q (docs/theory.md §2).

    Args:
        act: an :class:`Activation` (:func:`get_activation`); cached per name for a registered name,
            computed afresh from ``act`` itself for any other (``custom:`` activations).

    Returns:
        The :class:`GaussianConstants` (``zeta``, ``nu()``, ``theta0``, ``theta1``, ``theta2``, ``as_dict()``).

    Example::

        import earlylin
        c = earlylin.gaussian_constants(earlylin.get_activation("relu"))
        c.zeta   # 0.5: E[φ′(g)] for ReLU
    """
    return _constants(act.name) if _registered(act.name) else _compute_constants(act)
