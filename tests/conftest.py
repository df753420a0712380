"""Shared test helpers: one tolerance helper and small float64 problems."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from earlylin.activations import gaussian_constants, get_activation
from earlylin.data.synthetic import make_dataset

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
