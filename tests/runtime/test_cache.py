"""The result cache can never serve stale results: its key covers the code, the data and user callables,
and every run says how many seeds came from it (summary.cache_hits)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import earlylin
from earlylin.runtime.fingerprint import PACKAGE_ROOT, Unhashable, callable_fingerprint, code_fingerprint
from earlylin.runtime.records import Cache

SMALL = {"d": 8, "n": 200, "n_test": 100, "width": 16, "steps": 40, "n_log": 8}


def test_cache_hits_fresh_repeated_and_extended(tmp_path):
    cfg = earlylin.TwoLayerConfig(**SMALL, seeds=(0, 1))
    fresh = earlylin.run(cfg, cache_dir=tmp_path)
    again = earlylin.run(cfg, cache_dir=tmp_path)
    more = earlylin.run(cfg.with_(seeds=(0, 1, 2)), cache_dir=tmp_path)
    assert (fresh.summary["cache_hits"], again.summary["cache_hits"], more.summary["cache_hits"]) == (0, 2, 2)
    assert [m["cached"] for m in more.per_seed.values()] == [True, True, False]
    assert again.summary["max_test_mse_early"] == fresh.summary["max_test_mse_early"]
    changed = earlylin.run(cfg.with_(lr=0.5), cache_dir=tmp_path)  # another config: recomputed
    assert changed.summary["cache_hits"] == 0


def test_a_different_code_fingerprint_never_reads_an_entry(tmp_path):
    payload = {"family": "two_layer", "seed": 0}
    Cache(tmp_path, fingerprint="aaaa").store(payload, {"x": 1})
    assert Cache(tmp_path, fingerprint="aaaa").load(payload) == {"x": 1}
    assert Cache(tmp_path, fingerprint="bbbb").load(payload) is None


def test_code_fingerprint_covers_every_source_file(tmp_path):
    copy = tmp_path / "earlylin"
    shutil.copytree(PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_fingerprint(copy)
    assert before == code_fingerprint(PACKAGE_ROOT)
    with open(copy / "data" / "synthetic.py", "a", encoding="utf-8") as fh:
        fh.write("\n# an edit\n")
    edited = code_fingerprint(copy, fresh=True)
    assert edited != before
    with open(copy / "nets" / "native" / "erf.c", "a", encoding="utf-8") as fh:  # the C kernel computes results too
        fh.write("\n/* an edit */\n")
    assert code_fingerprint(copy, fresh=True) != edited


RUN = textwrap.dedent("""
    import json, sys
    import earlylin
    cfg = earlylin.TwoLayerConfig(d=8, n=200, n_test=100, width=16, steps=40, n_log=8)
    r = earlylin.run(cfg, cache_dir=sys.argv[1])
    print(json.dumps([r.summary["cache_hits"], r.summary["max_test_mse_early"], r.summary["code_fingerprint"]]))
""")


def _run_copy(root: Path, cache: Path) -> list:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", RUN, str(cache)], env=env, capture_output=True, text=True,
                         check=True, cwd=root)
    return __import__("json").loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_editing_the_target_function_in_a_copy_recomputes(tmp_path):
    """The defect this guards against: edit the code that computes results, rerun, get the old numbers."""
    root = tmp_path / "repo"
    shutil.copytree(PACKAGE_ROOT, root / "earlylin", ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    first = _run_copy(root, cache)
    second = _run_copy(root, cache)
    assert (first[0], second[0]) == (0, 1) and first[1] == second[1]
    synthetic = root / "earlylin" / "data" / "synthetic.py"
    text = synthetic.read_text(encoding="utf-8")
    old = "sign = np.where(teacher(x) >= 0.0, 1.0, -1.0)"
    edited = text.replace(old, old.replace("1.0, -1.0", "-1.0, 1.0"))
    assert edited != text
    synthetic.write_text(edited, encoding="utf-8")
    third = _run_copy(root, cache)
    assert third[0] == 0 and third[2] != first[2]


def test_a_changed_user_target_recomputes(tmp_path):
    cfg = earlylin.TwoLayerConfig(**SMALL)

    def target(x: np.ndarray) -> np.ndarray:
        return np.tanh(x[:, 0])

    a = earlylin.run(cfg, target=target, cache_dir=tmp_path)
    b = earlylin.run(cfg, target=target, cache_dir=tmp_path)
    assert (a.summary["cache_hits"], b.summary["cache_hits"]) == (0, 1)

    def target(x: np.ndarray) -> np.ndarray:  # same name, other code
        return np.tanh(x[:, 1])

    c = earlylin.run(cfg, target=target, cache_dir=tmp_path)
    assert c.summary["cache_hits"] == 0 and c.summary["max_test_mse_early"] != a.summary["max_test_mse_early"]


def test_closure_values_and_helpers_enter_the_fingerprint():
    def make(scale: float):
        def f(x: np.ndarray) -> np.ndarray:
            return np.tanh(scale * x[:, 0])
        return f

    assert callable_fingerprint(make(1.0)) == callable_fingerprint(make(1.0))
    assert callable_fingerprint(make(1.0)) != callable_fingerprint(make(2.0))


def test_an_unhashable_callable_runs_uncached_and_says_why(tmp_path):
    class Opaque:
        def __init__(self) -> None:
            self.handle = open(os.devnull, encoding="utf-8")

    opaque = Opaque()

    def target(x: np.ndarray) -> np.ndarray:
        assert opaque.handle is not None
        return np.tanh(x[:, 0])

    with pytest.raises(Unhashable):
        callable_fingerprint(target)
    cfg = earlylin.TwoLayerConfig(**SMALL)
    r1 = earlylin.run(cfg, target=target, cache_dir=tmp_path)
    r2 = earlylin.run(cfg, target=target, cache_dir=tmp_path)
    assert r2.summary["cache_hits"] == 0 and "fingerprint" in r1.summary["not_cached"]
    assert not any(tmp_path.rglob("*.json"))
    opaque.handle.close()


def test_user_arrays_key_the_cache_by_content(tmp_path):
    rng = np.random.default_rng(0)
    x, xt = rng.standard_normal((200, 8)), rng.standard_normal((100, 8))
    y, yt = np.sign(x[:, 0]), np.sign(xt[:, 0])
    cfg = earlylin.TwoLayerConfig(width=16, steps=40, n_log=8)
    a = earlylin.run(cfg, data=earlylin.Arrays(x, y, xt, yt), cache_dir=tmp_path)
    b = earlylin.run(cfg, data=earlylin.Arrays(x, y, xt, yt), cache_dir=tmp_path)
    y2 = y.copy()
    y2[0] = -y2[0]
    c = earlylin.run(cfg, data=earlylin.Arrays(x, y2, xt, yt), cache_dir=tmp_path)
    assert [r.summary["cache_hits"] for r in (a, b, c)] == [0, 1, 0]
