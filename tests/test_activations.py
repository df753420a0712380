"""Gaussian constants (THEORY §2) against closed forms, Monte Carlo and Stein's identity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from earlylin.activations import gaussian_constants, gaussian_expectation, get_activation
from earlylin.errors import ConfigError
from tests.conftest import ALL_ACTIVATIONS, SMOOTH, assert_close

S2PI = math.sqrt(2 * math.pi)


@pytest.mark.parametrize(
    ("name", "zeta", "e_g_dphi", "theta0", "theta1", "theta2"),
    [
        ("erf", 2 / math.sqrt(3 * math.pi), 0.0, 0.0, 0.0, 0.0),
        ("relu", 0.5, 1 / S2PI, 1 / S2PI, 1 / S2PI, 0.0),
        ("leaky_relu:0.2", 0.6, 0.8 / S2PI, 0.8 / S2PI, 0.8 / S2PI, 0.0),
        ("leaky_relu:0.5", 0.75, 0.5 / S2PI, 0.5 / S2PI, 0.5 / S2PI, 0.0),
        # GELU φ = zΦ(z): ζ = ½, E[φ] = 1/(2√π), E[gφ′] = E[φ″] = 3/(4√π)... see docstring below
        ("gelu", 0.5, 3 / (4 * math.sqrt(math.pi)), 1 / (2 * math.sqrt(math.pi)), 3 / (4 * math.sqrt(math.pi)),
         1 / (16 * math.sqrt(math.pi))),
    ],
)
def test_closed_forms(name, zeta, e_g_dphi, theta0, theta1, theta2):
    """THEORY §2's table (erf, ReLU, leaky ReLU) and GELU, whose constants follow from Gaussian
    integrals of Φ and ϕ: E[zΦ(z)] = E[ϕ(z)] = 1/(2√π); φ″ = 2ϕ − z²ϕ gives E[φ″] = 3/(4√π);
    ϑ₂ = ½E[g²φ″] = ½(2E[g²ϕ] − E[g⁴ϕ]) = ½(2·(1/(4√π)) − 3/(8√π)) = 1/(16√π)."""
    c = gaussian_constants(get_activation(name))
    assert_close([c.zeta, c.e_g_dphi, c.theta0, c.theta1, c.theta2], [zeta, e_g_dphi, theta0, theta1, theta2],
                 "quadrature")


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
def test_monte_carlo(name):
    """Each constant within 5 standard errors of a 4·10⁶-sample Monte Carlo estimate."""
    act = get_activation(name)
    c = gaussian_constants(act)
    g = torch.randn(4_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    dphi = act.dphi(g)
    samples = {
        "zeta": dphi,
        "e_g_dphi": g * dphi,
        "theta0": act.phi(g),
        "theta2": 0.5 * (g**3 - 2 * g) * dphi,
    }
    for key, s in samples.items():
        se = float(s.std()) / math.sqrt(s.numel())
        assert abs(float(s.mean()) - getattr(c, key)) < 5 * se + 1e-12, key


@pytest.mark.parametrize("name", SMOOTH)
def test_stein_identity(name):
    """E[g φ′(g)] = E[φ″(g)], with φ″ from autograd (an independent route to ν's constant)."""
    act = get_activation(name)

    def d2phi(z: torch.Tensor) -> torch.Tensor:
        z = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(act.dphi(z).sum(), z)
        return g

    assert_close(gaussian_expectation(d2phi), gaussian_constants(act).e_g_dphi, "quadrature")


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
def test_dphi_is_derivative(name):
    """The registered φ′ equals autograd's derivative of φ (away from kinks)."""
    act = get_activation(name)
    z = torch.linspace(-4, 4, 801, dtype=torch.float64)
    z = z[z.abs() > 1e-3].requires_grad_(True)
    (auto,) = torch.autograd.grad(act.phi(z).sum(), z)
    assert_close(act.dphi(z.detach()), auto, "autograd")
    out = torch.empty_like(z.detach())
    assert_close(act.dphi_out(z.detach(), out), auto, "autograd")
    assert_close(act.phi_out(z.detach(), torch.empty_like(out)), act.phi(z.detach()), "exact")


@pytest.mark.parametrize("name", SMOOTH)
def test_two_quadrature_routes_agree(name):
    """For smooth φ the Gauss–Hermite route and the composite Gauss–Legendre route (used at kinks) agree."""
    act = get_activation(name)
    for f in (act.phi, act.dphi, lambda g: g * act.dphi(g)):
        assert_close(gaussian_expectation(f), gaussian_expectation(f, kinks=(0.0,)), "quadrature")


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=12))
def test_quadrature_exact_on_moments(k):
    """E[g^k] = (k−1)!! for even k, 0 for odd k (both quadrature routes)."""
    expected = 0.0 if k % 2 else float(np.prod(np.arange(k - 1, 0, -2))) if k else 1.0
    assert_close(gaussian_expectation(lambda g: g**k), expected, "quadrature", atol=1e-9)
    assert_close(gaussian_expectation(lambda g: g**k, kinks=(0.0,)), expected, "quadrature", atol=1e-9)


def test_nu_scales_with_trace():
    c = gaussian_constants(get_activation("relu"))
    assert c.nu(1.0) == pytest.approx(1 / S2PI)
    assert c.nu(4.0) == pytest.approx(2 / S2PI)


@pytest.mark.parametrize("bad", ["sigmoidal", "", "leaky_relu:1.5", "leaky_relu:x", "leaky_relu:-0.1"])
def test_unknown_activation(bad):
    with pytest.raises(ConfigError, match="--activation"):
        get_activation(bad)
