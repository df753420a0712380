"""Two-layer network: symmetric initialisation and analytic gradients (docs/theory.md §1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from earlylin.activations import get_activation
from earlylin.nets import two_layer as nets
from tests.conftest import ALL_ACTIVATIONS, TOL, assert_close
from tests.oracles import loss_and_grads


def _batch(seeds, m, d, n, dtype=torch.float64):
    inits = [nets.symmetric_init(s, m, d) for s in seeds]
    W = torch.tensor(np.stack([w for w, _ in inits]), dtype=dtype)
    v = torch.tensor(np.stack([v for _, v in inits]), dtype=dtype)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(len(seeds), n, d, generator=g, dtype=dtype)
    y = torch.sign(torch.randn(len(seeds), n, generator=g, dtype=dtype))
    return W, v, X, y


@settings(max_examples=25, deadline=None)
@given(
    half=st.integers(1, 40),
    d=st.integers(1, 30),
    n=st.integers(1, 30),
    seed=st.integers(0, 10**6),
    name=st.sampled_from(ALL_ACTIVATIONS),
)
def test_symmetric_init_gives_zero_function(half, d, n, seed, name):
    """w_{r+m/2} = w_r and v_{r+m/2} = −v_r exactly, so f₀ ≡ 0 (to float64 rounding) for any shape."""
    W, v, X, _ = _batch([seed], 2 * half, d, n)
    assert torch.equal(W[0, :half], W[0, half:])
    assert torch.equal(v[0, :half], -v[0, half:])
    f0 = nets.forward(get_activation(name), W, v, X)
    assert float(f0.abs().max()) < TOL["exact"]


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
@pytest.mark.parametrize(("grad_W", "grad_v"), [(True, True), (True, False), (False, True)])
def test_gradients_match_autograd(name, grad_W, grad_v):
    """∇_W L and ∇_v L of :class:`TwoLayerStep` equal autograd's, batched over 3 seeds (float64)."""
    act = get_activation(name)
    W, v, X, y = _batch([0, 1, 2], 16, 7, 25)
    # move away from the symmetric point so every term of the gradient is exercised
    W = W + 0.3 * torch.randn(W.shape, generator=torch.Generator().manual_seed(5), dtype=W.dtype)
    v = v + 0.3 * torch.randn(v.shape, generator=torch.Generator().manual_seed(6), dtype=v.dtype)
    loss, f, gW, gv = loss_and_grads(act, W, v, X, y, grad_W, grad_v)

    Wa, va = W.clone().requires_grad_(True), v.clone().requires_grad_(True)
    f_auto = nets.forward(act, Wa, va, X)
    loss_auto = 0.5 * ((f_auto - y) ** 2).mean(-1)
    aW, av = torch.autograd.grad(loss_auto.sum(), [Wa, va])
    assert_close(loss, loss_auto, "autograd")
    assert_close(f, f_auto, "autograd")
    if grad_W:
        assert_close(gW, aW, "autograd")
    else:
        assert gW is None
    if grad_v:
        assert_close(gv, av, "autograd")
    else:
        assert gv is None


def test_forward_formula():
    """f(x) = (1/√m) Σ_r v_r φ(w_rᵀx/√d), written as an explicit loop over neurons."""
    act = get_activation("tanh")
    W, v, X, _ = _batch([4], 6, 5, 3)
    v = v + 0.1
    loop = sum(v[0, r] * torch.tanh(X[0] @ W[0, r] / math.sqrt(5)) for r in range(6)) / math.sqrt(6)
    assert_close(nets.forward(act, W, v, X)[0], loop)


def test_step_reuses_buffers():
    """Repeated calls give identical results (the preallocated buffers carry no state between steps)."""
    act = get_activation("erf")
    W, v, X, y = _batch([0], 8, 4, 10)
    step = nets.TwoLayerStep(act, X, y, True, True)
    first = step(W + 0.1, v)
    step(W - 0.5, v * 2)
    again = step(W + 0.1, v)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
