"""Deep FC / CNN on the real CIFAR cat/horse data against their linear model (Fig 3)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from earlylin import deep, kernels, verify
from earlylin.activations import get_activation
from earlylin.cifar_experiment import CifarConfig, empirical_ntk, fit_affine, run_cifar
from earlylin.errors import ConfigError

TINY = dict(n=120, n_test=400, steps=40, seeds=(0, 1), dtype="float64", device="cpu", n_log=12)


@pytest.mark.parametrize("arch", deep.ARCHS)
def test_symmetric_copies_give_zero_function(arch):
    spec = deep.DeepSpec(arch=arch, depth=3, width=8)
    params = deep.init_params(spec, [0, 5], torch.float64, torch.device("cpu"))
    X = torch.randn(2, 7, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(deep.forward(spec, get_activation("relu"), params, X), torch.zeros(2, 7, dtype=torch.float64))


def test_batched_cnn_equals_plain_convolutions():
    """The grouped (seed × copy) convolution equals torch's conv2d run on each copy separately."""
    spec = deep.DeepSpec(arch="cnn", depth=2, width=5)
    act = get_activation("erf")
    params = [p.detach() + 0.1 * torch.randn_like(p) for p in deep.init_params(spec, [1, 2], torch.float64,
                                                                              torch.device("cpu"))]
    X = torch.randn(2, 4, 3, 8, 8, dtype=torch.float64)
    g = deep.copies_forward(spec, act, params, X)
    for k in range(2):
        for c in range(2):
            h = X[k]
            for W in params[:-1]:
                h = act.phi(F.conv2d(h, W[k, c] / math.sqrt(W.shape[3] * 9), padding=1))
            out = h.reshape(4, -1) @ params[-1][k, c] / math.sqrt(params[-1].shape[-1])
            torch.testing.assert_close(g[k, c], out, rtol=1e-12, atol=1e-12)


def test_wide_fc_ntk_matches_analytic_kernel():
    """The empirical NTK of earlylin's FC net at init approaches kernels.fc_kernel (NTK parameterisation).

    One network of width N fluctuates around the limit by O(depth/√N) per entry (0.096 of the largest
    entry measured for one seed at N = 2048, depth 2); averaging 6 seeds shrinks that by √6."""
    spec = deep.DeepSpec(arch="fc", depth=2, width=2048)
    act = get_activation("relu")
    X = torch.randn(6, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    seeds = range(6)
    theta = np.mean([empirical_ntk(spec, act, deep.init_params(spec, [s], torch.float64, torch.device("cpu")), X)
                     .numpy() for s in seeds], axis=0)
    _, exact = kernels.fc_kernel(X.reshape(6, -1).numpy(), activation="relu", depth=2)
    assert np.max(np.abs(theta - exact)) / np.max(np.abs(exact)) < 0.05


def test_fit_affine_recovers_a_known_kernel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 12)) * rng.uniform(0.5, 1.5, size=(40, 1))
    w = rng.uniform(0.5, 2.0, size=12)
    rho = (x * w) @ x.T / 12
    eps = np.sum(x * x, 1) / 12 - 1
    truth = dict(A=0.3, B=0.7, C=0.05, D=-0.02, E=0.04)
    K = (truth["A"] + truth["B"] * rho + truth["C"] * (eps[:, None] + eps[None]) + 0.5 * truth["D"]
         * (eps[:, None] ** 2 + eps[None] ** 2) + truth["E"] * eps[:, None] * eps[None])
    fit = fit_affine(K, x, w)
    for key, value in truth.items():
        assert fit[key] == pytest.approx(value, abs=1e-10)


@pytest.mark.parametrize(("arch", "width", "linear"), [("fc", 32, "derived"), ("cnn", 4, "derived"),
                                                       ("fc", 32, "fitted")])
def test_pipeline_on_real_data(arch, width, linear):
    """Real pooled CIFAR rows: f₀ = 0, the linear model's V_lin⊥ residual never changes, the record is
    complete."""
    cfg = CifarConfig(arch=arch, width=width, linear=linear, n_fit=40, activation="relu", **TINY)
    res = run_cifar(cfg)
    assert res["config"]["d"] == 192 and res["linear_model"]["used"] == linear
    for m in res["per_seed"].values():
        perp = np.array(m["test_res_perp_lin"])
        assert perp[0] > 0.05 and np.max(np.abs(perp - perp[0])) <= 1e-12 * perp[0]  # n_test > rank: V_lin⊥ ≠ {0}
        assert m["test_loss_net"][0] == pytest.approx(0.5)  # labels ±1, f₀ ≡ 0
        assert m["vlin_rank"] >= 192
    assert res["summary"]["early_window_steps"] == round(5 * 192 * math.log(192))
    if linear == "fitted":
        assert set(res["linear_model"]["derived_vs_fitted_rel"]) == {"A", "B"}


def test_cli_cifar_quick(tmp_path, capsys):
    code = verify.main(["--dataset", "cifar", "--arch", "fc", "--quick", "--steps", "30", "--no-cache", "--quiet",
                        "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["kind"] == "cifar" and rec["runs"][0]["config"]["arch"] == "fc"
    assert "V⊥ resid net" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "needle"), [(["--d", "50"], "d = 192"), (["--depth", "0"], "--depth 0"),
                                              (["--activation", "tanh"], "--activation 'tanh'"),
                                              (["--n", "20000"], "--n 20000"), (["--filter", "4"], "--filter 4")])
def test_cifar_bad_input(tmp_path, capsys, args, needle):
    assert verify.main(["--dataset", "cifar", "--no-cache", "--out", str(tmp_path), *args]) == 2
    assert needle in capsys.readouterr().err


def test_config_error_type():
    with pytest.raises(ConfigError):
        CifarConfig(width=0).validate()


def test_infinite_width_ntk_model_is_recorded(tmp_path):
    """--ntk-model: kernel GD on the exact NTK runs beside the linear model; at init both outputs are 0."""
    cfg = CifarConfig(arch="fc", width=32, n=80, n_test=40, steps=20, n_fit=16, ntk_model=True, device="cpu")
    run = run_cifar(cfg)
    m = run["per_seed"]["0"]
    assert m["test_mse_ntk_inf"][0] == 0.0 and m["test_loss_ntk_inf"][0] == pytest.approx(0.5)
    assert all(np.isfinite(v) and v >= 0 for v in m["test_mse_ntk_inf"][1:])
    assert m["test_loss_ntk_inf"][-1] < m["test_loss_ntk_inf"][0]
    assert run["summary"]["max_rel_test_mse_ntk_inf_early"] is not None


def test_cifar_cache_is_per_seed(tmp_path, monkeypatch):
    """A cached CIFAR run extended by one seed trains only that seed; a corrupted entry is retrained."""
    from earlylin import cifar_experiment
    from earlylin.records import Cache

    cache = Cache(tmp_path)
    cfg = CifarConfig(arch="fc", width=16, n=60, n_test=40, steps=10, n_fit=16, seeds=(0, 1), device="cpu")
    first = run_cifar(cfg, cache)
    trained: list[tuple[int, ...]] = []
    real = cifar_experiment._train_cifar
    monkeypatch.setattr(cifar_experiment, "_train_cifar",
                        lambda c, *a: trained.append(c.seeds) or real(c, *a))
    more = run_cifar(cfg.with_(seeds=(0, 1, 2)), cache)
    assert trained == [(2,)]
    assert [more["per_seed"][s]["cached"] for s in "012"] == [True, True, False]
    assert more["per_seed"]["1"]["test_mse"] == first["per_seed"]["1"]["test_mse"]
    for entry in tmp_path.rglob("*.json"):  # corrupt every entry: all seeds train again
        entry.write_text(entry.read_text().replace('"test_mse"', '"test_mse_x"', 1))
    run_cifar(cfg, cache)
    assert trained[-1] == (0, 1)
