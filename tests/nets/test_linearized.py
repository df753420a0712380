"""The NTK-linearised two-layer network (Lee et al. 2019): formula vs jvp, first-order agreement with the
network, exact kernel GD with the empirical NTK, batching, and gradients vs autograd (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import grad

from earlylin.activations import get_activation
from earlylin.experiments.train import run_gd
from earlylin.nets import linearized as lz
from earlylin.nets import two_layer as nets
from tests.conftest import ALL_ACTIVATIONS, TOL, assert_close
from tests.oracles import empirical_ntk, loss_and_grads, ntk_blocks

LAYERS = {"first": (True, False), "second": (False, True), "both": (True, True)}
F64 = torch.float64
# torch's first forward-mode AD call loads jvp decompositions through the deprecated torch.jit.script
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _problem(seeds, m=24, d=6, n=30, n_test=11, init="symmetric"):
    """θ₀ (symmetric or a generic Gaussian draw), inputs X, X_test and ±1 labels, batched over seeds."""
    g = torch.Generator().manual_seed(1000 + seeds[0])
    if init == "symmetric":
        inits = [nets.symmetric_init(s, m, d) for s in seeds]
        W0 = torch.tensor(np.stack([w for w, _ in inits]), dtype=F64)
        v0 = torch.tensor(np.stack([v for _, v in inits]), dtype=F64)
    else:
        W0 = torch.randn(len(seeds), m, d, generator=g, dtype=F64)
        v0 = torch.randn(len(seeds), m, generator=g, dtype=F64)
    K = len(seeds)
    Xs = [torch.randn(n + n_test, d, generator=torch.Generator().manual_seed(s), dtype=F64) for s in seeds]
    X_all = torch.stack(Xs)
    X, Xt = X_all[:, :n], X_all[:, n:]
    y = torch.sign(torch.randn(K, n, generator=g, dtype=F64))
    return W0, v0, X, Xt, y


def _perturb(W0, v0, scale=0.3, seed=7):
    g = torch.Generator().manual_seed(seed)
    return W0 + scale * torch.randn(W0.shape, generator=g, dtype=F64), v0 + scale * torch.randn(
        v0.shape, generator=g, dtype=F64
    )


def _train(step, params, lrs, steps, Xt, seeds):
    """Run run_gd recording every step: (train outputs, test outputs), each (steps+1, K, n)."""
    train_out, test_out = [], []

    def on_record(t, f_train, p):
        train_out.append(f_train.clone())
        test_out.append(step.forward(p[0], p[1], Xt))

    diverged = run_gd(step, params, lrs, steps, range(steps + 1), on_record, seeds).diverged(seeds)
    assert diverged == {}
    return torch.stack(train_out), torch.stack(test_out)


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
def test_explicit_formula_equals_jvp(name):
    """f₀ + (1/√m)Σ_r[Δv_r φ(z_r) + v_r φ′(z_r)Δw_rᵀx/√d] equals f₀ + jvp(f, θ₀; Δθ), batched over seeds,
    at a generic θ₀ and a generic Δθ; at Δθ = 0 both equal the network."""
    act = get_activation(name)
    W0, v0, X, _, _ = _problem([0, 1, 2], init="gaussian")
    W, v = _perturb(W0, v0)
    f_explicit = lz.forward(act, W0, v0, W, v, X)
    assert f_explicit.shape == (3, X.shape[1])
    assert_close(f_explicit, lz.forward_jvp(act, W0, v0, W, v, X))
    assert_close(lz.forward(act, W0, v0, W0, v0, X), nets.forward(act, W0, v0, X))


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
@pytest.mark.parametrize("layers", list(LAYERS))
def test_step_outputs_and_gradients_match_autograd(name, layers):
    """The step's outputs equal forward(); its ∇_W L, ∇_v L equal autograd of the linearised loss
    (1/2n)Σ(f^ntk − y)² through the explicit formula, and torch.func.grad through the jvp route."""
    act = get_activation(name)
    grad_W, grad_v = LAYERS[layers]
    W0, v0, X, _, y = _problem([0, 1, 2], init="gaussian")
    W, v = _perturb(W0, v0)
    # the untrained layer stays at θ₀ (the step drops its term)
    W = W if grad_W else W0.clone()
    v = v if grad_v else v0.clone()
    step = lz.LinearizedStep(act, W0, v0, X, y, grad_W, grad_v)
    loss, f, (gW, gv) = step([W, v])
    assert (gW is None) != grad_W and (gv is None) != grad_v
    assert_close(f, step.forward(W, v, X))

    Wa, va = W.clone().requires_grad_(True), v.clone().requires_grad_(True)
    loss_auto = 0.5 * ((lz.forward(act, W0, v0, Wa, va, X) - y) ** 2).mean(-1)
    aW, av = torch.autograd.grad(loss_auto.sum(), [Wa, va])
    assert_close(loss, loss_auto, "autograd")

    def loss_jvp(Wq, vq):
        return (0.5 * ((lz.forward_jvp(act, W0, v0, Wq, vq, X) - y) ** 2).mean(-1)).sum()

    jW, jv = grad(loss_jvp, argnums=(0, 1))(W, v)
    if grad_W:
        assert_close(gW, aW, "autograd")
        assert_close(gW, jW, "autograd")
    if grad_v:
        assert_close(gv, av, "autograd")
        assert_close(gv, jv, "autograd")


@pytest.mark.parametrize("name", ["erf", "tanh"])
@pytest.mark.parametrize("layers", ["first", "both"])
@pytest.mark.parametrize(
    ("init", "etas", "order"),
    [("gaussian", (1e-2, 1e-3, 1e-4), 2), ("symmetric", (1e-1, 1e-2, 1e-3), 3)],
)
def test_one_step_gap_to_network(name, layers, init, etas, order):
    """After one GD step from the shared θ₀ (same gradient, so the same θ₁) the outputs differ by the
    Taylor remainder: max|f_net,1 − f_ntk,1| = O(η²) at a generic θ₀. At the symmetric init it is O(η³):
    the swap σ of each mirrored pair, (w, v, w′, v′) → (w′, −v′, w, −v), fixes θ₀, flips f (f∘σ = −f)
    and the first step Δθ = −η∇L(θ₀) (σΔθ = −Δθ), so f(θ₀ + sΔθ) is odd in s and the η² term cancels.
    The order is read off the ratios between successive decades of η (float64)."""
    act = get_activation(name)
    grad_W, grad_v = LAYERS[layers]
    W0, v0, X, _, y = _problem([0, 1], m=32, init=init)
    gaps = []
    for eta in etas:
        step = lz.LinearizedStep(act, W0, v0, X, y, grad_W, grad_v)
        _, f_lin0, (gW, gv) = step(step.init_params())
        _, f_net0, nW, nv = loss_and_grads(act, W0, v0, X, y, grad_W, grad_v)
        assert_close(f_lin0, f_net0)
        assert_close(gW, nW, "autograd")
        if grad_v:
            assert_close(gv, nv, "autograd")
        W1 = W0 - eta * gW
        v1 = v0 - eta * gv if grad_v else v0
        gaps.append(float((nets.forward(act, W1, v1, X) - step.forward(W1, v1, X)).abs().max()))
    slopes = [math.log10(gaps[i] / gaps[i + 1]) for i in range(len(gaps) - 1)]
    assert all(abs(s - order) < 0.1 for s in slopes), (gaps, slopes)


@pytest.mark.parametrize("name", ["erf", "relu"])
def test_second_layer_only_equals_the_network(name):
    """With η₁ = 0 the network is already linear in v, so f^ntk and the network coincide for all steps."""
    act = get_activation(name)
    W0, v0, X, Xt, y = _problem([0, 1])
    step = lz.LinearizedStep(act, W0, v0, X, y, False, True)
    net_step = nets.TwoLayerStep(act, X, y, False, True)

    def net_fn(p):
        loss, f, gW, gv = net_step(p[0], p[1])
        return loss, f, [gW, gv]

    class _Net:  # forward() for _train
        def __call__(self, p):
            return net_fn(p)

        def forward(self, W, v, A):
            return nets.forward(act, W, v, A)

    lin_tr, lin_te = _train(step, step.init_params(), [0.0, 1.0], 15, Xt, [0, 1])
    net_tr, net_te = _train(_Net(), [W0.clone(), v0.clone()], [0.0, 1.0], 15, Xt, [0, 1])
    assert_close(lin_tr, net_tr)
    assert_close(lin_te, net_te)


@pytest.mark.parametrize("name", ["erf", "relu", "softplus"])
@pytest.mark.parametrize("layers", list(LAYERS))
def test_trajectory_is_kernel_gd_with_empirical_ntk(name, layers):
    """Trained by run_gd, f^ntk follows f_{t+1} = f_t − (1/n)Θ_eff(f_t − y), Θ_eff = η₁Θ₁ + η₂Θ₂ at θ₀,
    exactly (up to rounding) on the training points, and f_{t+1}(X′) = f_t(X′) − (1/n)Θ_eff(X′, X)(f_t − y)
    on test points. Θ from ntk_blocks (batched) and, for seed 0, from the torch.func Jacobians."""
    act = get_activation(name)
    grad_W, grad_v = LAYERS[layers]
    eta1, eta2 = (2.0 if grad_W else 0.0), (2.0 if grad_v else 0.0)
    seeds = [0, 1]
    W0, v0, X, Xt, y = _problem(seeds)
    n, steps = X.shape[1], 25
    step = lz.LinearizedStep(act, W0, v0, X, y, grad_W, grad_v)
    f_tr, f_te = _train(step, step.init_params(), [eta1, eta2], steps, Xt, seeds)

    t1, t2 = ntk_blocks(act, W0, v0, X)
    t1x, t2x = ntk_blocks(act, W0, v0, Xt, X)
    e1, e2 = empirical_ntk(act, W0[0], v0[0], X[0])
    assert_close(t1[0], e1)
    assert_close(t2[0], e2)
    theta, theta_x = eta1 * t1 + eta2 * t2, eta1 * t1x + eta2 * t2x
    f = nets.forward(act, W0, v0, X)  # f₀ (≡ 0 at the symmetric init)
    ft = nets.forward(act, W0, v0, Xt)
    assert float(f.abs().max()) < TOL["exact"]
    for t in range(steps + 1):
        assert_close(f_tr[t], f, "iterated", atol=TOL["exact"])
        assert_close(f_te[t], ft, "iterated", atol=TOL["exact"])
        r = (f - y).unsqueeze(-1)
        f = f - (theta @ r).squeeze(-1) / n
        ft = ft - (theta_x @ r).squeeze(-1) / n
    # the run was a real descent, not a trivial one
    loss0, loss_T = (0.5 * ((f_tr[i] - y) ** 2).mean(-1) for i in (0, -1))
    assert bool((loss_T < 0.95 * loss0).all()), (loss0, loss_T)


@pytest.mark.parametrize("layers", list(LAYERS))
def test_batched_seeds_equal_separate_runs(layers):
    """K = 3 seeds as one batch give the same trajectories as three K = 1 runs."""
    act = get_activation("tanh")
    grad_W, grad_v = LAYERS[layers]
    lrs = [0.5 if grad_W else 0.0, 0.5 if grad_v else 0.0]
    seeds = [3, 4, 5]
    W0, v0, X, Xt, y = _problem(seeds)
    step = lz.LinearizedStep(act, W0, v0, X, y, grad_W, grad_v)
    params = step.init_params()
    b_tr, b_te = _train(step, params, lrs, 12, Xt, seeds)
    for k, s in enumerate(seeds):
        sl = slice(k, k + 1)
        one = lz.LinearizedStep(act, W0[sl], v0[sl], X[sl], y[sl], grad_W, grad_v)
        p1 = one.init_params()
        o_tr, o_te = _train(one, p1, lrs, 12, Xt[sl], [s])
        assert_close(o_tr[:, 0], b_tr[:, k], "roundoff", rtol=TOL["exact"])
        assert_close(o_te[:, 0], b_te[:, k], "roundoff", rtol=TOL["exact"])
        assert_close(p1[0][0], params[0][k], "roundoff", rtol=TOL["exact"])
        assert_close(p1[1][0], params[1][k], "roundoff", rtol=TOL["exact"])


def test_init_params_are_separate_copies():
    """Training the linearised model's parameters leaves θ₀ (and the network's tensors) untouched."""
    act = get_activation("erf")
    W0, v0, X, Xt, y = _problem([0])
    W_net, v_net = W0.clone(), v0.clone()
    step = lz.LinearizedStep(act, W_net, v_net, X, y, True, True)
    p = step.init_params()
    _train(step, p, [0.5, 0.5], 5, Xt, [0])
    assert torch.equal(W_net, W0) and torch.equal(v_net, v0)
    assert torch.equal(step.W0, W0) and torch.equal(step.v0, v0)
    assert not torch.equal(p[0], W0) and not torch.equal(p[1], v0)


def test_gap_to_network_shrinks_with_width():
    """Lee et al. 2019: at fixed η and t the network stays closer to its linearisation as m grows.
    Both layers, erf, symmetric init, 40 steps at η = 1: the test-point gap at m = 2048 is well below
    the gap at m = 32 (the expected ratio is ~√(2048/32) = 8 or more; asserted > 3, mean over 3 seeds)."""
    act = get_activation("erf")
    seeds = [0, 1, 2]
    gaps = {}
    for m in (32, 2048):
        W0, v0, X, Xt, y = _problem(seeds, m=m, d=8, n=40)
        lin = lz.LinearizedStep(act, W0, v0, X, y, True, True)
        net = nets.TwoLayerStep(act, X, y, True, True)
        W, v = W0.clone(), v0.clone()
        p = lin.init_params()
        for _ in range(40):
            _, _, gW, gv = net(W, v)
            _, _, (lW, lv) = lin(p)
            W, v = W - gW, v - gv
            p = [p[0] - lW, p[1] - lv]
        gaps[m] = float(((nets.forward(act, W, v, Xt) - lin.forward(p[0], p[1], Xt)) ** 2).mean())
    assert gaps[2048] < gaps[32] / 3, gaps
