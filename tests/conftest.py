"""Shared test helpers: the suite's one tolerance table ``TOL`` and its helper ``assert_close``, small
float64 problems (``small_problem``, ``random_two_layer_problem``), and a training child process.

Every float comparison in the tests takes its tolerance from ``TOL``, by what is compared: a kind names
the two routes and its comment says why that size. A test writes no tolerance inline; a comparison that
needs another size gets its own kind (never a looser one). Not kinds: Monte-Carlo bounds, computed in each
test from its sample size (``MC_SIGMAS`` standard errors) or stated with the measured spread; truncation
bounds of an expansion (an O(ε³) remainder); science thresholds; comparisons at pytest.approx's or
torch.testing.assert_close's own defaults. The golden records (tests/golden/) have their own derived
tolerances (tests/golden/tolerances.json, tests/golden/derive_tolerances.py) and do not use these."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from earlylin.activations import gaussian_constants, get_activation
from earlylin.data.synthetic import make_dataset

# pytest-xdist runs the suite in parallel (pyproject.toml: -n auto, one file per worker): each worker gets its
# share of the cores for torch's threads, so workers do not oversubscribe the machine. Results do not depend
# on the thread count (tests/test_golden.py::test_thread_count_does_not_change_the_network); children that
# tests start keep torch's default.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

# The machine folder (earlylin.runtime.machine: the GEMM choice, the compiled erf) is the suite's own, so that it
# neither reads nor writes the user's; set at import, before any test starts a child or a Ray worker (they inherit
# it). The first process to import this file makes it; pytest-xdist's workers inherit it from there.
if not os.environ.get("EARLYLIN_MACHINE_DIR"):
    os.environ["EARLYLIN_MACHINE_DIR"] = tempfile.mkdtemp(prefix="earlylin-machine-")
    atexit.register(shutil.rmtree, os.environ["EARLYLIN_MACHINE_DIR"], ignore_errors=True)

# The repository's root: tests sit one or two folders below it, mirroring the package (tests/<subpackage>/).
ROOT = Path(__file__).resolve().parent.parent

# Tolerances, by what is compared (float64 throughout unless the kind says otherwise; 1 ulp = 2.2e-16
# relative in float64, 1.2e-7 in float32). Each kind is used both as rtol and as atol unless a test says.
TOL = {
    # --- float64, the same numbers by routes that differ only in rounding
    # a few ulp of O(1) values: a kernel vs its transpose, a block vs the joint kernel, a zero by symmetry
    "ulp": 1e-15,
    # one formula in two arrangements of a few float64 operations (a scaling, a rotation): tens of ulp
    "arith": 1e-14,
    # float64 reordering of the same sums (another matmul/reduction order, batched vs alone): ~1e-13–1e-15
    "roundoff": 1e-13,
    # the kink-aware 2-D quadrature of pair expectations vs the arcsin/arc-cosine closed forms: converged to roundoff
    "quadrature_pair": 1e-13,
    # two exact routes in float64 (closed form vs iteration, formula vs features): sums of 10²–10⁴ terms
    "exact": 1e-12,
    # a figure's CSV rebuilt vs committed, × (|committed| + its column's largest |value|): ≤ 10 ulp per cell
    "table": 1e-12,
    # exact routes with one more cancellation: autograd Hessians, Hermite-weighted quadrature, ΨΨᵀ vs a kernel sum
    "cancellation": 1e-11,
    # --- float64, routes with a discretisation or an error amplified by the problem
    # Gauss–Hermite quadrature vs a closed form: the rule's error on smooth integrands is below this
    "quadrature": 1e-10,
    # absolute, for quadratures of E[g^k], k ≤ 12: odd moments (exactly 0) cancel terms up to ~10⁴
    "moments": 1e-9,
    # analytic gradients vs autograd: the same chain rule, summed in another order
    "autograd": 1e-10,
    # a closed form vs tens to hundreds of explicit GD steps, or a trajectory rebuilt at a step: rounding accumulates
    "iterated": 1e-10,
    # a least-squares fit recovering the exact coefficients it was built from (affine kernel fit, power-law exponents)
    "lstsq": 1e-10,
    # float64 statistics over a whole data set (10⁴ rows): the standardised mean 0 and std 1
    "dataset": 1e-10,
    # absolute, the data set's mean ‖x‖² ≈ d = 192 after standardising (kept at its 1e-9, 5e-12 relative)
    "dataset_norm": 1e-9,
    # errors amplified by conditioning: finite differences (h = 1e-5), Chebyshev fits, pinv, entropy differences,
    # GD near the stability bound or over 10³+ steps
    "conditioned": 1e-9,
    # an eigensolver whose Krylov space is the whole space (n ≤ its steps), or ‖ΨΨᵀ‖ via ΨᵀΨ: dense-solver rounding
    "eigensolver_full": 1e-10,
    # a Lanczos run asked for tol 1e-10–1e-11: its reported residual, and a low-rank operator's extreme eigenvalue
    "eigensolver_tight": 1e-9,
    # Lanczos or ARPACK eigsh (tol 1e-11–1e-12) vs dense eigvalsh on n ≈ 10²: the eigenvalue error, with margin
    "eigensolver": 1e-8,
    # JAX neural-tangents vs earlylin's exact kernels, relative to the coefficients' size: NT's float64 round-off
    # (≈ 1e-10) enters the fitted k-th coefficient as ≈ 1e-10/0.2^k ≤ 3e-9 (tests/ntk/test_exact_nt.py)
    "neural_tangents": 1e-6,
    # --- float32
    # about 1 ulp of float32 (2⁻²³ ≈ 1.2e-7): a floor under a relative float32 error that can be 0
    "fp32_ulp": 1e-7,
    # a float32 mean of O(1) values (a loss) vs its float64 value: a few float32 ulp
    "fp32_loss": 1e-6,
    # float32 vs float64 routes, relative to each tensor's scale: fp32 sums of 10²–10³ terms in another order
    # (3×TF32 on a GPU: ≈ 2⁻²² more)
    "fp32": 2e-5,
}

# Monte-Carlo bounds: a sample mean within this many of its standard errors (computed from the sample size
# in each test), false alarm ≈ 6e-7 per comparison.
MC_SIGMAS = 5


def assert_close(actual, expected, kind: str = "exact", rtol: float | None = None, atol: float | None = None) -> None:
    """np.testing.assert_allclose with the tolerance ``TOL[kind]`` as both rtol and atol; ``rtol`` or ``atol``
    (taken from ``TOL`` too, or 0) overrides one of them."""
    tol = TOL[kind]
    a = actual.detach().cpu().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    e = expected.detach().cpu().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    np.testing.assert_allclose(a, e, rtol=tol if rtol is None else rtol, atol=tol if atol is None else atol)


@pytest.fixture
def small_problem():
    """A float64 toy problem: d = 8, n = 40, n_test = 20, erf."""
    data = make_dataset(seed=3, d=8, n=40, n_test=20)
    act = get_activation("erf")
    return data, act, gaussian_constants(act)


def random_two_layer_problem(K: int, n: int, d: int, m: int, dtype=torch.float32, seed: int = 0,
                             device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    """A batch of K generic two-layer problems (X (K, n, d), ±1 labels y (K, n), Gaussian W (K, m, d) and v
    (K, m)), drawn in float64 and then cast to ``dtype`` on ``device``: the fast and fused steps' tests."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, n, d, generator=g, dtype=torch.float64)
    y = torch.sign(torch.randn(K, n, generator=g, dtype=torch.float64))
    W = torch.randn(K, m, d, generator=g, dtype=torch.float64)
    v = torch.randn(K, m, generator=g, dtype=torch.float64)
    return tuple(t.to(device, dtype) for t in (X, y, W, v))


SMOOTH = ("erf", "tanh", "gelu", "softplus")
ALL_ACTIVATIONS = (*SMOOTH, "relu", "leaky_relu:0.2")


def default_sigint() -> None:
    """In a child, before it starts: SIGINT back to its default action. A shell starts a background job (and
    so a CI runner may start pytest) with SIGINT ignored, a child inherits that, and Python then never raises
    KeyboardInterrupt; the tests check what earlylin does on Ctrl-C, whatever started pytest."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[str, str]:
    """``proc.communicate(timeout)``; a child still running then is killed (no run left behind) and the test
    fails with its stderr."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"the child still ran {timeout} s later; its stderr: {err[-2000:]}") from None


def start_training(out: Path, *flags: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m earlylin.verify`` training "forever" in a child process into ``out``, returned once its training
    loop has started: the child's first progress line ("GD steps: 0/…", written when stderr is not a terminal)
    is the readiness signal, so no test races a sleep against the set-up (which a loaded machine slows down).
    Later progress lines are an hour apart, so the rest of stderr is what the test provokes. ``flags``: more
    flags (the cache: ``--cache-dir DIR`` or ``--no-cache``); ``env``: more environment variables."""
    from earlylin.runtime.progress import PROGRESS_ENV

    full = {**os.environ, PROGRESS_ENV: "3600", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "earlylin.verify", "--d", "8", "--n", "100", "--n-test", "20",
                             "--width", "16", "--steps", "10000000", "--device", "cpu", "--out", str(out), *flags],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=full,
                            preexec_fn=default_sigint)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("GD steps: 0/"):
            return proc
    proc.kill()
    raise AssertionError(f"the child ended before training started: {''.join(seen)}")
