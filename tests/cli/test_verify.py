"""The command line: records, summary keys, tables, help, signals, the CIFAR download through the CLI,
and bad input rejected before any work (more cases: tests/cli/test_bad_input.py)."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from earlylin import cli
from earlylin.cli import verify
from earlylin.errors import ConfigError, DataError
from earlylin.runtime.progress import PROGRESS_ENV
from tests.conftest import TOL, finish, start_training

SMALL = ["--n", "300", "--n-test", "100", "--width", "64", "--steps", "60", "--no-cache", "--quiet", "--device", "cpu"]
SUMMARY_KEYS = {"early_window_steps", "max_test_mse_early", "max_rel_test_mse_early", "escape_step",
                "test_loss_net", "test_loss_lin", "wall_time_s"}


def _run(tmp_path, *args: str) -> tuple[int, dict | None]:
    code = verify.main([*SMALL, "--out", str(tmp_path), *args])
    path = tmp_path / "record.json"
    return code, json.loads(path.read_text()) if path.exists() else None


def test_single_d_record(tmp_path, capsys):
    code, rec = _run(tmp_path, "--d", "12", "--seeds", "0", "1", "--window-c", "0.5")
    assert code == 0
    out = capsys.readouterr().out
    assert "MSE(net,lin)" in out and "record:" in out
    assert SUMMARY_KEYS <= set(rec["summary"])
    env = rec["environment"]
    assert {"torch", "numpy", "python", "earlylin", "device", "dtype", "tf32_matmul"} <= set(env)
    run = rec["runs"][0]
    assert run["config"]["seeds"] == [0, 1] and run["config"]["d"] == 12
    seed0 = run["per_seed"]["0"]
    steps = seed0["steps"]
    assert steps[0] == 0 and steps[-1] == 60 and rec["summary"]["early_window_steps"] in steps
    assert len(seed0["test_mse"]) == len(steps) and len(seed0["logits_net"][0]) == 5
    assert seed0["test_rel_mse"][0] is None  # undefined at step 0, where f ≡ 0
    assert len(seed0["test_mse_fw"]) == len(steps) and rec["summary"]["max_test_mse_fw_early"] > 0
    assert seed0["test_loss_net"][0] == pytest.approx(0.5)  # y = ±1 and f₀ = 0
    assert (tmp_path / "verify.png").stat().st_size > 10_000


def test_several_d_give_slope(tmp_path, capsys):
    code, rec = _run(tmp_path, "--d", "8", "16", "--seeds", "0", "1", "--no-plot")
    assert code == 0
    s = rec["summary"]
    assert [b["d"] for b in s["by_d"]] == [8, 16]
    assert all(SUMMARY_KEYS <= set(b) for b in s["by_d"])
    assert math.isfinite(s["slope"]["mean"]) and len(s["slope"]["per_seed"]) == 2
    esc = s["escape"]
    assert esc["d"] == [8, 16] and esc["d_log_d_over_lr"][1] == pytest.approx(16 * math.log(16))
    assert all(c is None or c == pytest.approx(t / sc) for c, t, sc in
               zip(esc["c_star"], esc["escape_step"], esc["d_log_d_over_lr"], strict=True))
    assert "log-log slope" in capsys.readouterr().out


def test_help_lists_every_flag_with_default(capsys):
    with pytest.raises(SystemExit):
        verify.main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--layers", "--d", "--activation", "--width", "--n", "--n-test", "--lr", "--steps", "--seeds",
                 "--sigma", "--device", "--dtype", "--out", "--quick", "--escape-factor", "--target"):
        assert flag in text
    assert "default: both" in text and "default: erf" in text and "default: 50" in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--d", "0"], "--d 0"),
        (["--d", "-3"], "--d -3"),
        (["--width", "63"], "--width 63 is odd"),
        (["--n", "1"], "--n 1"),
        (["--activation", "swish"], "--activation 'swish' is unknown"),
        (["--lr", "0"], "--lr 0"),
        (["--lr", "-1"], "--lr -1"),
        (["--lr", "nan"], "--lr nan"),
        (["--lr", "5000"], "stability bound"),
        (["--steps", "0"], "--steps 0"),
        (["--seeds", "1", "1"], "distinct"),
        (["--escape-factor", "1"], "--escape-factor"),
        (["--d", "8", "8"], "distinct"),
    ],
)
def test_bad_input_is_rejected_before_work(tmp_path, capsys, args, needle):
    code, rec = _run(tmp_path, *args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err
    assert rec is None  # nothing was written


def test_cuda_without_gpu_is_an_error(tmp_path, capsys):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    code = verify.main([*SMALL[:-2], "--device", "cuda", "--out", str(tmp_path)])
    assert code == 2 and "no CUDA device" in capsys.readouterr().err


def test_ntk_linearised_and_mu_are_recorded(tmp_path):
    """--ntk-lin records MSE(net, θ-linearised net), far below MSE(net, f^lin) early on (the kernel
    regime holds before the kernel's linearity in x does); μ is recorded at every step (0 at step 0)."""
    code, rec = _run(tmp_path, "--d", "10", "--ntk-lin", "--no-plot", "--dtype", "float64")
    assert code == 0
    m = rec["runs"][0]["per_seed"]["0"]
    assert len(m["test_mse_ntk_lin"]) == len(m["steps"]) and m["test_mse_ntk_lin"][0] == 0.0
    assert m["test_mse_ntk_lin"][5] < 0.1 * m["test_mse"][5]
    assert m["mu"][0] == 0.0 and all(v is not None for v in m["mu"])
    assert rec["summary"]["max_test_mse_ntk_lin_early"] is not None


def test_cnn1d_from_the_cli(tmp_path):
    code, rec = _run(tmp_path, "--arch", "cnn1d", "--d", "16", "--filter", "4", "--width", "16", "--no-plot")
    assert code == 0
    assert rec["runs"][0]["config"]["filter_size"] == 4 and rec["sweep"]["arch"] == "cnn1d"


@pytest.mark.parametrize(("args", "needle"), [(["--arch", "fc"], "--arch fc needs --dataset cifar"),
                                              (["--filter", "3"], "--filter 3"),
                                              (["--arch", "cnn1d", "--d", "8", "--filter", "9"], "--filter 9")])
def test_arch_and_filter_errors(tmp_path, capsys, args, needle):
    code, rec = _run(tmp_path, *args)
    assert code == 2 and rec is None
    assert needle in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- help
def _help(main) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    return ""


@pytest.mark.parametrize("name", ["verify", "kernel", "figures", "checks", "bench"])
def test_help_is_clean(name, capsys):
    """No "(default: None)" and no raw Python dict or list in any --help."""
    import paper_checks.__main__ as checks_cli
    from earlylin.cli import figures
    from earlylin.cli import kernel_bound as kernel
    from tests.cli.test_bad_input import bench

    main = {"verify": verify.main, "kernel": kernel.main, "figures": figures.main, "checks": checks_cli.main,
            "bench": bench.main}[name]
    _help(main)
    text = capsys.readouterr().out
    assert "usage:" in text
    for bad in ("(default: None)", "default: None", "{'", "['", "(default: False)"):
        assert bad not in text, bad


def test_one_line_parse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        verify.main(["--steps", "many"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1
    assert err[0].startswith("earlylin: error: argument --steps: invalid int value: 'many'")


# ---------------------------------------------------------------------------------------------- exit paths
@pytest.mark.parametrize(("raised", "status", "needle"), [
    (KeyboardInterrupt, 130, "interrupted (Ctrl-C)"),
    (cli.Terminated, 143, "terminated (SIGTERM)"),
    (OSError(28, "No space left on device"), 1, "No space left on device"),
    (ConfigError("--x 1: must be 2"), 2, "--x 1: must be 2"),
    (DataError("data.npz is truncated"), 1, "data.npz is truncated"),
])
def test_command_turns_exceptions_into_one_line(capsys, raised, status, needle):
    @cli.command
    def main(argv=None):
        raise raised

    assert main([]) == status
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and needle in err[0] and err[0].startswith("earlylin: ")


@pytest.mark.parametrize(("sig", "status", "needle"), [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                       (signal.SIGINT, 130, "interrupted (Ctrl-C)")])
def test_signal_mid_training_exits_with_one_line_and_no_files(tmp_path, sig, status, needle):
    proc = start_training(tmp_path / "out", "--cache-dir", str(tmp_path / "cache"))
    proc.send_signal(sig)
    _, err = finish(proc)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == status, err
    assert "Traceback" not in err and len(lines) == 1 and needle in lines[0]
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert not out.exists() or [p for p in out.iterdir()] == []  # nothing written
    # no half entry, no temp file: only the checkpoint (the machine's choices live in the machine folder)
    assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".pt"]


# ---------------------------------------------------------------------------------------------- runs that must work
def test_n_below_d_warns_one_line_and_runs(tmp_path, capsys):
    code = verify.main(["--d", "20", "--n", "10", "--n-test", "10", "--width", "8", "--steps", "5", "--no-cache",
                        "--no-plot", "--quiet", "--device", "cpu", "--out", str(tmp_path)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 0 and (tmp_path / "record.json").exists()
    assert len(err) == 1 and err[0].startswith("earlylin: warning: --n 10 < d = 20")


def test_tiny_lr_runs_end_to_end(tmp_path, capsys):
    """--lr 1e-7: the output stays ≈ 0, so the relative MSE is undefined (null); the table says n/a,
    T lies beyond the run and is said so, and the record and figure are written."""
    code = verify.main([*SMALL, "--d", "10", "--lr", "1e-7", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    rec = json.loads((tmp_path / "record.json").read_text())
    assert rec["summary"]["max_rel_test_mse_early"] is None and rec["summary"]["early_window_steps"] > 60
    assert "max rel MSE: n/a" in out and "past the last step" in out
    assert (tmp_path / "verify.png").stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------- CIFAR download
def _elsewhere(tmp_path: Path, **env: str) -> tuple[list[str], dict[str, str], Path]:
    """A copy of the package in tmp (a clone elsewhere: no shared/data/ beside it or below the working
    directory, so the offline npz is not found), and an environment with HOME and the caches in tmp."""
    import earlylin
    from earlylin.data import cifar_files as files

    clone = tmp_path / "clone"
    shutil.copytree(Path(earlylin.__file__).parent, clone / "earlylin", ignore=shutil.ignore_patterns("__pycache__"))
    work = tmp_path / "work"
    work.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("EARLYLIN_")}
    full = {**base, "PYTHONPATH": str(clone), "HOME": str(tmp_path / "home"),
            "XDG_CACHE_HOME": str(tmp_path / "home" / ".cache"), "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost", files.DATA_DIR_ENV: str(tmp_path / "data"), **env}
    cmd = [sys.executable, "-m", "earlylin.verify", "--dataset", "cifar", "--quick", "--steps", "20", "--download",
           "--device", "cpu", "--no-plot", "--quiet", "--out", str(tmp_path / "out")]
    return cmd, full, work


def test_cifar_quick_download_through_the_cli(tmp_path):
    """`python -m earlylin.verify --dataset cifar --quick --download` where no data are: it fetches the
    archive from a local 127.0.0.1 server into $EARLYLIN_DATA_DIR (hash checked) and runs."""
    from earlylin.data import cifar_files as files
    from tests.data.test_cifar import make_batch_dir
    from tests.data.test_cifar_files import Server, md5, tar_folder

    quick = [[3] * 50 + [7] * 50] * 5  # 500 training images, as --quick needs
    make_batch_dir(tmp_path / "src", train_labels=quick, test_labels=[3] * 250 + [7] * 250)
    (tmp_path / "archive").mkdir()
    tarball = tar_folder(tmp_path / "src" / files.BATCH_DIR, tmp_path / "archive" / files.TARBALL_NAME)
    server = Server()
    try:
        server.files[f"/{files.TARBALL_NAME}"] = tarball.read_bytes()
        cmd, env, work = _elsewhere(tmp_path, **{files.URL_ENV: server.url(), files.MD5_ENV: md5(tarball)})
        done = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True, timeout=300)
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert server.requests == [f"/{files.TARBALL_NAME}"]
    assert (tmp_path / "data" / files.TARBALL_NAME).is_file()
    rec = json.loads((tmp_path / "out" / "record.json").read_text())
    assert str(tmp_path / "data" / files.TARBALL_NAME) in rec["runs"][0]["data_source"]
    assert rec["runs"][0]["config"]["n"] == 500 and "Traceback" not in done.stderr


def test_cifar_download_without_a_server_is_one_clear_line(tmp_path):
    from earlylin.data import cifar_files as files

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/{files.TARBALL_NAME}"
    cmd, env, work = _elsewhere(tmp_path, **{files.URL_ENV: url})
    done = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert url in lines[0] and str(tmp_path / "data") in lines[0]


def test_verify_figure_fits_the_run_and_names_it(tmp_path):
    """Panels titled in words, step axes over the recorded steps only (T past the run is a note, not
    an axis stretched to it), a legend for the five test points, a suptitle with data, net and sizes."""
    import matplotlib.pyplot as plt

    from earlylin.figures.plots import verify_figure

    assert verify.main([*SMALL, "--d", "10", "--window-c", "50", "--no-plot", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "record.json").read_text())
    T = record["summary"]["early_window_steps"]
    assert T > 60
    fig = verify_figure(record)
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles[2] == "Relative distance: the measured linear regime"
        assert titles[3] == "Outputs on five test points" and not any(t.startswith("(") for t in titles)
        for ax in (fig.axes[0], fig.axes[1], fig.axes[2], fig.axes[4]):
            assert ax.get_xlim()[1] <= 60 * 1.2 and f"T = {T:,} is beyond the run" in ax.get_xlabel()
        regime = fig.axes[2].get_legend_handles_labels()[1]
        mismatch = record["summary"]["initial_mismatch"]
        assert f"initial mismatch {mismatch:.3g} (kernel at init, not drift)" in regime
        assert any(lab.startswith("regime threshold") for lab in regime)
        labels = fig.axes[3].get_legend_handles_labels()[1]
        assert [lab.split(" (")[0] for lab in labels[:5]] == [f"test point {j}" for j in range(1, 6)]
        assert "network (solid)" in labels and "f_lin (dashed)" in labels
        title = fig._suptitle.get_text()
        assert "Synthetic data: two-layer erf net" in title and "d = 10, n = 300, width 64, 60 steps" in title
    finally:
        plt.close(fig)


def test_probe_dir_checks_without_leaving_a_trace(tmp_path):
    target = tmp_path / "a" / "b" / "out"
    assert cli.probe_dir(target, "--out") == target
    assert list(tmp_path.iterdir()) == []  # the folders it made to probe are gone again
    (tmp_path / "kept").mkdir()
    cli.probe_dir(tmp_path / "kept", "--out")
    assert list((tmp_path / "kept").iterdir()) == []  # and no probe file is left
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"--cache-dir .*is a file"):
        cli.probe_dir(tmp_path / "f", "--cache-dir")
    with pytest.raises(ConfigError, match=r"--out .*cannot write there"):
        cli.probe_dir(tmp_path / "f" / "sub", "--out")
    with pytest.raises(ConfigError, match=r"--report .*is a directory"):
        cli.probe_file(tmp_path, "--report")


# ---------------------------------------------------------------------------------------------- what a user sees
def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    """A log (stderr not a terminal) gets a progress line when training starts and then every
    $EARLYLIN_PROGRESS_EVERY_S seconds: a long run shows that it is alive and how far it is."""
    env = {**os.environ, PROGRESS_ENV: "0.3"}
    done = subprocess.run([sys.executable, "-m", "earlylin.verify", "--d", "8", "--n", "2000", "--n-test", "20",
                           "--width", "64", "--steps", "3000", "--device", "cpu", "--no-cache", "--no-plot",
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("GD steps: ")]
    assert lines[0].startswith("GD steps: 0/3,000 (0%)") or lines[0].startswith("GD steps: 0/3000 (0%)"), lines
    counts = [int(line.split()[2].split("/")[0]) for line in lines]
    assert len(lines) >= 3 and counts == sorted(counts) and len(set(counts)) == len(counts), lines
    assert all("\r" not in line for line in lines) and "elapsed" in lines[1] and "left" in lines[1]


def test_cached_rerun_says_so_and_how_long_the_computation_took(tmp_path, capsys):
    args = [*SMALL[:8], "--d", "8", "--quiet", "--device", "cpu", "--no-plot", "--cache-dir", str(tmp_path / "c"),
            "--out", str(tmp_path / "o")]
    assert verify.main(args) == 0
    first = capsys.readouterr().out
    assert "from the cache" not in first
    assert verify.main(args) == 0
    again = capsys.readouterr().out
    line = next(x for x in again.splitlines() if "wall:" in x)
    assert "(all seeds from the cache; computing them took" in line, line
    rec = json.loads((tmp_path / "o" / "record.json").read_text())
    assert rec["runs"][0]["summary"]["compute_wall_time_s"] > 0 and rec["runs"][0]["summary"]["cache_hits"] == 1


def test_one_version_string():
    """The package, the installed distribution and every record carry the same version."""
    from importlib.metadata import version

    import earlylin
    from earlylin.runtime.records import environment

    assert version("earlylin") == earlylin.__version__
    assert environment(__import__("torch").device("cpu"), "float32")["earlylin"] == earlylin.__version__


@pytest.mark.parametrize("arch", ["two_layer", "cnn1d"])
def test_help_states_the_quick_sizes_that_run(arch, capsys):
    """--help's --quick numbers are the sizes --quick gives, for each synthetic architecture."""
    import re

    with pytest.raises(SystemExit):
        verify.main(["--help"])
    text = " ".join(capsys.readouterr().out.split("options:")[1].split())
    base = verify.config_from_args(verify.build_parser().parse_args(["--arch", arch, "--quick"])).base
    for flag, key in (("--width", "width"), ("--n", "n"), ("--n-test", "n_test"), ("--steps", "steps")):
        helped = re.search(rf" {flag} [A-Z_]+ [^(]*\(default: [^,]+, --quick ([^;]+);", text)
        assert helped is not None, flag
        quick = helped.group(1)  # "2000" or "2000, cnn1d 500"
        shown = quick.split("cnn1d ")[1] if arch == "cnn1d" and "cnn1d" in quick else quick.split(",")[0]
        assert int(shown) == getattr(base, key), (flag, quick)


TINY = ["--d", "8", "--n", "40", "--n-test", "20", "--width", "16", "--steps", "20", "--n-log", "8",
        "--no-cache", "--no-plot", "--quiet", "--device", "cpu"]


def test_keep_outputs_writes_outputs_npz_named_by_the_record(tmp_path):
    import numpy as np

    from earlylin.experiments.result import Result

    assert verify.main([*TINY, "--seeds", "0", "1", "--out", str(tmp_path / "kept"), "--keep-outputs"]) == 0
    rec = json.loads((tmp_path / "kept" / "record.json").read_text())
    assert rec["runs"][0]["outputs_file"] == "outputs.npz"
    with np.load(tmp_path / "kept" / "outputs.npz") as out:
        assert out["test_net"].shape == (2, len(rec["runs"][0]["per_seed"]["0"]["steps"]), 20)
        mse = np.mean((out["test_net"] - out["test_lin"]) ** 2, axis=-1)
    recorded = np.array([rec["runs"][0]["per_seed"][s]["test_mse"] for s in "01"])
    np.testing.assert_allclose(mse, recorded, rtol=TOL["exact"], atol=TOL["exact"])
    assert Result.load(tmp_path / "kept" / "record.json").outputs()["train_lin"].shape[-1] == 40
    assert verify.main([*TINY, "--out", str(tmp_path / "plain")]) == 0  # without the flag: no file, no key
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["record.json"]
    assert "outputs_file" not in json.loads((tmp_path / "plain" / "record.json").read_text())["runs"][0]
    assert verify.main([*TINY, "--d", "8", "10", "--out", str(tmp_path / "sweep"), "--keep-outputs"]) == 0
    runs = json.loads((tmp_path / "sweep" / "record.json").read_text())["runs"]
    assert [r["outputs_file"] for r in runs] == ["outputs_d8.npz", "outputs_d10.npz"]
    assert all((tmp_path / "sweep" / r["outputs_file"]).is_file() for r in runs)


def test_keep_outputs_too_large_is_refused_with_exit_2_before_work(tmp_path, capsys, monkeypatch):
    from earlylin.experiments import pipeline

    monkeypatch.setattr(pipeline, "train", lambda *a: pytest.fail("trained despite the refusal"))
    code = verify.main([*TINY, "--n", "2000", "--n-test", "2000", "--steps", "100000", "--n-log", "20000",
                        "--max-gb", "0.3", "--keep-outputs", "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--keep-outputs: the full outputs" in err and "more than the limit --max-gb 0.3" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
