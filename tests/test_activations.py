"""Gaussian constants (docs/theory.md §2) against closed forms, Monte Carlo and Stein's identity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from earlylin.activations import Activation, gaussian_constants, get_activation
from earlylin.errors import ConfigError, naming
from earlylin.ntk.exact import fc_kernel_qr
from earlylin.quadrature import gaussian_expectation
from tests.conftest import ALL_ACTIVATIONS, MC_SIGMAS, SMOOTH, TOL, assert_close

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
    """docs/theory.md §2's table (erf, ReLU, leaky ReLU) and GELU, whose constants follow from Gaussian
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
        assert abs(float(s.mean()) - getattr(c, key)) < MC_SIGMAS * se + TOL["exact"], key


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
    assert_close(gaussian_expectation(lambda g: g**k), expected, "quadrature", atol=TOL["moments"])
    assert_close(gaussian_expectation(lambda g: g**k, kinks=(0.0,)), expected, "quadrature", atol=TOL["moments"])


def test_nu_scales_with_trace():
    c = gaussian_constants(get_activation("relu"))
    assert c.nu(1.0) == pytest.approx(1 / S2PI)
    assert c.nu(4.0) == pytest.approx(2 / S2PI)


@pytest.mark.parametrize("bad", ["sigmoidal", "", "leaky_relu:1.5", "leaky_relu:x", "leaky_relu:-0.1"])
def test_unknown_activation(bad):
    """Named as the caller names it: ``activation=`` from Python, ``--activation`` inside a command."""
    with pytest.raises(ConfigError, match=f"^activation={bad!r}"):
        get_activation(bad)
    with naming("flag"), pytest.raises(ConfigError, match=f"^--activation {bad!r}"):
        get_activation(bad)


# ---------------------------------------------------------------------------------------------
# get_activation of an Activation or of a plain callable
# ---------------------------------------------------------------------------------------------


def my_tanh(z: torch.Tensor) -> torch.Tensor:
    return torch.tanh(z)


def test_activation_instance_is_returned_as_is():
    act = get_activation("gelu")
    assert get_activation(act) is act
    relu = get_activation("relu")
    assert get_activation(relu) is relu


def test_callable_is_wrapped_with_autograd_derivative():
    """A callable φ becomes a smooth activation "custom:<name>" whose φ′ matches central differences."""
    act = get_activation(my_tanh)
    assert isinstance(act, Activation)
    assert act.name == "custom:my_tanh"
    assert act.kinks == ()
    z = torch.linspace(-4, 4, 161, dtype=torch.float64)
    h = 1e-5
    fd = (my_tanh(z + h) - my_tanh(z - h)) / (2 * h)
    assert_close(act.dphi(z), fd, "conditioned")
    assert_close(act.dphi(z.reshape(7, 23)), fd.reshape(7, 23), "conditioned")
    assert_close(act.dphi_out(z, torch.empty_like(z)), act.dphi(z), "exact")
    assert_close(act.phi_out(z, torch.empty_like(z)), torch.tanh(z), "exact")


def test_callable_constants_match_builtin_tanh():
    """The wrapped callable gives the built-in tanh's constants and deep kernel (smooth quadrature)."""
    mine = gaussian_constants(get_activation(my_tanh))
    ref = gaussian_constants(get_activation("tanh"))
    assert_close(list(mine.as_dict().values()), list(ref.as_dict().values()), "quadrature")
    q, qp, rho = np.array([1.0, 1.3]), np.array([0.8, 1.1]), np.array([0.2, -0.4])
    for got, want in zip(fc_kernel_qr(q, qp, rho, my_tanh, 2), fc_kernel_qr(q, qp, rho, "tanh", 2), strict=True):
        assert_close(got, want, "quadrature")


def softmax(z: torch.Tensor) -> torch.Tensor:
    return torch.softmax(z, dim=-1)


def centred(z: torch.Tensor) -> torch.Tensor:
    return z - z.mean()


def total(z: torch.Tensor) -> torch.Tensor:
    return z.sum()


def halves(z: torch.Tensor) -> torch.Tensor:
    return z.reshape(-1)[: z.numel() // 2]


def single_precision(z: torch.Tensor) -> torch.Tensor:
    return torch.tanh(z).float()


def via_numpy(z: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.tanh(z.numpy()))


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (softmax, "not elementwise"),
        (centred, "not elementwise"),
        (total, "shape"),
        (halves, "shape"),
        (single_precision, "dtype"),
        (via_numpy, "failed"),
    ],
)
def test_bad_callables_are_refused(fn, match):
    """Callables that mix entries, change the shape or dtype, or defeat autograd: ConfigError naming them."""
    with pytest.raises(ConfigError, match=match) as err:
        get_activation(fn)
    assert f"custom:{fn.__name__}" in str(err.value)


@pytest.mark.parametrize("bad", [3, None, 1.5])
def test_non_callable_spec_refused(bad):
    with pytest.raises(ConfigError, match="elementwise torch callable"):
        get_activation(bad)


def test_a_leaky_slope_of_many_digits_reaches_the_kernels_exactly():
    """The slope is resolved once, into Activation.slope, and the closed-form kernels use it: with a slope
    of 9 significant digits (the name keeps 6), V(s) = s(1 + a²)/2 of the deep-net recursion equals the
    quadrature of the φ that the network runs, E[φ(√s g)²], to 1e-12. (Read back from the name, the slope
    0.123457 would put V 1e-7 off.)"""
    from earlylin.quadrature import diag_expectations, gaussian_expectation

    act = get_activation("leaky_relu:0.123456789")
    assert act.slope == 0.123456789 and get_activation("relu").slope == 0.0 and get_activation("erf").slope is None
    s = np.array([0.5, 1.0, 2.0])
    closed = diag_expectations(act, s)["V"]
    direct = [gaussian_expectation(lambda g, s=si: act.phi(math.sqrt(s) * g) ** 2, act.kinks) for si in s]
    assert_close(closed, direct, "exact", atol=0)


# ---------------------------------------------------------------------------------------------- φ's own coefficients
def _threshold(z: torch.Tensor) -> torch.Tensor:
    return (z > 0.5).to(z.dtype)


def _sign(z: torch.Tensor) -> torch.Tensor:
    return torch.sign(z)


def _kinked_step(z: torch.Tensor) -> torch.Tensor:  # a jump at −0.3 on a smooth part: no closed form, Monte Carlo
    return torch.sign(z + 0.3) + 0.5 * torch.tanh(z)


PHI_05 = math.exp(-0.125) / S2PI  # the N(0,1) density at 0.5


@pytest.mark.parametrize(
    ("act", "hermite1", "hermite2", "theta0", "theta2"),
    [
        (_sign, math.sqrt(2 / math.pi), 0.0, 0.0, 0.0),  # E[g sign g] = E|g| = √(2/π); sign is odd
        # 1{g > a}: E[g·1] = ϕ(a), E[(g²−1)·1] = aϕ(a), E[1] = 1 − Φ(a), ½E[(g⁴−5g²+2)·1] = ½(a³ − 2a)ϕ(a)
        (_threshold, PHI_05, 0.5 * PHI_05, 0.5 * math.erfc(0.5 / math.sqrt(2)), 0.5 * (0.125 - 1.0) * PHI_05),
        ("relu", 0.5, 1 / S2PI, 1 / S2PI, 0.0),
        ("erf", 2 / math.sqrt(3 * math.pi), 0.0, 0.0, 0.0),
    ],
)
def test_hermite_coefficients_of_phi_against_closed_forms(act, hermite1, hermite2, theta0, theta2):
    c = gaussian_constants(get_activation(act))
    for got, want in ((c.hermite1, hermite1), (c.hermite2, hermite2), (c.theta0, theta0), (c.theta2, theta2),
                      (c.theta1, hermite2)):
        assert got == pytest.approx(want, abs=TOL["exact"])


def test_hermite_coefficients_against_monte_carlo():
    """4·10⁶ Gaussian samples: every φ-based coefficient of a step with a smooth part within 5 standard errors."""
    g = torch.from_numpy(np.random.default_rng(7).standard_normal(4_000_000))
    c = gaussian_constants(get_activation(_kinked_step))
    phi = _kinked_step(g)
    for got, weight in ((c.theta0, 1.0 + 0 * g), (c.hermite1, g), (c.hermite2, g * g - 1),
                        (2 * c.theta2, g**4 - 5 * g * g + 2)):
        sample = (weight * phi).numpy()
        assert abs(got - sample.mean()) < MC_SIGMAS * sample.std() / math.sqrt(sample.size)


@pytest.mark.parametrize("name", [*SMOOTH, "relu", "leaky_relu:0.2"])
def test_stein_holds_for_every_registered_activation(name):
    c = gaussian_constants(get_activation(name))
    assert c.stein_holds and c.note(name) is None
    assert max(abs(gap) for gap in c.stein_gaps) < TOL["exact"]


@pytest.mark.parametrize("act", [_sign, _threshold])
def test_stein_fails_for_a_step_and_the_note_says_what_that_means(act):
    """Autograd's φ′ of a step is 0: the first layer's ζ = 0 while E[gφ] > 0; the note names both."""
    a = get_activation(act)
    c = gaussian_constants(a)
    assert not c.stein_holds and c.zeta == 0.0 and c.hermite1 > 0.3
    note = c.note(a.name)
    assert "the first layer gets no gradient through φ" in note and f"E[gφ] = {c.hermite1:.4g}" in note
    assert c.used(a.name, 1.0)["note"] == note


def test_breakpoints_found_where_phi_or_its_derivative_jumps():
    assert get_activation(_sign).kinks == (0.0,)
    assert get_activation(_threshold).kinks == pytest.approx((0.5,), abs=TOL["exact"])
    assert get_activation(lambda z: z.clamp(min=0.0)).kinks == (0.0,)  # φ′ jumps at 0
    assert get_activation(_kinked_step).kinks == pytest.approx((-0.3,), abs=TOL["exact"])
    assert get_activation(lambda z: torch.tanh(z)).kinks == ()


def test_a_step_activations_second_layer_model_tracks_the_network_as_relus_does():
    """d 30, n 2,000, width 1,024, second layer, 300 steps: with φ's own Hermite coefficients the linear model of
    sign tracks the network about as closely as ReLU's does (measured: max relative MSE 0.105 and 0.081); with
    autograd's φ′ (ζ = 0) it was 1.0, a model that predicts 0."""
    import earlylin

    cfg = earlylin.TwoLayerConfig(d=30, n=2000, n_test=1000, width=1024, layers="second", steps=300)
    relu = earlylin.run(earlylin.TwoLayer(cfg.with_(activation="relu"))).summary["max_rel_test_mse_early"]
    sign = earlylin.run(earlylin.TwoLayer(cfg, activation=_sign)).summary["max_rel_test_mse_early"]
    assert relu < 0.15 and sign < 1.5 * relu
