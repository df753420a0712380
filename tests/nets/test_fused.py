"""The fused Triton step (earlylin.nets.fused) against the reference TwoLayerStep: same loss, outputs and
gradients to fp32 rounding, on shapes that exercise every mask (n not a multiple of the row block, d
padded to a power of two, m not a multiple of the hidden tile). Through Triton's CPU interpreter by
default (which computes every dot in fp32, whatever the precision mode); with TRITON_INTERPRET=0 on a
CUDA machine, the compiled kernels in their 3×TF32 mode. The 3×TF32 split itself is checked on the
CPU by its emulation, :func:`earlylin.nets.fused.tf32x3_matmul`."""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys

import pytest
import torch

from earlylin.activations import Activation, get_activation
from earlylin.errors import ConfigError
from earlylin.nets import two_layer as nets
from earlylin.runtime.devices import exact_fp32
from tests.conftest import ROOT, TOL, random_two_layer_problem

# Triton's interpreter runs the kernels on CPU tensors; TRITON_INTERPRET must be set before triton is
# first imported. TRITON_INTERPRET=0 on a GPU machine runs the same checks on the compiled kernels.
if "triton" not in sys.modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")

from earlylin.nets import fused  # after the environment is set (imports without Triton)

CHILD = "EARLYLIN_FUSED_CHILD"  # set in the fresh process that test_in_fresh_process starts


def _llvm_clash() -> bool:
    """TensorFlow (loaded by the `nt` oracle's tests) and Triton each bring LLVM: importing Triton in a process
    that has loaded TensorFlow or jaxlib aborts it. Then the kernel tests run in a fresh process instead."""
    return any(name in sys.modules for name in ("tensorflow", "jaxlib")) and CHILD not in os.environ


def _needs_triton(test):
    """Skip without Triton; in a process where importing it would abort, leave the test to the fresh process."""

    @functools.wraps(test)
    def check(*args, **kwargs):
        if _llvm_clash():
            pytest.skip("TensorFlow/jaxlib are loaded here: run by test_in_fresh_process")
        return test(*args, **kwargs)

    return pytest.mark.skipif(not fused._triton_importable(), reason="Triton is not installed")(check)


needs_triton = _needs_triton


@pytest.mark.skipif(not fused._triton_importable(), reason="Triton is not installed")
def test_in_fresh_process():
    """Where TensorFlow or jaxlib is loaded (the whole suite), this file's kernel tests run in a new process."""
    if not _llvm_clash():
        pytest.skip("the kernel tests run in this process")
    env = {**os.environ, CHILD: "1", "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET", "1")}
    done = subprocess.run([sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-x"],
                          env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
DEVICE = "cpu" if fused._interpreting() else "cuda"
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("TRITON_INTERPRET is off and no CUDA device is visible", allow_module_level=True)


@pytest.fixture(autouse=True, scope="module")
def _true_fp32():
    """The reference's matmuls in true fp32 on CUDA, as in every run (runtime.devices.exact_fp32)."""
    with exact_fp32():
        yield


RTOL = TOL["fp32"]  # relative to each tensor's scale


def _assert_matches(actual, expected, what: str, rtol: float = RTOL) -> None:
    assert (actual is None) == (expected is None), what
    if expected is None:
        return
    assert actual.shape == expected.shape, what
    scale = expected.abs().max().item() + 1e-30
    err = (actual.double() - expected.double()).abs().max().item()
    assert err <= rtol * scale, f"{what}: max |Δ| = {err:.3g}, scale {scale:.3g}"


def _check(act_name: str, K: int, n: int, d: int, m: int, grad_W: bool, grad_v: bool, **knobs) -> None:
    act = get_activation(act_name)
    X, y, W, v = random_two_layer_problem(K, n, d, m, device=DEVICE)
    ref = nets.TwoLayerStep(act, X, y, grad_W, grad_v)(W, v)
    out = fused.FusedTwoLayerStep(act, X, y, grad_W, grad_v, **knobs)(W, v)
    for name, a, e in zip(("loss", "f", "gW", "gv"), out, ref, strict=True):
        _assert_matches(a, e, f"{act_name} K={K} n={n} d={d} m={m} {name}")


@needs_triton
@pytest.mark.parametrize(
    ("act_name", "K", "n", "d", "m", "grad_W", "grad_v", "knobs"),
    [
        ("erf", 1, 37, 50, 80, True, True, {}),  # d = 50 padded to 64, n < one row block, m = 64 + 16
        ("erf", 2, 150, 20, 64, True, True, {"block_m": 32, "block_n": 32, "splits": 2}),  # several blocks
        ("erf", 2, 90, 5, 100, True, False, {"block_m": 16, "block_n": 64, "splits": 3}),  # d < 16
        ("erf", 1, 70, 50, 40, False, True, {"block_m": 64, "block_n": 16, "splits": 1}),
        ("erf", 1, 33, 17, 64, False, False, {}),  # forward only
        ("relu", 2, 70, 50, 48, True, True, {"block_m": 32, "splits": 5}),  # more splits than blocks
    ],
)
def test_matches_reference(act_name, K, n, d, m, grad_W, grad_v, knobs):
    _check(act_name, K, n, d, m, grad_W, grad_v, **knobs)


@needs_triton
@pytest.mark.parametrize("act_name", ["tanh", "gelu", "softplus", "leaky_relu:0.2"])
def test_other_activations(act_name):
    _check(act_name, 2, 40, 24, 32, True, True, block_n=16)


@needs_triton
def test_unbatched_and_deterministic():
    act = get_activation("erf")
    X, y, W, v = random_two_layer_problem(1, 40, 50, 32, device=DEVICE)
    step = fused.FusedTwoLayerStep(act, X[0], y[0], True, True)
    ref = nets.TwoLayerStep(act, X[0], y[0], True, True)(W[0], v[0])
    first, second = step(W[0], v[0]), step(W[0], v[0])
    for name, a, b, e in zip(("loss", "f", "gW", "gv"), first, second, ref, strict=True):
        _assert_matches(a, e, name)
        assert torch.equal(a, b), f"{name} differs between two identical calls"
    info = step.kernel_info()
    assert info["input_precision"] == "tf32x3" and info["d_padded"] == 64


@needs_triton
def test_refusals():
    custom = Activation("cube", lambda z: z**3, lambda z: 3 * z**2)
    X, y, _, _ = random_two_layer_problem(1, 8, 4, 16, device=DEVICE)
    assert not fused.fused_available(custom, DEVICE)
    assert fused.fused_available(get_activation("erf"), DEVICE)  # CPU counts under the interpreter
    with pytest.raises(ConfigError, match="fused step implements"):
        fused.FusedTwoLayerStep(custom, X, y, True, True)
    with pytest.raises(ConfigError, match="float32"):
        fused.FusedTwoLayerStep(get_activation("erf"), X.double(), y.double(), True, True)
    with pytest.raises(ConfigError, match="power of two"):
        fused.FusedTwoLayerStep(get_activation("erf"), X, y, True, True, block_n=24)
    with pytest.raises(ConfigError, match="input_precision"):
        fused.FusedTwoLayerStep(get_activation("erf"), X, y, True, True, input_precision="tf32")


def test_fused_refused_without_a_gpu(monkeypatch):
    """On a CPU without the interpreter, --step fused is refused before any work, naming the fix."""
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ConfigError, match=r"step='fused': .*(CUDA|Triton)"):  # whichever is missing first
        nets.check_step("fused", "erf", "cpu", "float32")
    with pytest.raises(ConfigError, match="float32 only"):
        nets.check_step("fused", "erf", "cpu", "float64")


def test_padded_dim():
    assert [fused.padded_dim(d) for d in (1, 5, 16, 17, 50, 64, 65)] == [16, 16, 16, 32, 64, 64, 128]


def _emulated_step(X, y, W, v, matmul):
    """The fused kernels' erf step with every product done by ``matmul`` (fp32 elsewhere)."""
    n, d, m = X.shape[-2], X.shape[-1], W.shape[-2]
    Z = matmul(X, (W * (1.0 / math.sqrt(d))).transpose(-1, -2))
    f = (torch.erf(Z) * v).sum(-1) / math.sqrt(m)
    r = f - y
    G = (2.0 / math.sqrt(math.pi)) * torch.exp(-Z * Z)
    gWt = matmul((X * r.unsqueeze(-1)).transpose(-1, -2), G)
    return f, gWt.transpose(-1, -2) * v.unsqueeze(-1) / (n * math.sqrt(m) * math.sqrt(d))


def test_tf32x3_split_is_fp32_accurate():
    """3×TF32 products keep fp32 accuracy: the emulated split's f and ∇_W are as close to float64 as the
    fp32 step's (within 3×), while a single TF32 product is > 30× further off (the check can fail)."""

    def tf32_once(a, b):
        bits = lambda x: ((x.contiguous().view(torch.int32) + 0x1000) & ~0x1FFF).view(torch.float32)  # noqa: E731
        return bits(a) @ bits(b)

    g = torch.Generator().manual_seed(3)
    X, W, v = (torch.randn(*shape, generator=g, dtype=torch.float64) for shape in ((400, 50), (64, 50), (64,)))
    y = torch.sign(torch.randn(400, generator=g, dtype=torch.float64))
    exact = _emulated_step(X, y, W, v, torch.matmul)
    args32 = [t.float() for t in (X, y, W, v)]
    errors = {}
    for name, mm in (("fp32", torch.matmul), ("tf32x3", fused.tf32x3_matmul), ("tf32", tf32_once)):
        out = _emulated_step(*args32, mm)
        errors[name] = [((a.double() - e).abs().max() / e.abs().max()).item() for a, e in zip(out, exact, strict=True)]
    for i, what in enumerate(("f", "gW")):
        assert errors["tf32x3"][i] <= 3 * errors["fp32"][i] + TOL["fp32_ulp"], (what, errors)
        assert errors["tf32"][i] > 30 * errors["fp32"][i], (what, errors)
