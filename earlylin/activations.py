"""Activations φ, their derivatives φ′, and the Gaussian constants of THEORY §2.

For g ~ N(0, 1) the linear models of THEORY §3 use

    ζ  = E[φ′(g)]
    ϑ₀ = E[φ(g)],   ϑ₁ = E[g φ′(g)],   ϑ₂ = ½ E[g² φ″(g)] = ½ E[(g³ − 2g) φ′(g)]
    ν  = E[g φ′(g)] · √(Tr(Σ²)/d)          (Stein: E[g φ′(g)] = E[φ″(g)])

The φ′ forms avoid φ″, so piecewise-linear activations (ReLU, leaky ReLU) are covered without
delta functions. Expectations are computed by quadrature for *any* registered activation:

- smooth φ: Gauss–Hermite (probabilists' weight e^{−g²/2}, :func:`numpy.polynomial.hermite_e.hermegauss`),
  exact for polynomials up to degree 2N − 1 and spectrally accurate for analytic integrands;
- φ with kinks (declared in the registry): composite Gauss–Legendre on [−L, k₁], …, [k_j, L], so
  that every piece is analytic; L = 14 truncates a Gaussian tail below 1e-40.

Closed forms (erf: ζ = 2/√(3π); ReLU: ζ = ½, ϑ₀ = ϑ₁ = 1/√(2π)) are in the tests, not here.

Example:
    >>> c = gaussian_constants(get_activation("erf"))
    >>> round(c.zeta, 6)
    0.651470
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache

import numpy as np
import torch

from earlylin.errors import ConfigError

Fn = Callable[[torch.Tensor], torch.Tensor]

_SQRT_2 = math.sqrt(2.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_LOG_TWO_OVER_SQRT_PI = math.log(_TWO_OVER_SQRT_PI)


@dataclass(frozen=True)
class Activation:
    """An activation φ with its derivative φ′ (torch, elementwise) and the points where φ′ jumps."""

    name: str
    phi: Fn
    dphi: Fn
    kinks: tuple[float, ...] = ()
    dphi_into: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

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
    # exp(log(2/√π) − z²) = (2/√π) e^{−z²} in two passes over memory instead of four
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
    return Activation(name, phi, dphi, kinks=(0.0,), dphi_into=dphi_into)


_SMOOTH: dict[str, Activation] = {
    "erf": Activation("erf", torch.erf, _erf_dphi, dphi_into=_erf_dphi_into),
    "tanh": Activation("tanh", torch.tanh, lambda z: 1.0 - torch.tanh(z) ** 2),
    "gelu": Activation("gelu", lambda z: z * 0.5 * (1.0 + torch.erf(z / _SQRT_2)), _gelu_dphi),
    "softplus": Activation("softplus", torch.nn.functional.softplus, torch.sigmoid),
}

DEFAULT_LEAKY_SLOPE = 0.1
ACTIVATION_NAMES = (*_SMOOTH, "relu", "leaky_relu[:slope]")


def get_activation(spec: str) -> Activation:
    """Look up an activation by name: erf, tanh, gelu, softplus, relu, leaky_relu or leaky_relu:SLOPE.

    Raises:
        ConfigError: unknown name, or a leaky slope outside [0, 1).
    """
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
                f"--activation {spec!r}: the leaky ReLU slope must be a number in [0, 1), got {text!r}"
            )
        return _leaky(slope)
    raise ConfigError(
        f"--activation {spec!r} is unknown; valid: {', '.join(ACTIVATION_NAMES)}"
    )


@cache
def _hermite_rule(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    return nodes, weights / math.sqrt(2.0 * math.pi)


@cache
def _piecewise_rule(kinks: tuple[float, ...], n_nodes: int, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    edges = [-cutoff, *sorted(kinks), cutoff]
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    nodes, weights = [], []
    for a, b in itertools.pairwise(edges):
        g = 0.5 * (b - a) * x + 0.5 * (a + b)
        nodes.append(g)
        weights.append(0.5 * (b - a) * w * np.exp(-0.5 * g * g) * _INV_SQRT_2PI)
    return np.concatenate(nodes), np.concatenate(weights)


def gaussian_expectation(f: Fn, kinks: tuple[float, ...] = (), n_nodes: int = 160) -> float:
    """E[f(g)] for g ~ N(0, 1) by quadrature (Gauss–Hermite, or composite Gauss–Legendre at kinks).

    Args:
        f: elementwise torch function, evaluated in float64.
        kinks: points where f (or its derivative) is not analytic; each becomes a panel edge.
        n_nodes: nodes of the Hermite rule, or per Legendre panel.
    """
    nodes, weights = _piecewise_rule(kinks, n_nodes, 14.0) if kinks else _hermite_rule(n_nodes)
    values = f(torch.from_numpy(nodes)).numpy()
    return float(np.dot(weights, values))


@dataclass(frozen=True)
class GaussianConstants:
    """ζ, E[gφ′(g)], ϑ₀, ϑ₁, ϑ₂ of one activation (THEORY §2). ν depends on Σ: see :meth:`nu`."""

    zeta: float
    e_g_dphi: float
    theta0: float
    theta1: float
    theta2: float

    def nu(self, tr_sigma2_over_d: float = 1.0) -> float:
        """ν = E[gφ′(g)]·√(Tr(Σ²)/d); Tr(Σ²)/d = 1 for isotropic inputs."""
        return self.e_g_dphi * math.sqrt(tr_sigma2_over_d)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@cache
def _constants(name: str) -> GaussianConstants:
    act = get_activation(name)
    dphi, k = act.dphi, act.kinks
    e_g_dphi = gaussian_expectation(lambda g: g * dphi(g), k)
    return GaussianConstants(
        zeta=gaussian_expectation(dphi, k),
        e_g_dphi=e_g_dphi,
        theta0=gaussian_expectation(act.phi, k),
        theta1=e_g_dphi,
        theta2=0.5 * gaussian_expectation(lambda g: (g**3 - 2.0 * g) * dphi(g), k),
    )


def gaussian_constants(act: Activation) -> GaussianConstants:
    """The Gaussian constants of ``act`` (cached per activation name)."""
    return _constants(act.name)
