"""Behaviour unchanged: each family's ``--quick`` record matches its golden record (tests/golden/, made by
tests/golden/make_golden.sh) to the per-metric tolerances of tests/golden/tolerances.json.

The goldens were made at commit e105272 and remade (with --step reference, as the test runs them) when the
summary gained the measured linear regime, the loss spikes and the constants taken from φ itself: every metric of
the e105272 goldens agreed with a fresh record within its tolerance (worst 0.33 × tolerance), except the deep
CIFAR nets' ``early_window_steps``, null since (no theorem gives them a window; docs/theory.md §4.5).

Why not bit for bit: the network runs in float32, and another CPU, BLAS kernel or vector width rounds its
sums in another order, so a fresh record on another machine differs from the golden in the last fp32 bits,
grown over the steps of gradient descent (seen: 5e-9 relative in a loss, 3e-6 in an MSE near 1e-5).

Where the tolerances come from: tests/golden/derive_tolerances.py runs each golden's command in fp32 and
in float64 and takes, per metric (a key of ``per_seed`` over every seed and step, or of ``summary``), the
spread max |fp32 − float64|. An fp32 run lies within about the spread of the exact result, so two fp32
runs on different machines lie within ≈ 2× it of each other; the tolerance is 10 × the spread, the rest
covering rounding orders worse than this machine's. Metrics that do not depend on the network's dtype
(the float64 linear models, the data, the steps) get a floor of 1e-10 of the metric's largest value
(float64 kernels differ across machines by a few ulp, ~1e-15). The network's error rates and μ count
points, and a point whose output lies within rounding of 0 can change sides on another machine: their
tolerance is per recorded step, the points whose output lies within 10× that step's spread of 0 (at least
one; every point at step 0 of a two-layer net, whose outputs are rounding noise around 0). Strings,
booleans, None and the config are compared exactly, as are the keys, shapes and None entries. A few
metrics have no machine-independent value (NOT_REPRODUCIBLE in derive_tolerances.py says which and why:
the CNN's split onto V_lin keeps round-off directions); they are checked for shape only, and
test_quick_record_equals_golden checks that the reason still holds. A real change of behaviour moves
the metrics by orders of magnitude more than these tolerances: test_comparison_catches_a_change checks
that the comparison fails for any metric moved by 100× its tolerance and for another seed's record.

What does hold bit for bit is checked by reruns on one machine, not against committed bits: the same
command gives an identical record (tests/runtime/test_faults.py::test_same_seed_same_record_bit_for_bit), a
resumed run equals an uninterrupted one (tests/experiments/test_train.py), and the default two-layer step's
network does not depend on torch's thread count (test_thread_count_does_not_change_the_network, here).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from earlylin.cli import verify
from earlylin.ntk import linearise
from tests.conftest import TOL
from tests.golden.derive_tolerances import (
    FACTOR,
    NOT_REPRODUCIBLE,
    SECTIONS,
    TOLERANCES,
    VOLATILE,
    as_array,
    golden_argv,
    golden_names,
    golden_sha256,
    is_numeric,
    load_golden,
    metric_name,
    metrics,
    numeric_leaves,
)

NAMES = golden_names()
REDERIVE = "python tests/golden/derive_tolerances.py"


@pytest.fixture(scope="module")
def tolerances() -> dict[str, Any]:
    return json.loads(TOLERANCES.read_text(encoding="utf-8"))["goldens"]


def _assert_same(new: Any, old: Any, section: str, path: tuple[str, ...], tol: dict[str, Any]) -> float:
    """Fail unless ``new`` matches ``old`` (numbers to their metric's tolerance, all else exactly);
    returns the worst |new − old| / tolerance of the numbers."""
    where = ".".join((section, *path))
    if isinstance(old, dict):
        worst = 0.0
        for k, v in old.items():
            if k not in VOLATILE:
                assert k in new, f"{where}.{k} missing"
                worst = max(worst, _assert_same(new[k], v, section, (*path, str(k)), tol))
        return worst
    if isinstance(old, list) and old and all(isinstance(v, dict) for v in old):
        assert isinstance(new, list) and len(new) == len(old), where
        pairs = enumerate(zip(new, old, strict=True))
        return max(_assert_same(a, b, section, (*path, str(i)), tol) for i, (a, b) in pairs)
    if not is_numeric(old):
        assert new == old, f"{where}: {new!r} != {old!r}"
        return 0.0
    assert is_numeric(new) or new is None, f"{where}: {new!r} is not a number"
    name = metric_name(section, path)
    assert name in tol, f"{where}: no tolerance for {name}; run {REDERIVE}"
    a, b = as_array(new), as_array(old)
    assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{where}: None/NaN at other entries"
    if tol[name]["tolerance"] is None:  # no machine-independent value (NOT_REPRODUCIBLE): its shape only
        return 0.0
    t = _tolerances(tol[name], section, path, b.shape)
    diff = np.where(np.isnan(b), 0.0, np.abs(a - b))
    bad = np.flatnonzero(diff > t)
    assert not bad.size, (f"{where}: differs by {diff.max():.3g} > tolerance (at entry {bad[0]}: "
                          f"{a.ravel()[bad[0]]!r} vs {b.ravel()[bad[0]]!r}, tolerance {t.ravel()[bad[0]]:.3g})")
    return float(np.max(np.where(t > 0, diff / np.where(t > 0, t, 1.0), 0.0), initial=0.0))


def _tolerances(entry: dict[str, Any], section: str, path: tuple[str, ...], shape: tuple[int, ...]) -> np.ndarray:
    """The tolerance of each entry of a metric's value at ``path`` (one per recorded step for a metric
    that counts points, else the metric's)."""
    if "tolerance_per_step" in entry:
        assert section == "per_seed", path
        return np.asarray(entry["tolerance_per_step"][path[0]], dtype=float).reshape(shape)
    return np.full(shape, entry["tolerance"], dtype=float)


def compare(record: dict[str, Any], golden: dict[str, Any], tol: dict[str, Any]) -> float:
    """Fail unless a record's runs match the golden's (per_seed and summary to the tolerances ``tol`` of
    its metrics, config exactly); returns the worst |new − golden| / tolerance."""
    assert len(record["runs"]) == len(golden["runs"])
    worst = 0.0
    for new, old in zip(record["runs"], golden["runs"], strict=True):
        for section in SECTIONS:
            worst = max(worst, _assert_same(new[section], old[section], section, (), tol))
        for key, value in old["config"].items():
            assert new["config"][key] == value, key
    return worst


def _spy_norm_blocks(monkeypatch) -> list[dict[str, float]]:
    """Record the size of the norm coefficients and of the feature block of every _norm_block call."""
    calls: list[dict[str, float]] = []
    real = linearise._norm_block

    def spy(A, c, D, E):
        lin, quad, S = real(A, c, D, E)
        calls.append({"coefficients": float(max(abs(A), *(np.abs(np.asarray(v)).max() for v in (c, D, E)))),
                      "features": float(np.abs(S).max())})
        return lin, quad, S

    monkeypatch.setattr(linearise, "_norm_block", spy)
    return calls


@pytest.mark.parametrize("name", NAMES)
def test_quick_record_equals_golden(name, tmp_path, tolerances, record_property, monkeypatch):
    golden = load_golden(name)
    blocks = _spy_norm_blocks(monkeypatch)
    assert verify.main(golden_argv(golden, tmp_path)) == 0
    if name in NOT_REPRODUCIBLE:  # the reason given there still holds: round-off coefficients, features kept
        assert any(b["coefficients"] < 1e-15 and b["features"] > 0 for b in blocks), (
            f"{name}: the linear model no longer keeps features made of round-off ({blocks}): drop "
            f"NOT_REPRODUCIBLE[{name!r}] in tests/golden/derive_tolerances.py, remake the golden "
            f"(tests/golden/make_golden.sh) and run {REDERIVE}")
    record = json.loads((tmp_path / "record.json").read_text(encoding="utf-8"))
    worst = compare(record, golden, tolerances[name]["metrics"])
    record_property("worst_diff_over_tolerance", worst)  # the margin, where a report wants it (--junitxml)
    new, old = metrics(record), metrics(golden)
    record_property("bit_identical", all(np.array_equal(new[k], old[k], equal_nan=True) for k in old))


def test_tolerances_belong_to_these_goldens(tolerances):
    """tolerances.json was derived from the committed goldens as they are, and names every numeric metric."""
    assert sorted(tolerances) == NAMES, f"run {REDERIVE}"
    for name in NAMES:
        assert tolerances[name]["golden_sha256"] == golden_sha256(name), f"{name}.json changed: run {REDERIVE}"
        assert set(tolerances[name]["metrics"]) == set(metrics(load_golden(name))), f"{name}: run {REDERIVE}"
        assert tolerances[name]["not_reproducible"] == NOT_REPRODUCIBLE.get(name), f"{name}: run {REDERIVE}"
        unchecked = {k for k, m in tolerances[name]["metrics"].items() if m["tolerance"] is None}
        assert unchecked == set(NOT_REPRODUCIBLE.get(name, {}).get("metrics", ())), name
        for key, entry in tolerances[name]["metrics"].items():
            if entry["tolerance"] is not None and "tolerance_per_step" not in entry:
                assert entry["tolerance"] >= FACTOR * entry["spread"] and math.isfinite(entry["tolerance"]), key


@pytest.mark.parametrize("name", NAMES)
def test_comparison_catches_a_change(name, tolerances):
    """The comparison is not vacuous. For every numeric metric of the golden: one entry moved by 100× the
    metric's tolerance fails it, a move by 0.1× passes (a metric without a tolerance: a change of shape fails);
    a changed config fails it; and another seed's record fails it for a golden with two seeds."""
    golden, tol = load_golden(name), tolerances[name]["metrics"]
    assert compare(golden, golden, tol) == 0.0
    run = golden["runs"][0]
    names = set()
    for section in SECTIONS:
        for path, value in numeric_leaves(run[section]):
            entry = tol[metric_name(section, path)]
            names.add(metric_name(section, path))
            if entry["tolerance"] is None:  # not reproducible: its shape is still checked
                changed = json.loads(json.dumps(golden))
                _set(changed["runs"][0][section], path, [value, value])
                with pytest.raises(AssertionError, match="shape"):
                    compare(changed, golden, tol)
                continue
            t = _tolerances(entry, section, path, np.shape(as_array(value)))
            i = int(np.flatnonzero(~np.isnan(as_array(value)))[-1])  # the last entry: a late step
            for factor, fails in ((100.0, True), (0.1, False))[: 2 if t.ravel()[i] else 1]:
                changed = json.loads(json.dumps(golden))
                _set(changed["runs"][0][section], path, _moved(value, i, factor * (t.ravel()[i] or 1e-300)))
                if fails:
                    with pytest.raises(AssertionError, match="differs by"):
                        compare(changed, golden, tol)
                else:
                    assert compare(changed, golden, tol) <= 0.11
    assert names == set(tol)
    changed = json.loads(json.dumps(golden))
    changed["runs"][0]["config"]["activation"] += "_other"
    with pytest.raises(AssertionError):
        compare(changed, golden, tol)
    seeds = list(run["per_seed"])
    if len(seeds) > 1:
        swapped = json.loads(json.dumps(golden))
        swapped["runs"][0]["per_seed"][seeds[0]] = run["per_seed"][seeds[1]]
        with pytest.raises(AssertionError, match="differs by"):
            compare(swapped, golden, tol)


def _moved(value: Any, index: int, by: float) -> Any:
    """``value`` (a number or nested lists) with its entry ``index`` (flattened) moved by ``by``."""
    flat = as_array(value).ravel()
    flat[index] += by
    return flat.reshape(np.shape(as_array(value))).tolist()  # None entries become NaN, as as_array reads them


def _set(obj: Any, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]
    if isinstance(obj, list):
        obj[int(path[-1])] = value
    else:
        obj[path[-1]] = value


def _result(record: dict[str, Any]) -> list[dict[str, Any]]:
    """per_seed and summary of each run, without the wall-clock and cache fields."""
    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in VOLATILE and not k.endswith("time_s")}
        return [strip(v) for v in obj] if isinstance(obj, list) else obj

    return [strip({s: run[s] for s in SECTIONS}) for run in record["runs"]]


THREADS_SCRIPT = """
import sys, torch
from earlylin.cli import verify
for threads, out in zip((1, 2), sys.argv[1:]):
    torch.set_num_threads(threads)
    assert verify.main(["--d", "20", "--n", "4200", "--n-test", "100", "--width", "256", "--steps", "10",
                        "--no-cache", "--no-plot", "--quiet", "--device", "cpu", "--out", out]) == 0
"""


# metrics of the network's outputs and the labels alone (earlylin.experiments.comparison.LinearComparison.row)
NETWORK_ONLY = ("train_loss_net", "test_loss_net", "train_err_net", "test_err_net", "logits_net")


def test_thread_count_does_not_change_the_network(tmp_path):
    """Rerun on this machine, not against committed bits: the default two-layer step (``fast`` on a CPU:
    blocks of rows on a pool of worker threads, partial sums added in block order) gives the same bits
    with 1 and with 2 torch threads (in a fresh process, torch.set_num_threads), here over 4,200 rows in
    blocks of an L2 cache's size (1,024 or 2,048 rows at m = 256) and a last short one: every metric of the
    network's outputs alone is identical. The metrics that
    involve the float64 linear models (their losses, the MSEs to the net, the split onto V_lin) agree to
    float64 rounding, 1e-12 of their largest value: MKL's threaded float64 kernels may add in another order
    with another thread count (seen with MKL_CBWR=COMPATIBLE: 5e-15 relative)."""
    outs = [tmp_path / "threads_1", tmp_path / "threads_2"]
    subprocess.run([sys.executable, "-c", THREADS_SCRIPT, *map(str, outs)], check=True, capture_output=True)
    records = [json.loads((out / "record.json").read_text(encoding="utf-8")) for out in outs]
    assert [r["environment"]["torch_threads"] for r in records] == [1, 2]
    assert records[0]["environment"]["net_step"]["impl"] == "fast"
    one, two = (_result(r) for r in records)
    for a, b in zip(one, two, strict=True):
        for section in SECTIONS:
            for path, value in numeric_leaves(b[section]):
                mine = a[section]
                for key in path:
                    mine = mine[key]
                if path[-1] in NETWORK_ONLY or (section == "summary" and path[-1] == "test_loss_net"):
                    assert mine == value, f"{section}.{'.'.join(path)}: depends on the threads"
                else:
                    atol = TOL["exact"] * np.nanmax(np.abs(as_array(value)), initial=0.0)
                    np.testing.assert_allclose(as_array(mine), as_array(value), rtol=0, atol=atol,
                                               err_msg=f"{section}.{'.'.join(path)}")
        assert set(NETWORK_ONLY) <= set(b["per_seed"]["0"])
        assert _non_numeric(a) == _non_numeric(b)


def _non_numeric(obj: Any) -> Any:
    """``obj`` with every number (and list of numbers) replaced by a mark: its keys, strings, bools and None."""
    if isinstance(obj, dict):
        return {k: _non_numeric(v) for k, v in obj.items()}
    if is_numeric(obj):
        return "number"
    return [_non_numeric(v) for v in obj] if isinstance(obj, list) else obj
