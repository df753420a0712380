"""The command line: records, summary keys, tables, and bad input rejected before any work."""

from __future__ import annotations

import json
import math

import pytest

from earlylin import verify

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
    assert "default: both" in text and "default erf" in text and "default 50" in text


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
