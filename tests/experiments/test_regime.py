"""The linear regime measured from the run (earlylin.experiments.regime), loss spikes (LossWatch), the
window per family, and the verifier's figure for every family (docs/theory.md §4.5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import earlylin
from earlylin.config import theorem_window
from earlylin.experiments.regime import escape_from_minimum, initial_mismatch, regime_end, regime_threshold
from earlylin.experiments.train import SPIKE_FACTOR, LossWatch
from tests.conftest import TOL, assert_close

STEPS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]


# ---------------------------------------------------------------------------------------------- constructed curves
def test_escape_before_the_window_is_found():
    """r falls from its initial mismatch, then rises 3× from its minimum at step 50 — long before T = 978 (d = 50):
    the observed escape is the first step above 2× the minimum so far, and the regime ends where r passes ε."""
    r = [math.nan, 0.08, 0.06, 0.03, 0.02, 0.015, 0.012, 0.02, 0.03, 0.2, 0.5]
    T = theorem_window("two_layer", 50, 1.0, 5.0)
    assert T == 978 and escape_from_minimum(STEPS, r, 2.0) == 200  # 0.03 > 2 × 0.012; 0.02 at 100 is not
    assert initial_mismatch(STEPS, r) == (1, 0.08)
    threshold = regime_threshold(0.08, 0.1, 2.0)
    assert threshold == pytest.approx(0.16) and regime_end(STEPS, r, threshold) == 500
    assert regime_end(STEPS, r, 0.1) == 500 and regime_end(STEPS, r, 0.6) is None


def test_escape_that_never_comes_is_none():
    """r falls throughout, or rises by less than the factor, or rises 10× but stays at rounding level."""
    falling = [math.nan, 0.08, 0.06, 0.03, 0.02, 0.015, 0.012, 0.011, 0.0105, 0.0104, 0.0103]
    assert escape_from_minimum(STEPS, falling, 2.0) is None
    mild = [math.nan, 0.08, 0.04, 0.03, 0.02, 0.02, 0.025, 0.03, 0.035, 0.038, 0.039]
    assert escape_from_minimum(STEPS, mild, 2.0) is None
    tiny = [math.nan, *np.geomspace(1e-9, 1e-4, 10)]
    assert escape_from_minimum(STEPS, tiny, 2.0) is None  # below ESCAPE_FLOOR: rounding, not escape
    assert regime_end(STEPS, falling, 0.1) is None
    assert initial_mismatch(STEPS, [math.nan] * len(STEPS)) == (None, None)


def test_theorem_window_only_where_a_theorem_gives_it():
    assert theorem_window("two_layer", 50, 1.0, 5.0) == theorem_window("cnn1d", 50, 1.0, 5.0) == 978
    assert theorem_window("cifar", 192, 1.0, 5.0) is None and theorem_window("network", 64, 0.1, 5.0) is None


def _watch(curves: np.ndarray) -> LossWatch:
    watch = LossWatch(curves.shape[0] - 1)
    for t, loss in enumerate(torch.from_numpy(curves)):
        watch.update(t, loss)
    return watch


def test_loss_spikes_flagged_once_per_excursion_and_none_on_a_smooth_descent():
    t = np.arange(201, dtype=float)
    smooth = 0.5 * np.exp(-t / 40) + 0.1
    spiky = smooth.copy()
    spiky[80:84] = [0.4, 0.9, 0.6, 0.2]  # one excursion of four steps above 1.5× the lowest loss so far
    spiky[150] = smooth[150] * (SPIKE_FACTOR + 0.5)
    noisy = smooth * (1 + 1e-6 * np.sin(t))  # rounding-level wiggles: no spike
    watch = _watch(np.stack([smooth, spiky, noisy], axis=1))
    assert watch.spikes([0, 1, 2]) == {0: [], 1: [80, 150], 2: []}
    assert watch.diverged([0, 1, 2]) == {}


# ---------------------------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def digits() -> earlylin.Arrays:
    """scikit-learn's bundled digits (real 8×8 images), even vs odd, standardised: a real small data set."""
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    y = np.where(y % 2 == 0, 1.0, -1.0)
    idx = np.random.default_rng(0).permutation(len(x))
    return earlylin.Arrays(x[idx[:400]], y[idx[:400]], x[idx[1500:]], y[idx[1500:]])


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Tanh(), torch.nn.Linear(128, 128), torch.nn.Tanh(),
                               torch.nn.Linear(128, 1))


@pytest.mark.parametrize(("lr", "spiky"), [(0.05, False), (0.3, True)])
def test_a_users_mlp_on_digits_gets_the_measured_regime_and_its_spikes(digits, lr, spiky, tmp_path):
    """A tanh MLP on real digits: no theorem, so no T (the maxima are over the measured regime or the whole run);
    at η = 0.3 (below its own tangent kernel's bound, ≈ 0.71) its train loss spikes, flagged and marked as part of
    the headline maxima; at η = 0.05 nothing is flagged."""
    r = earlylin.run_network(_mlp(), digits, earlylin.NetworkConfig(lr=lr, steps=250, n_fit=128))
    s, m = r.summary, r.per_seed[0]
    assert s["early_window_steps"] is None and s["maxima_over"] in ("linear regime", "whole run")
    assert lr < m["ntk_stability_bound"] < 1.0 and m["fitted"] == r.record["linear_model"]["fitted"]
    assert s["initial_mismatch_step"] == 1 and 0 < s["initial_mismatch"] < s["regime_threshold"]
    assert bool(s["loss_spikes"]) is spiky and s["maxima_include_spikes"] is spiky
    if spiky:  # every flagged step is a rise of the recorded-or-not train loss: check it on the recorded curve
        assert all(0 < t <= 250 for t in s["loss_spikes"]["0"])
        assert s["escape_step_observed"] is not None and s["escape_step_observed"] < 250
    assert r.plot(tmp_path / "network.png").stat().st_size > 10_000


def test_lr_past_the_networks_own_kernel_bound_is_refused(digits):
    with pytest.raises(earlylin.ConfigError, match="network's own empirical tangent kernel"):
        earlylin.run_network(_mlp(), digits, earlylin.NetworkConfig(lr=5.0, steps=5, n_fit=64))


@pytest.mark.parametrize("family", ["two_layer", "cnn1d", "cifar"])
def test_plot_draws_every_family(family, tmp_path):
    if family == "two_layer":
        exp: object = earlylin.TwoLayer(earlylin.TwoLayerConfig(d=10, n=200, n_test=100, width=32, steps=40))
    elif family == "cnn1d":
        exp = earlylin.Cnn1d(earlylin.Cnn1dConfig(d=16, filter_size=4, width=16, n=200, n_test=100, steps=40))
    else:
        try:
            exp = earlylin.Cifar(earlylin.CifarConfig(arch="fc", depth=2, width=16, n=100, n_test=100, steps=40))
            r = earlylin.run(exp)
        except earlylin.DataError as err:
            pytest.skip(f"the CIFAR cat/horse npz was not found: {err}")
    r = earlylin.run(exp) if family != "cifar" else r
    s = r.summary
    assert (s["early_window_steps"] is None) is (family == "cifar")
    assert s["initial_mismatch_step"] == 1 and s["regime_threshold"] >= s["regime_eps"] == 0.1
    assert r.plot(tmp_path / f"{family}.png").stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------- predict
def _own_data(d: int, seed: int = 3) -> earlylin.Arrays:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, d))
    return earlylin.Arrays(x[:200], np.sign(x[:200, 0] + 0.3 * x[:200, 1]), x[200:], np.sign(x[200:, 0]))


@pytest.mark.parametrize("family", ["two_layer", "cnn1d", "network"])
def test_linear_model_predict_equals_the_recorded_outputs(family, tmp_path):
    """predict on the first five test inputs gives the recorded f^lin outputs (logits_lin) at every recorded step,
    from the record alone: also after save and load."""
    data = _own_data(16)
    if family == "two_layer":
        r = earlylin.run(earlylin.TwoLayer(earlylin.TwoLayerConfig(width=32, steps=40, seeds=(0, 1), layers="second",
                                                                   activation="relu"), data=data))
    elif family == "cnn1d":
        r = earlylin.run(earlylin.Cnn1d(earlylin.Cnn1dConfig(filter_size=4, width=16, steps=40), data=data))
    else:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        r = earlylin.run_network(net, data, earlylin.NetworkConfig(lr=0.2, steps=40, n_fit=64))
    again = earlylin.Result.load(r.save(tmp_path / "record.json"))
    for res in (r, again):
        for t in [*res.steps[:: max(1, len(res.steps) // 6)].tolist(), None]:
            got = res.linear_model.predict(data.x_test[:5], step=t)
            i = -1 if t is None else res.steps.tolist().index(t)
            want = np.array([m["logits_lin"][i] for m in res.per_seed.values()])
            assert_close(got, want, "iterated", atol=TOL["exact"])
    with pytest.raises(earlylin.ConfigError, match="not a recorded step"):
        r.linear_model.predict(data.x_test[:5], step=-3)
    with pytest.raises(earlylin.ConfigError, match=r"need \(n, d = 16\)"):
        r.linear_model.predict(data.x_test[:5, :4])


@pytest.mark.parametrize("arch,linear", [("fc", "derived"), ("cnn", "derived"), ("fc", "fitted"), ("cnn", "fitted")])
def test_cifar_linear_model_predict_equals_the_recorded_training_outputs(arch, linear, tmp_path):
    """For the CIFAR nets, predict on the training images (as the run saw them) gives the f^lin outputs that
    keep_outputs stored, at every recorded step, from the saved record alone; the fitted model is each seed's own."""
    cfg = earlylin.CifarConfig(arch=arch, depth=2, width=16, n=120, n_test=60, steps=12, seeds=(0, 1), linear=linear,
                               n_fit=48, lr=0.5)
    exp = earlylin.Cifar(cfg)
    try:
        r = earlylin.run(exp, keep_outputs=True)
    except earlylin.DataError as err:
        pytest.skip(f"the CIFAR cat/horse npz was not found: {err}")
    again = earlylin.Result.load(r.save(tmp_path / "record.json"))
    out = again.outputs()
    x = exp.data.x_train
    for t in again.steps.tolist():
        got = again.linear_model.predict(x, step=t)
        assert_close(got, out["train_lin"][:, again.steps.tolist().index(t)], "iterated", atol=TOL["exact"])
    assert_close(again.linear_model.predict(x.reshape(len(x), -1)), out["train_lin"][:, -1], "iterated",
                 atol=TOL["exact"])
    if linear == "fitted":
        fits = [m["fitted"] for m in again.per_seed.values()]
        assert fits[0] != fits[1] and fits[0] == again.record["linear_model"]["fitted"]
        assert all(m["ntk_stability_bound"] > cfg.lr for m in again.per_seed.values())
    with pytest.raises(earlylin.ConfigError, match=r"need \(n, 192\) or \(n, 3, 8, 8\)"):
        again.linear_model.predict(x[:, :2])
