"""Fig 2's targets (earlylin/data/synthetic.py) and the f^lin ablations (earlylin/linear/features.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from earlylin.activations import gaussian_constants, get_activation
from earlylin.cli.verify import build_parser
from earlylin.data.synthetic import (
    TARGET_NAMES,
    make_dataset,
    make_relu_teacher,
    make_teacher,
    sample_inputs,
    sigma_spectrum,
    target,
)
from earlylin.linear.features import ABLATIONS, ablation_is_lin, features, norm_feature
from earlylin.runtime.rng import stream
from tests.conftest import TOL, assert_close


@pytest.mark.parametrize("kind", TARGET_NAMES)
@pytest.mark.parametrize("sigma", ["iso", "decay"])
def test_targets_bounded_and_reproducible(kind, sigma):
    a = make_dataset(3, 20, 3000, 500, sigma=sigma, target_kind=kind)
    b = make_dataset(3, 20, 3000, 500, sigma=sigma, target_kind=kind)
    for y in (a.y_train, a.y_test):
        assert np.all(np.abs(y) <= 1.0) and np.all(np.isfinite(y))
    np.testing.assert_array_equal(a.y_train, b.y_train)


def test_relu_teacher_homogeneous_before_scaling_and_mean_not_zero():
    t = make_relu_teacher(0, 30)
    x = sample_inputs(stream(0, 1), 400, sigma_spectrum("iso", 30))
    for c in (0.3, 1.0, 2.5):
        assert_close(t(c * x), c * t(x), "exact", atol=TOL["arith"])
    assert np.all(t.a > 0) and set(t.a) <= {0.5, 1.5}
    np.testing.assert_array_equal(t.u, make_teacher(0, 30).u)  # the same stream and draw order as the erf teacher
    y = make_dataset(0, 30, 4000, 100, target_kind="relu_teacher").y_train
    assert y.mean() > 3 * y.std() / np.sqrt(y.size) and y.mean() > 0.1  # mean clearly not ≈ 0
    assert np.mean(y >= 1.0) < 2e-3  # the clip at 1 is (almost) never active


@pytest.mark.parametrize("sigma", ["iso", "twolevel"])
def test_relu_teacher_moments_match_monte_carlo(sigma):
    """The closed-form mean and std behind the fixed scale against a Monte-Carlo estimate (independent route)."""
    spec = sigma_spectrum(sigma, 25)
    t = make_relu_teacher(1, 25)
    f = t(sample_inputs(np.random.default_rng(99), 400_000, spec))
    mean, std = t.moments(spec)
    assert abs(f.mean() - mean) < 5 * f.std() / np.sqrt(f.size)
    assert abs(f.std() - std) / std < 0.01


def test_relu_teacher_scale_fixed_by_teacher_and_d():
    """Train and test labels share one scale: the same x gives the same y whatever else is in the sample."""
    t, spec = make_relu_teacher(2, 15), sigma_spectrum("iso", 15)
    x = sample_inputs(stream(2, 1), 50, spec)
    np.testing.assert_array_equal(target(x[:10], t, "relu_teacher", spec), target(x, t, "relu_teacher", spec)[:10])


def test_radial_invariant_under_rotations():
    d = 12
    spec = sigma_spectrum("iso", d)
    x = sample_inputs(stream(0, 1), 200, spec)
    R, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((d, d)))
    y = target(x, make_teacher(0, d), "radial", spec)
    assert_close(target(x @ R.T, make_teacher(0, d), "radial", spec), y, "exact")
    s = (np.sum(x * x, -1) - d) / np.sqrt(2 * d)
    assert_close(y, np.tanh(s), "ulp")


def test_cli_target_choices_follow_target_names():
    action = next(a for a in build_parser()._actions if "--target" in a.option_strings)
    assert tuple(action.choices) == TARGET_NAMES and {"relu_teacher", "radial", "norm"} <= set(TARGET_NAMES)


@pytest.mark.parametrize("layers", ["first", "second", "both"])
@pytest.mark.parametrize("drop", ABLATIONS)
def test_ablation_kernel_is_lin_kernel_minus_dropped_block(layers, drop):
    """ΨΨᵀ of the ablated features = f^lin's ΨΨᵀ minus the dropped columns' outer products (float64)."""
    consts, nu, d = gaussian_constants(get_activation("relu")), 0.7, 9
    X = torch.randn(40, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    full, ab = features(X, consts, nu, layers), features(X, consts, nu, layers, drop=drop)
    ones = torch.ones(40, dtype=torch.float64)
    if drop == "norm":
        dropped = [norm_feature(X, consts)] if layers != "first" else []
    else:
        dropped = [ones * nu / d**0.5] * (layers != "second") + [ones * nu / (2 * d) ** 0.5] * (layers != "first")
    expected = full @ full.T - sum((torch.outer(c, c) for c in dropped), torch.zeros(40, 40, dtype=torch.float64))
    torch.testing.assert_close(ab @ ab.T, expected, rtol=TOL["exact"], atol=TOL["exact"])
    assert ab.shape[-1] == full.shape[-1] - len(dropped)
    assert ablation_is_lin(consts, nu, layers, drop) == (len(dropped) == 0)


def test_ablation_is_lin_for_erf_and_bad_drop():
    erf = gaussian_constants(get_activation("erf"))
    assert ablation_is_lin(erf, erf.nu(), "both", "norm") and ablation_is_lin(erf, erf.nu(), "both", "const")
    with pytest.raises(ValueError, match="drop"):
        features(torch.zeros(2, 3), erf, 0.0, "both", drop="x")
