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


# ---------------------------------------------------------------------------------------------- keep_outputs
TINY = {"d": 8, "n": 40, "n_test": 20, "width": 16, "steps": 20, "n_log": 8, "seeds": (0, 1), "device": "cpu"}


def _mse(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.mean((a - b) ** 2, axis=-1)


def _check_outputs_gave_the_metrics(r: earlylin.Result, x_test: np.ndarray) -> dict[str, np.ndarray]:
    """The stored outputs at recorded step j are those the record's metrics at j were computed from, and the last
    step's f^lin on the test set is ``linear_model.predict(x_test)``."""
    from tests.conftest import assert_close

    out = r.outputs()
    K, R = len(r.seeds), r.steps.size
    assert out["steps"].tolist() == r.steps.tolist() and out["seeds"].tolist() == r.seeds
    assert out["train_net"].shape == out["train_lin"].shape == (K, R, r.config["n"])
    assert out["test_net"].shape == out["test_lin"].shape == (K, R, r.config["n_test"])
    assert all(v.dtype == np.float64 for k, v in out.items() if k not in ("steps", "seeds"))
    net, lin = out["test_net"], out["test_lin"]
    assert_close(_mse(net, lin), r.curve("test_mse"))
    assert_close(_mse(out["train_net"], out["train_lin"]), r.curve("train_mse"))
    assert_close(_mse(net, out["test_stripped"]), r.curve("test_mse_stripped"))
    with np.errstate(invalid="ignore", divide="ignore"):  # step 0: f_net ≡ 0, the relative distance is undefined
        denom = np.mean(net**2, axis=-1)
        rel = np.where(denom > 1e-12, _mse(net, lin) / denom, np.nan)
    np.testing.assert_allclose(rel, r.curve("test_rel_mse"), rtol=TOL["exact"], atol=TOL["exact"], equal_nan=True)
    for i, s in enumerate(r.seeds):  # the 5 outputs the record always kept
        assert_close(net[i, :, :5], np.asarray(r.per_seed[s]["logits_net"]))
        assert_close(lin[i, :, :5], np.asarray(r.per_seed[s]["logits_lin"]))
    np.testing.assert_allclose(lin[:, -1], r.linear_model.predict(x_test), rtol=TOL["iterated"], atol=TOL["iterated"])
    return out


@pytest.mark.parametrize("family", ["two_layer", "cnn1d"])
def test_keep_outputs_stores_the_outputs_the_metrics_came_from(tmp_path, family):
    arrays = _arrays(TINY["d"], TINY["n"], TINY["n_test"])
    cfg = (earlylin.TwoLayerConfig(**TINY, ntk_lin=True) if family == "two_layer"
           else earlylin.Cnn1dConfig(**TINY, filter_size=4))
    r = earlylin.run(cfg, data=arrays, keep_outputs=True)
    out = _check_outputs_gave_the_metrics(r, arrays.x_test)
    if family == "two_layer":  # the finite-width model and the θ-linearised net too
        assert_close(_mse(out["test_net"], out["test_fw"]), r.curve("test_mse_fw"), "exact")
        assert_close(_mse(out["test_net"], out["test_ntk_lin"]), r.curve("test_mse_ntk_lin"), "exact")
    else:
        assert "test_fw" not in out and "test_ntk_lin" not in out
    plain = earlylin.run(cfg, data=arrays)  # off by default: the same metrics, no outputs
    _metrics_equal(plain, r)
    with pytest.raises(ConfigError, match="without keep_outputs"):
        plain.outputs()
    assert "outputs_file" not in plain.record
    plain.save(tmp_path / "plain" / "record.json")
    assert not (tmp_path / "plain" / "outputs.npz").exists()
    path = r.save(tmp_path / "kept" / "record.json")  # beside record.json, named by the record
    assert r.record["outputs_file"] == "outputs.npz" and (tmp_path / "kept" / "outputs.npz").is_file()
    again = earlylin.Result.load(path)
    assert again.record["outputs_file"] == "outputs.npz"
    for key, value in out.items():
        np.testing.assert_array_equal(again.outputs()[key], value)


def test_keep_outputs_of_a_user_network():
    arrays = _arrays(TINY["d"], TINY["n"], TINY["n_test"])
    cfg = earlylin.NetworkConfig(lr=0.5, steps=20, n_log=8, seeds=(0, 1), n_fit=32, device="cpu")
    r = earlylin.run_network(TwoLayerModule(TINY["d"], 16), arrays, cfg, keep_outputs=True)
    out = _check_outputs_gave_the_metrics(r, arrays.x_test)
    assert np.all(out["train_net"][:, 0] == 0.0)  # the doubled copy: f₀ ≡ 0


def test_keep_outputs_is_never_answered_by_the_cache(tmp_path):
    """Cache entries hold metrics, not outputs: a keep_outputs run trains every seed (and gives the cached
    run's metrics); a plain run after it is served from the cache."""
    cfg = earlylin.TwoLayerConfig(**TINY)
    first = earlylin.run(cfg, cache_dir=tmp_path)
    kept = earlylin.run(cfg, cache_dir=tmp_path, keep_outputs=True)
    assert kept.summary["cache_hits"] == 0 and kept.outputs()["test_net"].shape[0] == 2
    _metrics_equal(kept, first)
    assert earlylin.run(cfg, cache_dir=tmp_path).summary["cache_hits"] == 2


def test_keep_outputs_too_large_is_refused_before_work(monkeypatch):
    from earlylin.experiments import pipeline

    monkeypatch.setattr(pipeline, "train", lambda *a: pytest.fail("trained despite the refusal"))
    cfg = earlylin.TwoLayerConfig(**{**TINY, "n": 2000, "n_test": 2000, "steps": 100_000, "n_log": 20_000})
    with pytest.raises(ConfigError, match=r"keep_outputs=True: the full outputs .* more than the limit max_gb=0\.3"):
        earlylin.run(cfg, keep_outputs=True, max_gb=0.3)
    with pytest.raises(ConfigError, match="keep_outputs='yes'"):
        earlylin.run(earlylin.TwoLayerConfig(**TINY), keep_outputs="yes")
