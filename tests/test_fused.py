"""The fused Triton step (earlylin.nets.fused) against the reference TwoLayerStep: same loss, outputs and
gradients to fp32 rounding, on shapes that exercise every mask (n not a multiple of the row block,
d with a tail below 16, m not a power of two). Through Triton's CPU interpreter by default; with
TRITON_INTERPRET=0 on a CUDA machine, the compiled kernel."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from earlylin.activations import Activation, get_activation
from earlylin.config import set_exact_fp32
from earlylin.errors import ConfigError
from earlylin.nets import two_layer as nets

# Triton's interpreter runs the kernel on CPU tensors; TRITON_INTERPRET must be set before triton is
# first imported (its own library functions are wrapped at import). TRITON_INTERPRET=0 on a GPU
# machine runs the same checks on the compiled kernel instead.
if "triton" not in sys.modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from earlylin.nets import fused  # imported after the environment is set

DEVICE = "cpu" if fused._interpreting() else "cuda"
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("TRITON_INTERPRET is off and no CUDA device is visible", allow_module_level=True)
if DEVICE == "cuda":
    set_exact_fp32()  # the reference's matmuls in true fp32, as in every run

# Relative to each tensor's scale: fp32 results summed in a different order.
RTOL = 2e-5


def _problem(K: int, n: int, d: int, m: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, n, d, generator=g)
    y = torch.sign(torch.randn(K, n, generator=g))
    W = torch.randn(K, m, d, generator=g)
    v = torch.randn(K, m, generator=g)
    return tuple(t.to(DEVICE) for t in (X, y, W, v))


def _assert_matches(actual, expected, what: str) -> None:
    assert (actual is None) == (expected is None), what
    if expected is None:
        return
    assert actual.shape == expected.shape, what
    scale = expected.abs().max().item() + 1e-30
    err = (actual - expected).abs().max().item()
    assert err <= RTOL * scale, f"{what}: max |Δ| = {err:.3g}, scale {scale:.3g}"


def _check(act_name: str, K: int, n: int, d: int, m: int, grad_W: bool, grad_v: bool, **knobs) -> None:
    act = get_activation(act_name)
    X, y, W, v = _problem(K, n, d, m)
    ref = nets.TwoLayerStep(act, X, y, grad_W, grad_v)(W, v)
    out = fused.FusedTwoLayerStep(act, X, y, grad_W, grad_v, **knobs)(W, v)
    for name, a, e in zip(("loss", "f", "gW", "gv"), out, ref, strict=True):
        _assert_matches(a, e, f"{act_name} K={K} n={n} d={d} m={m} {name}")


@pytest.mark.parametrize(
    ("act_name", "K", "n", "d", "m"),
    [
        ("erf", 1, 37, 50, 256),  # d = 32 + 16 + tail 2 (the benchmark's split), n < one block
        ("erf", 3, 100, 20, 64),  # d = 16 + tail 4, several blocks per program
        ("erf", 3, 45, 5, 100),  # tail-only d, m not a power of two
        ("relu", 3, 70, 50, 256),
        ("relu", 1, 33, 17, 64),  # tail of one column
        ("relu", 3, 50, 64, 100),  # one chunk, no tail
    ],
)
@pytest.mark.parametrize(("grad_W", "grad_v"), [(True, True), (True, False), (False, True), (False, False)])
def test_matches_reference(act_name, K, n, d, m, grad_W, grad_v):
    _check(act_name, K, n, d, m, grad_W, grad_v)


@pytest.mark.parametrize("act_name", ["tanh", "gelu", "softplus", "leaky_relu:0.2"])
def test_other_activations(act_name):
    _check(act_name, 2, 40, 24, 64, True, True)


@pytest.mark.parametrize(("block_m", "splits"), [(16, 1), (16, 3), (64, 5)])
def test_launch_knobs(block_m, splits):
    """Any block size and number of programs per seed (including more programs than blocks)."""
    _check("erf", 2, 90, 50, 64, True, True, block_m=block_m, splits=splits)


def test_unbatched_and_deterministic():
    act = get_activation("erf")
    X, y, W, v = _problem(1, 40, 50, 64)
    step = fused.FusedTwoLayerStep(act, X[0], y[0], True, True)
    ref = nets.TwoLayerStep(act, X[0], y[0], True, True)(W[0], v[0])
    first, second = step(W[0], v[0]), step(W[0], v[0])
    for name, a, b, e in zip(("loss", "f", "gW", "gv"), first, second, ref, strict=True):
        _assert_matches(a, e, name)
        assert torch.equal(a, b), f"{name} differs between two identical calls"


def test_unsupported_activation_falls_back():
    custom = Activation("cube", lambda z: z**3, lambda z: 3 * z**2)
    X, y, _, _ = _problem(1, 8, 4, 16)
    assert not fused.fused_available(custom, DEVICE)
    assert fused.fused_available(get_activation("erf"), DEVICE)  # CPU counts under the interpreter
    with pytest.raises(ConfigError, match="fused GPU step implements"):
        fused.FusedTwoLayerStep(custom, X, y, True, True)
    with pytest.raises(ConfigError, match="float32"):
        fused.FusedTwoLayerStep(get_activation("erf"), X.double(), y.double(), True, True)


def test_split_input_dim():
    assert fused.split_input_dim(50) == (32, 16, 2)
    assert fused.split_input_dim(64) == (64, 0, 0)
    assert fused.split_input_dim(5) == (0, 0, 8)
    assert fused.split_input_dim(127) == (64, 64, 0)
    for d in range(1, 300):
        da, db, dt = fused.split_input_dim(d)
        tail = d - da - db
        assert da in (0, *(2**p for p in range(4, 10))) and db in (0, *(2**p for p in range(4, 10)))
        assert da <= d and db < 2 * (d - da) + 1  # a padded second chunk is at most half empty
        assert tail < 16 and (dt == 0 if tail <= 0 else tail <= dt < 2 * tail)
