"""Every bad input to every command is refused before any work: exit status 2, one line naming the flag.

Each case runs the entry point in-process with a tripwire on the function that starts the work
(training, data loading, the kernel measurement, the studies, the benchmark), so a refusal that came
too late fails here instead of running. Nothing may be written under the output folder.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import earlylin.sweep as sweep_cli
import paper_checks.__main__ as checks_cli
from earlylin import figures
from earlylin.cli import figures as figures_cli
from earlylin.cli import kernel_bound as kernel
from earlylin.cli import sweep as sweep_command
from earlylin.cli import verify
from tests.conftest import ROOT

SMALL = ["--d", "8", "--n", "50", "--n-test", "20", "--width", "8", "--steps", "5", "--device", "cpu", "--quiet"]
CIFAR = ["--dataset", "cifar", "--quick", "--device", "cpu", "--quiet"]


def _load_bench():
    spec = importlib.util.spec_from_file_location("earlylin_bench", ROOT / "benchmarks" / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def unwritable(tmp: Path) -> Path:
    """A directory path that cannot be created or written, even by root (sysfs refuses mkdir)."""
    if os.geteuid() != 0:
        ro = tmp / "read-only"
        ro.mkdir(exist_ok=True)
        ro.chmod(0o555)
        return ro / "out"
    candidate = Path("/sys/earlylin-probe/out")
    try:
        candidate.mkdir(parents=True)
    except OSError:
        return candidate
    pytest.skip("no unwritable place found on this machine")


def a_file(tmp: Path) -> Path:
    path = tmp / "a-file"
    path.write_text("x")
    return path


_HELD: list = []


def held(tmp: Path) -> Path:
    """A folder another run is writing to now: its lock is held (by this process, on its own descriptor)."""
    from earlylin.runtime.records import locked_dir

    folder = tmp / "held"
    lock = locked_dir(folder, "--out")
    lock.__enter__()
    _HELD.append(lock)
    return folder


Case = tuple[str, Callable[[Path], list[str]], str]
OUT = "out"  # every case writes (if at all) under tmp/out

CASES: list[Case] = [
    # verify: outputs
    ("verify", lambda t: [*SMALL, "--out", str(a_file(t))], "--out"),
    ("verify", lambda t: [*SMALL, "--out", str(unwritable(t))], "cannot write there"),
    ("verify", lambda t: [*SMALL, "--out", str(a_file(t) / "sub")], "cannot write there"),
    ("verify", lambda t: [*SMALL, "--no-cache", "--out", str(unwritable(t))], "cannot write there"),
    ("verify", lambda t: [*SMALL, "--cache-dir", str(a_file(t))], "--cache-dir"),
    ("verify", lambda t: [*SMALL, "--cache-dir", str(unwritable(t))], "--cache-dir"),
    ("verify", lambda t: [*SMALL, "--no-cache", "--cache-dir", str(t / "c")], "--cache-dir with --no-cache"),
    # verify: degenerate and overflowing values
    ("verify", lambda t: [*SMALL, "--window-c", "1e308"], "--window-c 1e+308"),
    ("verify", lambda t: [*SMALL, "--lr", "1e-300"], "--window-c 5 with --lr 1e-300"),
    ("verify", lambda t: [*SMALL, "--window-c", "0"], "--window-c 0"),
    ("verify", lambda t: [*SMALL, "--window-c", "nan"], "--window-c nan"),
    ("verify", lambda t: [*SMALL, "--escape-factor", "inf"], "--escape-factor inf"),
    ("verify", lambda t: [*SMALL, "--lr", "inf"], "--lr inf"),
    ("verify", lambda t: [*SMALL, "--n-log", "1"], "--n-log 1"),
    ("verify", lambda t: [*SMALL, "--seeds", "-1"], "--seeds -1"),
    ("verify", lambda t: [*SMALL, "--steps", "0"], "--steps 0"),
    ("verify", lambda t: [*SMALL, "--width", "100000000"], "--width 100000000"),
    ("verify", lambda t: [*SMALL, "--n-test", "1"], "--n-test 1"),
    ("verify", lambda t: [*SMALL, "--checkpoint-every-s", "0"], "--checkpoint-every-s 0"),
    ("verify", lambda t: [*SMALL, "--checkpoint-every-s", "inf"], "--checkpoint-every-s inf"),
    ("verify", lambda t: [*SMALL, "--n", "many"], "argument --n: invalid int value"),
    ("verify", lambda t: [*SMALL, "--dtype", "float16"], "argument --dtype: invalid choice"),
    ("verify", lambda t: [*SMALL, "--arch", "cnn1d", "--filter", "0"], "--filter 0"),
    # verify: flags the chosen data set would ignore, contradictory combinations
    ("verify", lambda t: [*SMALL, "--ntk-model"], "--ntk-model needs --dataset cifar"),
    ("verify", lambda t: [*SMALL, "--download"], "--download needs --dataset cifar"),
    ("verify", lambda t: [*SMALL, "--depth", "3"], "--depth 3 needs --dataset cifar"),
    ("verify", lambda t: [*SMALL, "--linear", "fitted"], "--linear fitted needs --dataset cifar"),
    ("verify", lambda t: [*SMALL, "--scale-alpha", "0.5"], "--scale-alpha 0.5: only with several --d"),
    ("verify", lambda t: [*SMALL, "--no-cache", "--checkpoint-every-s", "5"], "--checkpoint-every-s with --no-cache"),
    ("verify", lambda t: [*CIFAR, "--sigma", "decay"], "--sigma: only for --dataset synthetic"),
    ("verify", lambda t: [*CIFAR, "--teacher-width", "3"], "--teacher-width: only for --dataset synthetic"),
    ("verify", lambda t: [*CIFAR, "--inputs", "rademacher"], "--inputs: only for --dataset synthetic"),
    ("verify", lambda t: [*CIFAR, "--scale-alpha", "0.5"], "--scale-alpha: only for --dataset synthetic"),
    ("verify", lambda t: [*CIFAR, "--layers", "first", "--ntk-lin"], "--layers, --ntk-lin: only for"),
    ("verify", lambda t: [*CIFAR, "--npz", "a.npz", "--cifar-root", "b"], "--npz and --cifar-root"),
    ("verify", lambda t: [*CIFAR, "--download", "--cifar-root", "b"], "--download with --cifar-root"),
    ("verify", lambda t: [*CIFAR, "--n-fit", "100"], "--n-fit 100: only used with --linear fitted"),
    ("verify", lambda t: [*CIFAR, "--arch", "cnn", "--filter", "0"], "--filter 0"),
    ("verify", lambda t: [*SMALL, "--classes", "10"], "--classes (0, 1, 2, 3, 4, 5, 6, 7, 8, 9) needs --dataset cifar"),
    ("verify", lambda t: [*SMALL, "--loss", "cross_entropy", "--target", "norm"],
     "--target 'norm': the targets must be labels ±1"),
    ("verify", lambda t: [*SMALL, "--arch", "cnn1d", "--optimizer", "sgd", "--batch-size", "60"],
     "--batch-size 60: must be an integer in [1, n = 50]"),
    ("verify", lambda t: [*SMALL, "--ntk-lin", "--optimizer", "adam"], "--ntk-lin: the θ-linearised two-layer"),
    ("verify", lambda t: [*CIFAR, "--classes", "1"], "--classes 0: give two or more distinct CIFAR-10 labels"),
    ("verify", lambda t: [*CIFAR, "--classes", "3,11"], "--classes 3 11: give two or more"),
    ("verify", lambda t: [*CIFAR, "--batch-size", "100"], "--batch-size 100 with --optimizer 'gd': gd uses all"),
    ("verify", lambda t: [*CIFAR, "--optimizer", "sgd", "--batch-size", "0"], "--batch-size 0: must be an integer"),
    ("verify", lambda t: [*CIFAR, "--momentum", "1"], "--momentum 1: must be a number in [0, 1)"),
    ("verify", lambda t: [*CIFAR, "--classes", "10", "--linear", "fitted"], "--linear 'fitted' with --classes"),
    ("verify", lambda t: [*CIFAR, "--loss", "cross_entropy", "--ntk-model"], "--ntk-model: the exact-NTK model"),
    ("verify", lambda t: [*CIFAR, "--optimizer", "lbfgs"], "--optimizer: invalid choice"),
    ("verify", lambda t: [*CIFAR, "--n", "20000"], "--n 20000"),
    ("verify", lambda t: [*CIFAR, "--download", "--data-dir", str(a_file(t))], "--data-dir"),
    # verify: sizes inside the flags' ranges that do not fit in memory (the estimate of earlylin.experiments.memory)
    ("verify", lambda t: ["--width", "10000000", "--device", "cpu"], "--width 10000000, --seeds 0 needs about"),
    ("verify", lambda t: ["--n", "100000000", "--device", "cpu"], "--n 100000000, --n-test 2000"),
    ("verify", lambda t: ["--d", "100000", "--quick", "--device", "cpu"], "the two-layer run --d 100000"),
    ("verify", lambda t: [*SMALL, "--max-gb", "0.001"], "more than the limit --max-gb 0.001"),
    ("verify", lambda t: [*SMALL, "--max-gb", "-1"], "--max-gb -1: must be a finite number of GiB > 0"),
    ("verify", lambda t: [*SMALL, "--out", str(held(t))], "another earlylin run is writing there now"),
    # kernel
    ("kernel", lambda t: ["--quick", "--quiet", "--out", str(a_file(t))], "--out"),
    ("kernel", lambda t: ["--quick", "--quiet", "--out", str(unwritable(t))], "cannot write there"),
    ("kernel", lambda t: ["--quick", "--alpha", "-1"], "--alpha"),
    ("kernel", lambda t: ["--d", "8", "--width", "7"], "--width"),
    # figures
    ("figures", lambda t: ["--quick", "--out", str(a_file(t))], "--out"),
    ("figures", lambda t: ["--quick", "--only", "fig9"], "--only fig9: unknown figure id"),
    ("figures", lambda t: ["--quick", "--replot", "--device", "cpu"], "--device with --replot"),
    ("figures", lambda t: ["--quick", "--records", str(t), "--device", "cpu"], "--device with --records"),
    ("figures", lambda t: ["--quick", "--records", str(t / "none")], "--records"),
    ("figures", lambda t: ["--quick", "--records", str(t), "--only", "fig1a"], "no record of fig1"),
    ("figures", lambda t: ["--quick", "--records", str(t), "--replot"], "--replot with --records"),
    ("figures", lambda t: ["--quick", "--cache-dir", str(a_file(t))], "--cache-dir"),
    ("figures", lambda t: ["--quick", "--no-cache", "--cache-dir", str(t)], "--cache-dir with --no-cache"),
    ("figures", lambda t: ["--quick", "--only", "fig1a", "--max-gb", "0.001"], "more than the limit --max-gb 0.001"),
    ("figures", lambda t: ["--quick", "--replot", "--max-gb", "4"], "--max-gb with --replot: nothing is run"),
    ("figures", lambda t: ["--quick", "--only", "fig1a", "--out", str(held(t))], "another earlylin run"),
    # paper_checks
    ("checks", lambda t: ["--quick", "--report", str(t / OUT / "r.json")], "--report"),
    ("checks", lambda t: ["--quick", "--report", str(t)], "is a directory"),
    ("checks", lambda t: ["--quick", "--records", str(t), "--device", "cpu"], "--device with --records"),
    ("checks", lambda t: ["--quick", "--records", str(t / "none")], "--records"),
    ("checks", lambda t: ["--quick", "--cache-dir", str(a_file(t))], "--cache-dir"),
    ("checks", lambda t: ["--quick", "--only", "nope"], "--only nope: unknown check"),
    # benchmarks/bench.py
    ("bench", lambda t: ["--n", "-5"], "--n -5"),
    ("bench", lambda t: ["--ks", "0"], "--ks 0"),
    ("bench", lambda t: ["--ks", "1", "1"], "--ks 1 1"),
    ("bench", lambda t: ["--width", "3"], "--width 3 is odd"),
    ("bench", lambda t: ["--steps", "0"], "--steps 0"),
    ("bench", lambda t: ["--d", "0"], "--d 0"),
    ("bench", lambda t: ["--device", "tpu"], "--device 'tpu'"),
    ("bench", lambda t: ["--out", str(t)], "is a directory"),
    # python -m earlylin.sweep (its own value checks: tests/sweep/test_sweep.py)
    ("sweep", lambda t: ["--grid", "d=6,8", "--out", str(a_file(t))], "--out"),
    ("sweep", lambda t: ["--grid", "d=6,8", "--cache-dir", str(unwritable(t))], "--cache-dir"),
    ("sweep", lambda t: ["--grid", f"d={','.join(map(str, range(2, 1002)))}", "width=4,8"],
     "the grid has 2,000 points (1000 d × 2 width), more than --max-points 1000"),
    ("sweep", lambda t: ["--grid", "d=6,8", "--max-points", "1"], "more than --max-points 1"),
    ("sweep", lambda t: ["--grid", "d=6,8", "--set", "width=10000000"], "the two-layer run --d 6"),
    ("sweep", lambda t: ["--grid", "d=6,8", "--max-gb", "0.001"], "more than the limit --max-gb 0.001"),
    ("sweep", lambda t: ["--grid", "d=6,8", "--set", "steps=5", "--out", str(held(t))], "another earlylin run"),
    # paper_checks: memory of its studies, before any study runs
    ("checks", lambda t: ["--quick", "--only", "fig1_window", "--report", str(held(t) / "R.md")], "another earlylin"),
]


def _tripwire(*args, **kwargs):
    raise AssertionError("work started before the input was refused")


@pytest.fixture(autouse=True)
def _release_held():
    yield
    while _HELD:
        _HELD.pop().__exit__(None, None, None)


@pytest.fixture
def guarded(monkeypatch, tmp_path):
    """Entry points by name, each with the function that starts its work replaced by a tripwire;
    runs in tmp/out (so default outputs land there) with the cache there too."""
    monkeypatch.setattr(verify, "experiment_for", _tripwire)
    monkeypatch.setattr(verify, "run_experiment", _tripwire)
    monkeypatch.setattr(kernel, "run_kernel_bound", _tripwire)
    monkeypatch.setattr(figures, "regenerate", _tripwire)
    monkeypatch.setattr(checks_cli, "get_study", _tripwire)
    monkeypatch.setattr(checks_cli, "load_records", _tripwire)
    monkeypatch.setattr(bench, "measured_rates", _tripwire)
    monkeypatch.setattr(sweep_cli, "run_local", _tripwire)  # the sweep's checks run, its points do not
    monkeypatch.setattr(sweep_cli, "run_ray", _tripwire)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / OUT / "cache"))
    (tmp_path / OUT).mkdir()
    monkeypatch.chdir(tmp_path / OUT)
    return {"verify": verify.main, "kernel": kernel.main, "figures": figures_cli.main, "checks": checks_cli.main,
            "bench": bench.main, "sweep": sweep_command.main}


def _exit_status(main: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse: a value of the wrong type
        return int(exc.code or 0)


@pytest.mark.parametrize(("name", "argv", "needle"), CASES, ids=[f"{c[0]}:{c[2][:40]}" for c in CASES])
def test_refused_before_work_with_one_line(guarded, tmp_path, capsys, name, argv, needle):
    args = argv(tmp_path)
    code = _exit_status(guarded[name], args)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("earlylin: error: "), captured.err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in captured.err and captured.out == ""
    written = [p for p in (tmp_path / OUT).rglob("*") if p.is_file()]
    assert written == [], written


def test_at_least_thirty_inputs_and_every_command():
    assert len(CASES) >= 30
    assert {c[0] for c in CASES} == {"verify", "kernel", "figures", "checks", "bench", "sweep"}


def test_every_entry_point_is_wrapped():
    """Each main goes through earlylin.cli.command (errors, Ctrl-C and SIGTERM as one line)."""
    for main in (verify.main, kernel.main, figures_cli.main, checks_cli.main, bench.main, sweep_command.main):
        assert getattr(main, "__wrapped__", None) is not None, main.__module__
