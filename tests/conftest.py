"""Shared test helpers: one tolerance helper, small float64 problems, and a training child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from earlylin.activations import gaussian_constants, get_activation
from earlylin.data.synthetic import make_dataset

# The repository's root: tests sit one or two folders below it, mirroring the package (tests/<subpackage>/).
ROOT = Path(__file__).resolve().parent.parent

# Tolerances, by what is compared (float64 throughout unless a test says otherwise).
TOL = {
    "exact": 1e-12,  # two exact routes in float64 (closed form vs iteration, formula vs features)
    "quadrature": 1e-10,  # quadrature vs a closed form
    "autograd": 1e-10,  # analytic gradients vs autograd
}


def assert_close(actual, expected, kind: str = "exact", rtol: float | None = None, atol: float | None = None) -> None:
    """np.testing.assert_allclose with the project's tolerance for ``kind`` (both rtol and atol)."""
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
