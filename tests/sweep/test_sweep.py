"""Sweeps (earlylin.sweep): grid parsing, derived fields, the cache shared with verify, failures in the
table, and the Ray backend (same table as local; a killed worker is retried), all at tiny sizes."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import earlylin
from earlylin.cli import verify
from earlylin.cli.sweep import main as sweep_main
from earlylin.config import TwoLayerConfig, early_window
from earlylin.errors import ConfigError
from earlylin.runtime.records import read_csv
from earlylin.sweep import run_point
from earlylin.sweep.spec import parse_assignments, resolve_fields
from tests.conftest import ROOT

GRID = {"d": [6, 8], "width": [8, 16]}  # 4 points
FIXED = {"n": 60, "n_test": 40, "steps": 40, "device": "cpu"}
SEEDS = [0, 1]
TIMING = ("wall_time_s", "point_wall_s")  # the only columns allowed to differ between two runs


def _same_table(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        if key not in TIMING:
            assert a[key] == b[key], key


# ---------------------------------------------------------------------------------------------- spec
def test_grid_values_parsed_by_field_type():
    grid = parse_assignments(["d=25,50", "lr=0.5,1", "layers=first,both", "ntk_lin=true,0", "m_over_d=2"],
                             "two_layer", "--grid", many=True)
    assert grid == {"d": [25, 50], "lr": [0.5, 1.0], "layers": ["first", "both"], "ntk_lin": [True, False],
                    "m_over_d": [2.0]}
    assert isinstance(grid["lr"][1], float) and isinstance(grid["d"][0], int)
    assert parse_assignments(["steps=1000", "n-test=20"], "two_layer", "--set", many=False) == {"steps": 1000,
                                                                                                 "n_test": 20}
    assert parse_assignments(["arch=cnn,fc"], "cifar", "--grid", many=True) == {"arch": ["cnn", "fc"]}
    for tokens, match in ((["d=2.5"], "d takes int"), (["dd=3"], "no field 'dd'"), (["d"], "FIELD="),
                          (["d=1", "d=2"], "twice"), (["seeds=1"], "--seeds"), (["ntk_lin=maybe"], "bool")):
        with pytest.raises(ConfigError, match=match):
            parse_assignments(tokens, "two_layer", "--grid", many=True)
    with pytest.raises(ConfigError, match="m_over_d"):
        parse_assignments(["m_over_d=1"], "cifar", "--grid", many=True)  # CIFAR's d is fixed


def test_derived_fields():
    """n = round(scale·d^exp), m = m/d·d (even), steps = ⌈k·T⌉ — computed here independently."""
    out = resolve_fields("two_layer", {"d": 50, "m_over_d": 5.12, "n_exponent": 1.5, "n_scale": 20_000 / 50**1.5,
                                       "steps_per_window": 2, "lr": 0.5})
    T = round(5.0 * 50 * math.log(50) / 0.5)
    assert out == {"d": 50, "width": 256, "n": 20_000, "steps": 2 * T, "lr": 0.5}
    assert early_window(50, 0.5, 5.0) == T
    for d, ratio, m in ((7, 1.5, 10), (9, 1.2, 10), (10, 1.25, 12), (8, 0.1, 2)):  # the nearest even width ≥ 2
        assert resolve_fields("two_layer", {"d": d, "m_over_d": ratio})["width"] == m
    assert resolve_fields("two_layer", {"d": 16, "n_exponent": 1.5})["n"] == 64  # scale 1


def test_bad_input_exits_2_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    for argv in (["--grid", "d=6,x"], ["--grid", "d=6", "--set", "d=4"], ["--grid", "d=1,0"],
                 ["--grid", "m_over_d=1", "width=4"], ["--grid", "d=6", "--n-scale", "2"],
                 ["--grid", "d=6", "--ray-address", "auto"], ["--grid", "d=6,6"],
                 ["--grid", "d=6", "--max-retries", "-1"], ["--grid", "d=6", "--set", "device=tpu"]):
        assert sweep_main([*argv, "--out", str(out), "--no-cache", "--quiet"]) == 2, argv
        assert "earlylin: error:" in capsys.readouterr().err
    assert not out.exists()


def test_import_never_loads_ray():
    code = "import sys, earlylin, earlylin.sweep; earlylin.sweep.sweep; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr


def test_run_sweep_is_the_sweep_function_loaded_on_first_use():
    import earlylin.sweep as module

    assert earlylin.run_sweep is module.sweep and "run_sweep" in earlylin.__all__


# ---------------------------------------------------------------------------------------------- local
@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The 4-point sweep, run locally with a cache, and the same sweep run again."""
    root = tmp_path_factory.mktemp("sweep")
    first = earlylin.run_sweep(GRID, fixed=FIXED, seeds=SEEDS, cache_dir=root / "cache", out=root / "out")
    again = earlylin.run_sweep(GRID, fixed=FIXED, seeds=SEEDS, cache_dir=root / "cache")
    return {"root": root, "first": first, "again": again}


def test_table_rows_are_the_runs(local):
    """One row per point and seed; each row equals earlylin.run of that config (no cache)."""
    t = local["first"].table
    assert t["point"] == [0, 0, 1, 1, 2, 2, 3, 3] and t["seed"] == SEEDS * 4
    assert t["d"] == [6, 6, 6, 6, 8, 8, 8, 8] and t["width"] == [8, 8, 16, 16] * 2
    assert local["first"].summary["computed"] == 8 and local["first"].summary["cache_hits"] == 0
    ref = earlylin.run(TwoLayerConfig(d=8, width=16, seeds=tuple(SEEDS), **FIXED)).summary
    rows = [r for r in local["first"].rows if r["point"] == 3]
    assert [r["max_rel_mse_early"] for r in rows] == ref["max_rel_test_mse_early_per_seed"]
    assert [r["max_mse_early"] for r in rows] == ref["max_test_mse_early_per_seed"]
    assert [r["escape_step"] for r in rows] == ref["escape_step_per_seed"]
    assert all(r["error"] is None and r["device"] == "cpu" for r in rows)


def test_outputs_written(local):
    out = local["root"] / "out"
    table = read_csv(out / "sweep.csv")
    assert table["max_rel_mse_early"] == [repr(v) for v in local["first"].table["max_rel_mse_early"]]
    import json

    rec = json.loads((out / "sweep.json").read_text())
    assert rec["code_fingerprint"] and rec["environment"]["code_fingerprint"] == rec["code_fingerprint"]
    assert rec["grid"] == GRID and rec["seeds"] == SEEDS and rec["summary"]["rows"] == 8


def test_rerun_computes_nothing(local):
    again = local["again"]
    assert again.summary["cache_hits"] == 8 and again.summary["computed"] == 0 and all(again.table["cached"])
    _same_table({k: v for k, v in local["first"].table.items() if k != "cached"},
                {k: v for k, v in again.table.items() if k != "cached"})


def test_a_point_computed_by_verify_is_reused(tmp_path):
    cache = tmp_path / "cache"
    assert verify.main(["--d", "6", "--width", "8", "--n", "60", "--n-test", "40", "--steps", "40", "--seeds", "0",
                        "1", "--device", "cpu", "--cache-dir", str(cache), "--out", str(tmp_path / "v"),
                        "--no-plot", "--quiet"]) == 0
    res = earlylin.run_sweep({"d": [6], "width": [8, 16]}, fixed=FIXED, seeds=SEEDS, cache_dir=cache)
    hits = [c for p, c in zip(res.table["point"], res.table["cached"], strict=True) if p == 0]
    assert hits == [True, True] and res.summary["cache_hits"] == len(SEEDS)  # the other point computed


def test_failing_points_are_reported_not_fatal(tmp_path, capsys):
    """lr past the stability bound (found at run time) and an odd width (found before any work) become
    error rows; the other points run; the CLI exits 3."""
    argv = ["--grid", "lr=1,1000", "width=8,7", "--set", "d=6", "n=60", "n_test=40", "steps=40", "device=cpu",
            "--no-cache", "--quiet", "--out", str(tmp_path)]
    assert sweep_main(argv) == 3
    t = read_csv(tmp_path / "sweep.csv")
    errors = dict(zip(zip(t["lr"], t["width"], strict=True), t["error"], strict=True))
    assert errors[("1.0", "8")] == ""
    assert "stability bound" in errors[("1000.0", "8")]
    assert "--width 7" in errors[("1.0", "7")] and "--width 7" in errors[("1000.0", "7")]
    assert t["max_rel_mse_early"][0] != "" and t["max_rel_mse_early"][-1] == ""
    assert "4 point(s) × 1 seed(s): 0 row(s) from the cache, 1 computed, 3 failed" in capsys.readouterr().out


def test_point_function_is_plain_data(tmp_path):
    rows = run_point("two_layer", {"d": 6, "width": 8, **FIXED, "seeds": [3]}, None)
    assert len(rows) == 1 and rows[0]["seed"] == 3 and rows[0]["cached"] is False
    assert all(isinstance(v, int | float | str | bool | type(None)) for v in rows[0].values())


# ---------------------------------------------------------------------------------------------- Ray
@pytest.fixture(scope="module")
def ray_local():
    """A local Ray with 2 CPUs, started for these tests and shut down after."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False)  # a new one, even beside a running cluster
    yield ray
    ray.shutdown()


def die_once(family: str, fields: dict, cache_dir: str | None) -> list[dict]:
    """The point function, except that the first attempt at point (d = 6, width = 8) kills its own
    worker process with SIGKILL (a marker file remembers the attempt)."""
    attempts = Path(cache_dir).parent / "attempts"
    if fields["d"] == 6 and fields["width"] == 8:
        with open(attempts, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        if len(attempts.read_text().split()) == 1:
            os.kill(os.getpid(), signal.SIGKILL)
    return run_point(family, fields, cache_dir)


def test_ray_gives_the_local_table(ray_local, local, tmp_path):
    res = earlylin.run_sweep(GRID, fixed=FIXED, seeds=SEEDS, backend="ray", cache_dir=tmp_path / "cache")
    assert res.summary["computed"] == 8
    _same_table(local["first"].table, res.table)


def test_ray_worker_killed_midsweep_is_retried(ray_local, tmp_path):
    cache = tmp_path / "cache"
    res = earlylin.run_sweep(GRID, fixed=FIXED, seeds=SEEDS, backend="ray", cache_dir=cache, point_fn=die_once,
                         max_retries=2)
    pids = (tmp_path / "attempts").read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # killed once, retried in a new worker process
    assert res.summary["error_rows"] == 0 and res.summary["computed"] == 8
    again = earlylin.run_sweep(GRID, fixed=FIXED, seeds=SEEDS, backend="ray", cache_dir=cache)
    assert again.summary["cache_hits"] == 8 and again.summary["computed"] == 0


def test_ray_worker_dying_every_time_is_an_error_row(ray_local, tmp_path):
    """With no retries, the killed point is reported in the table; the other points complete."""
    res = earlylin.run_sweep(GRID, fixed=FIXED, seeds=SEEDS, backend="ray", cache_dir=tmp_path / "cache",
                         point_fn=die_once, max_retries=0)
    errors = [e for p, e in zip(res.table["point"], res.table["error"], strict=True) if p == 0]
    assert all(e and "WorkerCrashedError" in e for e in errors)
    assert res.summary["error_rows"] == 2 and res.summary["computed"] == 6
