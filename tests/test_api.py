"""The public API end to end (small, CPU): built-in runs, a user's target, activation, arrays and torch
network, each compared with its linear model, and the Result object's save/load and tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import earlylin
from earlylin.data.synthetic import make_dataset, make_teacher
from earlylin.errors import ConfigError
from tests.conftest import TOL, assert_close

SMALL = {"d": 10, "n": 300, "n_test": 100, "width": 32, "steps": 120, "n_log": 12}


def _metrics_equal(a: earlylin.Result, b: earlylin.Result, rtol: float = 0.0, atol: float = 0.0) -> None:
    assert a.steps.tolist() == b.steps.tolist()
    for key in a.metrics:
        np.testing.assert_allclose(a.curve(key), b.curve(key), rtol=rtol, atol=atol, equal_nan=True, err_msg=key)


def test_builtin_run_result_object(tmp_path):
    r = earlylin.run(earlylin.TwoLayerConfig(**SMALL, seeds=(0, 1)))
    assert r.seeds == [0, 1]
    assert r.curve("test_mse").shape == (2, r.steps.size)
    table = r.table()
    assert len(table["seed"]) == 2 * r.steps.size and "test_mse" in table and "logits_net" not in table
    assert r.summary["cache_hits"] == 0 and r.summary["code_fingerprint"]
    path = r.save(tmp_path / "record.json")
    again = earlylin.Result.load(path)
    assert again.summary == r.summary
    _metrics_equal(again, r)


def test_user_target_equal_to_builtin_teacher_gives_the_builtin_run():
    """A target function that reproduces the built-in teacher labels gives the same run, to the bit."""
    teacher = make_teacher(0, SMALL["d"], 5)

    def sign_teacher(x: np.ndarray) -> np.ndarray:
        return np.where(teacher(x) >= 0.0, 1.0, -1.0)

    cfg = earlylin.TwoLayerConfig(**SMALL)
    builtin = earlylin.run(cfg)
    custom = earlylin.run(cfg, target=sign_teacher)
    assert custom.config["target"] == "custom:sign_teacher"
    _metrics_equal(custom, builtin)


def test_user_target_tracks_its_linear_model():
    def linear_target(x: np.ndarray) -> np.ndarray:
        return np.tanh(x[:, 0] + 0.5 * x[:, 1])

    r = earlylin.run(earlylin.TwoLayerConfig(**{**SMALL, "steps": 300}), target=linear_target)
    assert r.summary["max_rel_test_mse_early"] < 0.2
    loss_lin = r.curve("test_loss_lin")[0]
    assert loss_lin[-1] < 0.5 * loss_lin[0]  # the linear model learns the target


def test_user_arrays_equal_to_synthetic_data_give_the_builtin_run():
    """erf has ν = 0, so the empirical Tr(Σ²)/d of user arrays does not enter: identical runs."""
    data = make_dataset(0, SMALL["d"], SMALL["n"], SMALL["n_test"])
    arrays = earlylin.Arrays(data.x_train, data.y_train, data.x_test, data.y_test)
    cfg = earlylin.TwoLayerConfig(**SMALL)
    custom = earlylin.run(earlylin.TwoLayerConfig(width=32, steps=120, n_log=12), data=arrays)
    assert (custom.config["d"], custom.config["n"], custom.config["n_test"]) == (10, 300, 100)
    _metrics_equal(custom, earlylin.run(cfg))


def test_user_activation_callable_matches_builtin_tanh():
    def my_tanh(z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z)

    cfg = earlylin.TwoLayerConfig(**SMALL, activation="tanh", dtype="float64")
    builtin = earlylin.run(cfg)
    custom = earlylin.run(cfg, activation=my_tanh)
    assert custom.config["activation"] == "custom:my_tanh"
    _metrics_equal(custom, builtin, rtol=TOL["conditioned"], atol=TOL["exact"])


def test_cnn1d_takes_user_pieces_too():
    def radial(x: np.ndarray) -> np.ndarray:
        return np.tanh(np.sum(x * x, axis=1) / x.shape[1] - 1.0)

    cfg = earlylin.Cnn1dConfig(**{**SMALL, "width": 16}, filter_size=4, layers="second", activation="relu")
    r = earlylin.run(cfg, target=radial)
    assert r.config["family"] == "cnn1d" and np.isfinite(r.summary["max_test_mse_early"])


class TwoLayerModule(torch.nn.Module):
    """g(x) = (1/√m) Σ v_r erf(w_rᵀx/√d): the paper's two-layer net as a user module."""

    def __init__(self, d: int, m: int) -> None:
        super().__init__()
        self.d, self.m = d, m
        self.W = torch.nn.Parameter(torch.empty(m, d))
        self.v = torch.nn.Parameter(torch.empty(m))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.W)
        with torch.no_grad():
            self.v.copy_(torch.sign(torch.randn(self.m)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.erf(x @ self.W.T / math.sqrt(self.d)) @ self.v / math.sqrt(self.m)


def _arrays(d: int = 10, n: int = 200, n_test: int = 100) -> earlylin.Arrays:
    data = make_dataset(1, d, n, n_test)
    return earlylin.Arrays(data.x_train, data.y_train, data.x_test, data.y_test)


def test_user_module_starts_at_zero_and_tracks_its_fitted_linear_model():
    arrays = _arrays()
    cfg = earlylin.NetworkConfig(lr=1.0, steps=150, n_log=12, seeds=(0, 1), n_fit=100)
    r = earlylin.run_network(TwoLayerModule(10, 256), arrays, cfg)
    train_loss = r.curve("train_loss_net")
    assert_close(train_loss[:, 0], 0.5 * np.mean(arrays.y_train**2), "fp32_loss", atol=0)  # f₀ ≡ 0
    assert r.summary["max_rel_test_mse_early"] < 0.1
    assert not np.allclose(r.curve("test_mse")[0], r.curve("test_mse")[1])  # seeds initialise differently
    fit = r.record["linear_model"]["fitted"]
    # erf two-layer net: Θ(0) ≈ ζ²ρ + E[φ(u)φ(u′)] ≈ (1 + ...)·ζ² ρ with ζ² = 4/(3π) (docs/theory.md §3)
    assert fit["B"] == pytest.approx(2 * 4 / (3 * math.pi), rel=0.2)


def test_user_function_network_with_init():
    d, m = 10, 64

    def init(seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [rng.standard_normal((m, d)), rng.choice([-1.0, 1.0], size=m)]

    def net(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        W, v = params
        return torch.tanh(x @ W.T / math.sqrt(d)) @ v / math.sqrt(m)

    r = earlylin.run_network(net, _arrays(d), earlylin.NetworkConfig(steps=60, n_log=8, n_fit=64), init=init)
    assert r.config["name"] == "custom:net" and np.isfinite(r.summary["max_test_mse_early"])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: earlylin.Arrays(np.zeros((5, 3)), np.zeros(4), np.zeros((2, 3)), np.zeros(2)), "train arrays"),
        (lambda: earlylin.Arrays(np.full((5, 3), np.nan), np.zeros(5), np.zeros((2, 3)), np.zeros(2)), "NaN"),
        (lambda: earlylin.run(earlylin.TwoLayerConfig(**SMALL), target=lambda x: x), "returned shape"),
        (lambda: earlylin.run(earlylin.TwoLayerConfig(**SMALL, target="custom:f")), "pass the function"),
        (lambda: earlylin.run_network(object(), _arrays()), "torch.nn.Module"),
        (lambda: earlylin.run_network(lambda p, x: x, _arrays()), "needs init="),
    ],
)
def test_bad_user_pieces_are_refused_before_work(call, match):
    with pytest.raises(ConfigError, match=match):
        call()
