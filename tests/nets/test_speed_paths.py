"""The row-blocked ``fast`` step (earlylin.nets.two_layer.BlockedTwoLayerStep) against the reference
TwoLayerStep: the same loss, outputs and gradients to fp32 rounding (exactly the same equations in
float64), independent of how the blocks are shared among threads; the step selection (auto, reference,
fast, fused) and its record; and a whole run: the early-window MSE with the fast path agrees with the
float64 run to as many digits as the fp32 reference path does."""

from __future__ import annotations

import math

import pytest
import torch

import earlylin
from earlylin.activations import get_activation
from earlylin.config import TwoLayerConfig
from earlylin.errors import ConfigError
from earlylin.nets import native, providers
from earlylin.nets import two_layer as nets
from earlylin.runtime import machine
from tests.conftest import ALL_ACTIVATIONS, assert_close, random_two_layer_problem


def _rel_err(a: torch.Tensor, e: torch.Tensor) -> float:
    return ((a.double() - e.double()).abs().max() / e.double().abs().max()).item()


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
@pytest.mark.parametrize(("grad_W", "grad_v"), [(True, True), (True, False), (False, True)])
def test_fast_equals_reference_in_float64(name, grad_W, grad_v):
    """Same equations: in float64 the blocked step equals the reference to 1e-12 (n not a multiple of B)."""
    act = get_activation(name)
    X, y, W, v = random_two_layer_problem(2, 103, 7, 12, torch.float64)
    ref = nets.TwoLayerStep(act, X, y, grad_W, grad_v)(W, v)
    out = nets.BlockedTwoLayerStep(act, X, y, grad_W, grad_v, block_rows=16)(W, v)
    for a, e in zip(out, ref, strict=True):
        assert (a is None) == (e is None)
        if e is not None:
            assert_close(a, e)


PHIS = [pytest.param("native", marks=pytest.mark.skipif(not native.available(), reason="no compiled erf here")),
        "torch"]


@pytest.mark.parametrize("gemm", list(providers.GEMMS))
@pytest.mark.parametrize(("name", "phi"), [("erf", "native"), ("erf", "torch"), ("relu", None), ("tanh", None)])
def test_fast_matches_reference_to_fp32_rounding(name, phi, gemm):
    """In float32 the blocked step is as close to the float64 step as the fp32 reference is (within 4×,
    the fp32 sums are only reordered; erf's compiled pass is within 1.5 ulp of float64 as torch.erf is within
    0.7), on the benchmark's d and m at a small n."""
    if phi == "native" and not native.available():
        pytest.skip(f"no compiled erf here: {native.unavailable_reason()}")
    act = get_activation(name)
    X, y, W, v = random_two_layer_problem(2, 700, 50, 256, torch.float64)
    W = W / 2.0
    exact = nets.TwoLayerStep(act, X, y, True, True)(W, v)
    X32, y32, W32, v32 = (t.float() for t in (X, y, W, v))
    ref = nets.TwoLayerStep(act, X32, y32, True, True)(W32, v32)
    out = nets.BlockedTwoLayerStep(act, X32, y32, True, True, block_rows=128, gemm=gemm, phi=phi)(W32, v32)
    for what, a, r, e in zip(("loss", "f", "gW", "gv"), out, ref, exact, strict=True):
        eps = torch.finfo(torch.float32).eps
        assert _rel_err(a, e) <= 4 * _rel_err(r, e) + 4 * eps, (what, _rel_err(a, e), _rel_err(r, e))


@pytest.mark.parametrize("phi", PHIS)
@pytest.mark.parametrize("gemm", list(providers.GEMMS))
def test_threads_do_not_change_the_result(gemm, phi):
    """The partial sums are added in block order: 1, 2 or 3 worker threads give the same bits; so do
    repeated calls (the reused buffers carry nothing over); unbatched inputs give the batched result."""
    act = get_activation("erf")
    X, y, W, v = random_two_layer_problem(2, 300, 20, 32)
    outs = [nets.BlockedTwoLayerStep(act, X, y, True, True, block_rows=64, threads=t, gemm=gemm, phi=phi)(W, v)
            for t in (1, 2, 3)]
    step = nets.BlockedTwoLayerStep(act, X, y, True, True, block_rows=64, gemm=gemm, phi=phi)
    outs += [step(W, v), step(W, v)]
    for out in outs[1:]:
        for a, b in zip(out, outs[0], strict=True):
            assert torch.equal(a, b)
    single = nets.BlockedTwoLayerStep(act, X[1], y[1], True, True, block_rows=64, gemm=gemm, phi=phi)(W[1], v[1])
    for a, b in zip(single, outs[0], strict=True):
        assert torch.equal(a, b[1])


def test_torch_thread_count_does_not_change_a_single_block_or_the_test_outputs():
    """One seed and one block (n = 100 < B) and the fast path's test outputs (nets.forward_rows): the same
    bits with torch at 1 and at 2 intra-op threads. Where a threaded product splits its sums by thread
    (vᵀHᵀ at n = 100, m = 256 on an AVX-512 Xeon), the calling thread's ops would differ; the pool's
    workers run every op single-threaded. forward_rows equals forward in float64 (same equations)."""
    act = get_activation("erf")
    X, y, W, v = random_two_layer_problem(1, 100, 20, 256)
    main = torch.get_num_threads()
    outs, tests = [], []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            outs.append(nets.BlockedTwoLayerStep(act, X, y, True, True)(W, v))
            tests.append(nets.forward_rows(act, W, v, X))
    finally:
        torch.set_num_threads(main)
    for a, b in zip(*outs, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(tests[0], tests[1])
    X64, _, W64, v64 = random_two_layer_problem(3, 103, 7, 12, torch.float64)
    assert_close(nets.forward_rows(act, W64, v64, X64, block_rows=16), nets.forward(act, W64, v64, X64))


def test_block_larger_than_n_and_bad_knobs():
    act = get_activation("erf")
    X, y, W, v = random_two_layer_problem(1, 10, 3, 4, torch.float64)
    ref = nets.TwoLayerStep(act, X, y, True, True)(W, v)
    for a, e in zip(nets.BlockedTwoLayerStep(act, X, y, True, True, block_rows=4096)(W, v), ref, strict=True):
        assert_close(a, e)
    with pytest.raises(ConfigError, match="block_rows"):
        nets.BlockedTwoLayerStep(act, X, y, True, True, block_rows=0)
    assert nets.default_block_rows(256) == machine.l2_bytes() // 1024 and nets.default_block_rows(10**6) == 64
    assert machine.l2_bytes() >= 1 << 16


def test_step_selection():
    act = get_activation("erf")
    X, y, _, _ = random_two_layer_problem(1, 10, 3, 4)
    assert nets.resolve_step("auto", "cpu") == "fast"
    assert nets.resolve_step("auto", "cuda") == "reference"
    assert nets.resolve_step("reference", "cpu") == "reference"
    assert isinstance(nets.make_step("auto", act, X, y, True, True), nets.BlockedTwoLayerStep)
    assert isinstance(nets.make_step("reference", act, X, y, True, True), nets.TwoLayerStep)
    assert nets.step_info("fused")["matmul_precision"] == "tf32x3"
    assert nets.step_info("fast")["matmul_precision"] == "ieee"
    with pytest.raises(ConfigError, match="step="):
        nets.resolve_step("quick", "cpu")
    with pytest.raises(ConfigError, match="step='quick'"):
        TwoLayerConfig(step="quick").validate()


def _digits(a: float, b: float) -> float:
    """Significant digits on which a and b agree: −log10 |a − b|/|b| (∞ when equal)."""
    return math.inf if a == b else -math.log10(abs(a - b) / abs(b))


def test_run_with_fast_path_is_fp32_accurate(tmp_path):
    """A small default-shaped run: the early-window MSE(net, lin) of the fast path agrees with the float64
    run to as many significant digits (rounded down) as the fp32 reference path does, and the record
    names the step and its precision."""
    base = TwoLayerConfig(d=20, width=64, n=800, n_test=200, steps=150, device="cpu")
    results = {name: earlylin.run(base.with_(**changes), cache_dir=None, progress=False)
               for name, changes in (("f64", {"dtype": "float64", "step": "reference"}),
                                     ("reference", {"step": "reference"}), ("fast", {"step": "fast"}))}
    key = "max_test_mse_early"
    exact = results["f64"].summary[key]
    ref_digits = _digits(results["reference"].summary[key], exact)
    fast_digits = _digits(results["fast"].summary[key], exact)
    assert ref_digits > 4 and math.floor(fast_digits) >= math.floor(ref_digits), (ref_digits, fast_digits)
    step = results["fast"].record["net_step"]
    assert step == {"impl": "fast", "matmul_precision": "ieee", "fused": "false", "gemm": step["gemm"],
                    "phi": "native" if native.available() else "torch"}
    assert step["gemm"] in providers.GEMMS
    assert results["reference"].record["net_step"]["impl"] == "reference"
