"""The 1D CNN (nets.cnn1d, linear.cnn1d): symmetric init, gradients, tangent kernel vs its linear model, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import jacrev

import earlylin
from earlylin.activations import gaussian_constants, get_activation
from earlylin.config import Cnn1dConfig
from earlylin.errors import ConfigError
from earlylin.linear.cnn1d import cnn1d_features
from earlylin.linear.features import features
from earlylin.nets.cnn1d import Cnn1dStep, cnn1d_init, forward, patches
from tests.conftest import TOL
from tests.oracles import cnn1d_empirical_ntk as empirical_ntk
from tests.oracles import cnn1d_feature_kernel

F64 = torch.float64


def _net(seed: int, m: int, q: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    W, v = cnn1d_init(seed, m, q, d)
    return torch.from_numpy(W)[None], torch.from_numpy(v)[None]


def _x(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, n, d, dtype=F64, generator=torch.Generator().manual_seed(seed))


def test_patches_are_circular_and_cover_each_coordinate_q_times() -> None:
    X, Xp = _x(3, 7), _x(3, 7, 1)
    P = patches(X, 3)
    assert torch.equal(P[0, 0, 6], X[0, 0, [6, 0, 1]])
    lhs = torch.einsum("ipj,kpj->ik", P[0], patches(Xp, 3)[0])
    torch.testing.assert_close(lhs, 3 * X[0] @ Xp[0].T)


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_symmetric_init_gives_zero_output(act: str) -> None:
    W, v = _net(3, 10, 5, 12)
    f0 = forward(get_activation(act), W, v, _x(20, 12))
    assert float(f0.abs().max()) < TOL["roundoff"]  # zero up to float64 summation-order rounding


@pytest.mark.parametrize("layers", ["first", "second", "both"])
def test_gradients_match_autograd(layers: str) -> None:
    act = get_activation("tanh")
    K, n, d, q, m = 2, 9, 8, 3, 6
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(K, n, d, dtype=F64, generator=gen)
    y = torch.randn(K, n, dtype=F64, generator=gen)
    W = torch.randn(K, m, q, dtype=F64, generator=gen).requires_grad_()
    v = torch.randn(K, m, d, dtype=F64, generator=gen).requires_grad_()
    gw, gv = layers in ("first", "both"), layers in ("second", "both")
    loss, f, gW, gV = Cnn1dStep(act, X, y, q, gw, gv)(W, v)
    # autograd on a direct, loop-based f(x) = (1/√(md)) Σ_r Σ_p v_{r,p} φ(w_rᵀx_[p]/√q)
    idx = [[(p + j) % d for j in range(q)] for p in range(d)]
    f_ref = sum(
        (act.phi(X[:, :, idx[p]] @ W.transpose(-1, -2) / math.sqrt(q)) * v[:, None, :, p]).sum(-1) for p in range(d)
    ) / math.sqrt(m * d)
    torch.testing.assert_close(f, f_ref.detach())
    ref_loss = 0.5 * torch.mean((f_ref - y) ** 2, -1)
    torch.testing.assert_close(loss, ref_loss.detach())
    rW, rv = torch.autograd.grad(ref_loss.sum(), (W, v))
    assert (gW is None) != gw and (gV is None) != gv
    if gw:
        torch.testing.assert_close(gW, rW)
    if gv:
        torch.testing.assert_close(gV, rv)


@pytest.mark.parametrize("layers", ["first", "second", "both"])
def test_empirical_ntk_matches_torch_func_jacobians(layers: str) -> None:
    act = get_activation("gelu")
    n, d, q, m = 5, 7, 3, 4
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(1, n, d, dtype=F64, generator=gen)
    W = torch.randn(1, m, q, dtype=F64, generator=gen)
    v = torch.randn(1, m, d, dtype=F64, generator=gen)
    jW, jv = jacrev(lambda a, b: forward(act, a, b, X)[0], argnums=(0, 1))(W, v)
    jW, jv = jW.reshape(n, -1), jv.reshape(n, -1)
    ref = {"first": jW @ jW.T, "second": jv @ jv.T, "both": jW @ jW.T + jv @ jv.T}[layers]
    torch.testing.assert_close(empirical_ntk(act, W, v, X, X, layers)[0], ref)


@pytest.mark.parametrize("layers", ["first", "second", "both"])
def test_features_match_kernel_and_reduce_to_fc_at_q_equal_d(layers: str) -> None:
    c = gaussian_constants(get_activation("gelu"))
    X, Xp = _x(6, 9), _x(4, 9, 1)
    for q in (1, 4, 9):
        psi, psip = cnn1d_features(X, c, 0.7, layers, q), cnn1d_features(Xp, c, 0.7, layers, q)
        torch.testing.assert_close(psi @ psip.transpose(-1, -2), cnn1d_feature_kernel(X, Xp, c, 0.7, layers, q))
    # q = d: every patch is a cyclic shift of x, so the kernel is the fully connected one
    k_fc = features(X, c, 0.7, layers) @ features(Xp, c, 0.7, layers).transpose(-1, -2)
    torch.testing.assert_close(cnn1d_feature_kernel(X, Xp, c, 0.7, layers, 9), k_fc)
    stripped = cnn1d_features(X, c, 0.7, layers, 4, stripped=True)
    assert stripped.shape[-1] == {"first": 9, "second": 9, "both": 18}[layers]


@pytest.mark.parametrize("layers", ["first", "second", "both"])
@pytest.mark.parametrize("drop", ["norm", "const"])
def test_ablations_match_fc_at_q_equal_d_and_the_oracle_kernel(layers: str, drop: str) -> None:
    """Fig 2's ablations for the 1D CNN: at q = d their kernel is the FC ablation's; at any q it is the oracle
    feature kernel less exactly the dropped part (the constants ν²/q, ν²/(2q), or the patch-norm sum)."""
    c = gaussian_constants(get_activation("relu"))
    X, Xp = _x(6, 9), _x(4, 9, 1)

    def gram(fn, **kw):
        return fn(X, **kw) @ fn(Xp, **kw).transpose(-1, -2)

    k_fc = gram(lambda A, **kw: features(A, c, 0.7, layers, drop=drop))
    torch.testing.assert_close(gram(lambda A: cnn1d_features(A, c, 0.7, layers, 9, drop=drop)), k_fc)
    q = 4
    full = cnn1d_feature_kernel(X, Xp, c, 0.7, layers, q)
    if drop == "const":
        part = 0.7**2 * ({"first": 1 / q, "second": 1 / (2 * q), "both": 1.5 / q}[layers])
    else:
        qp, qpp = (patches(A, q) for A in (X, Xp))
        nf = [c.theta0 + c.theta1 * e + c.theta2 * e * e
              for e in (torch.linalg.vector_norm(P, dim=-1) / math.sqrt(q) - 1 for P in (qp, qpp))]
        part = 0.0 if layers == "first" else nf[0] @ nf[1].transpose(-1, -2) / 9
    torch.testing.assert_close(gram(lambda A: cnn1d_features(A, c, 0.7, layers, q, drop=drop)), full - part)
    with pytest.raises(ValueError, match="drop='x'"):
        cnn1d_features(X, c, 0.7, layers, q, drop="x")


def test_cnn1d_run_records_the_ablations() -> None:
    cfg = dict(d=16, filter_size=4, layers="both", width=32, n=64, n_test=32, steps=20, n_log=5, seeds=(0,),
               dtype="float64", device="cpu")
    relu = earlylin.run(Cnn1dConfig(**cfg, activation="relu"))
    for name in ("no_norm", "no_const"):
        assert not np.array_equal(relu.curve(f"test_loss_{name}"), relu.curve("test_loss_lin"))
    erf = earlylin.run(Cnn1dConfig(**cfg, activation="erf"))  # ν = ϑ = 0: both ablations are f^lin itself
    for name in ("no_norm", "no_const"):
        np.testing.assert_array_equal(erf.curve(f"test_loss_{name}"), erf.curve("test_loss_lin"))


def _kernel_error(act: str, d: int, q: int, n: int = 40, m: int = 768) -> float:
    """Off-diagonal spectral-norm error ‖Θ − ΨΨᵀ‖/‖ΨΨᵀ‖ at init (the diagonal, an O(1) per-entry
    memorisation mismatch independent of q, is excluded: docs/theory.md §4)."""
    a = get_activation(act)
    c = gaussian_constants(a)
    X = _x(n, d, 5)
    W, v = _net(0, m, q, d)
    theta = empirical_ntk(a, W, v, X, X, "both")[0]
    psi = cnn1d_features(X, c, c.nu(), "both", q)[0]
    lin = psi @ psi.T
    err = theta - lin
    err = err - torch.diag(torch.diag(err))
    return float(torch.linalg.matrix_norm(err, 2) / torch.linalg.matrix_norm(lin, 2))


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_tangent_kernel_approaches_linear_model(act: str) -> None:
    by_q = [_kernel_error(act, 64, q) for q in (4, 16, 64)]
    assert by_q[0] > by_q[1] > by_q[2], by_q
    by_d = [_kernel_error(act, d, d // 4) for d in (16, 64, 192)]  # fixed q/d = 1/4
    assert by_d[0] > by_d[1] > by_d[2], by_d
    assert by_q[2] < (0.02 if act == "relu" else 0.1)


def test_early_mse_to_linear_model_shrinks_with_filter_size() -> None:
    qs = (4, 16, 64)
    maxima = []
    for q in qs:
        cfg = Cnn1dConfig(
            d=64, filter_size=q, activation="erf", layers="both", width=48, n=96, n_test=96, lr=1.0,
            steps=40, window_c=0.15, n_log=6, seeds=(0, 1), dtype="float64", device="cpu",
        )
        result = earlylin.run(cfg).record
        assert set(result) == {"config", "device", "constants", "per_seed", "summary"}
        assert result["summary"]["early_window_steps"] == 40
        maxima.append(result["summary"]["max_test_mse_early"])
    slope = np.polyfit(np.log(qs), np.log(maxima), 1)[0]
    assert slope < -0.3, (maxima, slope)


def test_config_validation_names_the_filter_flag() -> None:
    with pytest.raises(ConfigError, match=r"filter_size=65.*\[1, d = 64\]"):
        Cnn1dConfig(d=64, filter_size=65).validate()
    with pytest.raises(ConfigError, match="filter_size=0"):
        Cnn1dConfig(d=64, filter_size=0).validate()
    with pytest.raises(ConfigError, match="width="):
        Cnn1dConfig(d=64, width=5).validate()
    assert Cnn1dConfig(d=8, filter_size=8).validate().filter_size == 8
