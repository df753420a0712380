"""The μ metric (Kalimeris et al. 2019) on constructed cases with exact answers, in nats."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from earlylin.experiments import mu
from tests.conftest import TOL, assert_close

LOG2 = math.log(2.0)


def h(p: float) -> float:
    """Binary entropy in nats."""
    return -sum(q * math.log(q) for q in (p, 1.0 - p) if q > 0)


def entropy(*cols: np.ndarray) -> float:
    """Plug-in joint entropy of the signs of the columns, by counting tuples (an independent route)."""
    keys = list(zip(*(np.where(np.asarray(c) >= 0, 1, -1).tolist() for c in cols), strict=True))
    n = len(keys)
    return -sum(c / n * math.log(c / n) for c in Counter(keys).values())


def mi_by_entropy(a, b) -> float:
    return entropy(a) + entropy(b) - entropy(a, b)


def cmi_by_entropy(a, b, c) -> float:
    return entropy(a, c) + entropy(b, c) - entropy(a, b, c) - entropy(c)


def _signs(rng: np.random.Generator, k: int, n: int, p: float = 0.5) -> np.ndarray:
    return np.where(rng.random((k, n)) < p, 1.0, -1.0)


# ---- exact cases ------------------------------------------------------------------------------

# Y = ++++----, F agrees with Y on 6 of 8 points: p(F,Y) = (3/8, 1/8; 1/8, 3/8), uniform marginals
Y8 = np.array([1, 1, 1, 1, -1, -1, -1, -1], dtype=float)
F8 = np.array([1, 1, 1, -1, -1, -1, -1, 1], dtype=float)
I_F8_Y8 = LOG2 - h(0.25)  # = (3/4) log 3 − log 2


def test_mi_closed_form_and_unit():
    """I = log 2 − h(1/4) = ¾ log 3 − log 2 nats for the 6-of-8 agreement table; I(Y;Y) = H(Y) = log 2."""
    assert math.isclose(I_F8_Y8, 0.75 * math.log(3.0) - LOG2, rel_tol=TOL["arith"])
    assert_close(mu.mutual_information(F8, Y8), I_F8_Y8)
    assert_close(mu.mutual_information(Y8, Y8), LOG2)
    assert_close(mu.mutual_information(Y8, -Y8), LOG2)
    # unbalanced: P(Y = +1) = 3/4 ⇒ I(Y; Y) = H(Y) = h(1/4)
    y = np.array([1, 1, 1, -1], dtype=float)
    assert_close(mu.mutual_information(y, y), h(0.25))


def test_f_equals_l_gives_mu_equal_to_information():
    """F = L ⇒ I(F;Y|L) = 0, so μ = I(F;Y) = I(L;Y) (= log 2 − h(1/4) here)."""
    terms = mu.mu_terms(F8, F8, Y8)
    assert_close(terms.i_fy_given_l, 0.0)
    assert_close(terms.mu, I_F8_Y8)
    assert_close(terms.mu, mu.mutual_information(F8, Y8))
    # L = Y: Y is a function of L, so I(F;Y|L) = 0 and μ = I(F;Y) for any F
    assert_close(mu.mu_metric(F8, Y8, Y8), I_F8_Y8)
    assert_close(mu.conditional_mutual_information(F8, Y8, Y8), 0.0)


def test_f_independent_of_l_and_y_gives_zero():
    """F independent of (L, Y) exactly (each (L, Y) row repeated with F = +,+,+,−): μ = 0 although
    I(L;Y) > 0. Built on the 6-of-8 (L, Y) table so that L carries information about Y."""
    L = np.repeat(F8, 4)
    Y = np.repeat(Y8, 4)
    F = np.tile([1.0, 1.0, 1.0, -1.0], 8)
    terms = mu.mu_terms(F, L, Y)
    assert_close(terms.i_fy, 0.0)
    assert_close(terms.i_fy_given_l, 0.0)
    assert_close(terms.mu, 0.0)
    assert_close(mu.mutual_information(L, Y), I_F8_Y8)


def test_f_equals_y_with_l_independent_of_y():
    """F = Y, L independent of Y: I(F;Y) = H(Y), I(F;Y|L) = H(Y|L) − H(Y|F,L) = H(Y) − 0, so
    μ = H(Y) − H(Y) = 0. With P(Y = +1) = 3/4, H(Y) = h(1/4)."""
    Y = np.repeat([1.0, 1.0, 1.0, -1.0], 2)  # P(Y=+1) = 3/4
    L = np.tile([1.0, -1.0], 4)  # independent of Y, balanced
    terms = mu.mu_terms(Y, L, Y)
    assert_close(terms.i_fy, h(0.25))
    assert_close(terms.i_fy_given_l, h(0.25))
    assert_close(terms.mu, 0.0)


def test_synergy_gives_negative_mu():
    """Y = F·L with F, L independent fair coins: I(F;Y) = 0, I(F;Y|L) = log 2, so μ = −log 2 (μ is the
    interaction information, not sign-definite)."""
    F, L = (np.array(c, dtype=float) for c in zip(*itertools.product([1, -1], repeat=2), strict=True))
    terms = mu.mu_terms(F, L, F * L)
    assert_close(terms.i_fy, 0.0)
    assert_close(terms.i_fy_given_l, LOG2)
    assert_close(terms.mu, -LOG2)


def test_sign_conventions():
    """Outputs are thresholded at 0 with sign(0) = +1 (as compare.class_error); continuous y uses sign(y).
    A constant F (the f ≡ 0 network of step 0) carries no information."""
    y_cont = Y8 * np.linspace(0.1, 2.0, 8)
    assert_close(mu.mutual_information(F8 * 3.7, y_cont), I_F8_Y8)
    zeros = np.zeros(8)
    assert_close(mu.mu_metric(zeros, F8, Y8), 0.0)
    assert_close(mu.mutual_information(np.where(F8 > 0, 0.0, -1.0), Y8), I_F8_Y8)


# ---- properties against an independent entropy computation -------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    p=st.sampled_from([0.5, 0.2, 0.9, 1.0]),
)
def test_agrees_with_entropy_formulas(n, seed, p):
    """I(A;B) = H(A)+H(B)−H(A,B), I(A;B|C) = H(A,C)+H(B,C)−H(A,B,C)−H(C) (counted with a Counter),
    symmetry, 0 ≤ I ≤ min(H(A), H(B)) ≤ log 2, and μ = I(F;Y) − I(F;Y|L)."""
    rng = np.random.default_rng(seed)
    a, b, c = _signs(rng, 3, n, p)
    b = np.where(rng.random(n) < 0.6, a, b)  # some dependence
    i_ab = float(mu.mutual_information(a, b))
    assert math.isclose(i_ab, mi_by_entropy(a, b), rel_tol=TOL["conditioned"], abs_tol=TOL["exact"])
    assert math.isclose(i_ab, float(mu.mutual_information(b, a)), rel_tol=TOL["exact"], abs_tol=TOL["ulp"])
    assert 0.0 <= i_ab <= min(entropy(a), entropy(b)) + TOL["exact"] <= LOG2 + TOL["exact"]
    i_abc = float(mu.conditional_mutual_information(a, b, c))
    assert math.isclose(i_abc, cmi_by_entropy(a, b, c), rel_tol=TOL["conditioned"], abs_tol=TOL["exact"])
    assert math.isclose(i_abc, float(mu.conditional_mutual_information(b, a, c)), rel_tol=TOL["exact"],
                        abs_tol=TOL["ulp"])
    assert 0.0 <= i_abc <= LOG2 + TOL["exact"]
    m = float(mu.mu_metric(a, c, b))
    assert math.isclose(m, mi_by_entropy(a, b) - cmi_by_entropy(a, b, c), rel_tol=TOL["conditioned"],
                        abs_tol=TOL["exact"])


# ---- batching, types, NaN -----------------------------------------------------------------------


def test_batch_over_seeds_equals_one_at_a_time_numpy_and_torch():
    """(K, n) inputs give (K,) values equal to K separate 1-D calls; numpy in → numpy out, torch → torch
    float64 on the same device; numpy and torch agree bit for bit."""
    rng = np.random.default_rng(0)
    K, n = 7, 200
    y = _signs(rng, K, n)
    f_lin = np.where(rng.random((K, n)) < 0.8, y, -y) * rng.random((K, n))
    f_net = np.where(rng.random((K, n)) < 0.7, f_lin, -f_lin) + 0.01 * rng.standard_normal((K, n))
    fns = {
        "mi": lambda a, b, c: mu.mutual_information(a, c),
        "cmi": lambda a, b, c: mu.conditional_mutual_information(a, c, b),
        "mu": mu.mu_metric,
    }
    for name, fn in fns.items():
        batch = fn(f_net, f_lin, y)
        assert isinstance(batch, np.ndarray) and batch.shape == (K,), name
        single = np.array([fn(f_net[k], f_lin[k], y[k]) for k in range(K)])
        assert isinstance(fn(f_net[0], f_lin[0], y[0]), np.floating)
        np.testing.assert_array_equal(batch, single)
        tb = fn(*(torch.from_numpy(a).float() for a in (f_net, f_lin, y)))
        assert isinstance(tb, torch.Tensor) and tb.dtype == torch.float64 and tb.shape == (K,)
        np.testing.assert_array_equal(tb.numpy(), batch)
    # mixed numpy / torch inputs give torch
    assert isinstance(mu.mu_metric(torch.from_numpy(f_net), f_lin, y), torch.Tensor)


def test_nonfinite_row_gives_nan_and_shape_errors():
    """A diverged seed (NaN outputs) gets NaN; the other rows are unaffected. Mismatched shapes raise."""
    f = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, math.nan, 1.0, -1.0]])
    y = torch.tensor([[1.0, -1.0, 1.0, -1.0]] * 2)
    out = mu.mu_metric(f, f, y)
    assert_close(out[0], LOG2)
    assert math.isnan(float(out[1]))
    with pytest.raises(ValueError, match="same shape"):
        mu.mu_metric(f, f[:, :3], y)


def test_plug_in_bias_matches_chi_square():
    """Small-sample bias of the plug-in estimator: for independent fair signs, 2n·Î(A;B) ~ χ²₁ (mean 1)
    and 2n·Î(A;B|C) ~ χ²₂ (mean 2), so E μ̂ ≈ 1/(2n) − 1/n = −1/(2n). 4,000 seeds × n = 400 in one
    batched call; standard errors of the means ≈ 0.02 and 0.03."""
    g = torch.Generator().manual_seed(11)
    K, n = 4000, 400
    a, b, c = (torch.randint(0, 2, (K, n), generator=g).double() * 2 - 1 for _ in range(3))
    mi = mu.mutual_information(a, b)
    cmi = mu.conditional_mutual_information(a, b, c)
    assert abs(float(2 * n * mi.mean()) - 1.0) < 0.1
    assert abs(float(2 * n * cmi.mean()) - 2.0) < 0.15
    assert abs(float(2 * n * mu.mu_metric(a, c, b).mean()) + 1.0) < 0.2
