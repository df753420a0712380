"""Checkpoints inside long runs (earlylin.experiments.train.Checkpoint): a run killed after a checkpoint resumes there,
and its record is bit-identical (CPU) to an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from earlylin.cli import verify
from earlylin.errors import ConfigError
from earlylin.experiments.train import CHECKPOINT_ENV, CHECKPOINT_EVERY_S, Checkpoint, checkpoint_interval, run_gd
from earlylin.training.batches import Batches
from earlylin.training.optim import Optimizer, OptimSpec

SIZE = ["--d", "8", "--n", "100", "--n-test", "20", "--width", "16", "--steps", "2000", "--n-log", "20",
        "--seeds", "0", "1", "--device", "cpu", "--no-plot"]


def _strip(obj):
    """A record without its wall-clock and provenance fields (the only ones a resumed run may change)."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if "wall_time" not in k and k not in ("cached", "argv")}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


class Stop(Exception):
    pass


def _toy_data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 30, 4, generator=g, dtype=torch.float64), torch.randn(2, 30, generator=g, dtype=torch.float64)

def _toy(seed: int = 0):
    """A least-squares problem in two parameter tensors, K = 2 seeds: loss (K,), outputs (K, n), grads."""
    X, y = _toy_data(seed)
    params = [torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)]

    def step(ps):
        f = (X @ ps[0].unsqueeze(-1)).squeeze(-1) + ps[1]
        r = f - y
        return 0.5 * (r * r).mean(-1), f, [(X * r.unsqueeze(-1)).mean(-2), r.mean(-1, keepdim=True)]

    return step, params


def _train(tmp_path: Path, stop_at: int | None, rows: list, every_s: float = 1e-9, optimizer: str | None = None):
    step, params = _toy()
    ck = Checkpoint(tmp_path / "ck.pt", every_s=every_s, rows=rows)
    opt = batches = None
    if optimizer is not None:  # a stateful rule on mini-batches: its buffers and the batch order must resume too
        opt, batches = Optimizer(OptimSpec(optimizer), params, [0.1, 0.1]), Batches(30, 7, batch_seed=3)
        X, y = _toy_data()

        def step(ps, idx):
            Xb, yb = X[:, idx], y[:, idx]
            r = (Xb @ ps[0].unsqueeze(-1)).squeeze(-1) + ps[1] - yb
            return 0.5 * (r * r).mean(-1), None, [(Xb * r.unsqueeze(-1)).mean(-2), r.mean(-1, keepdim=True)]

    def on_record(t, f, ps):
        if t == stop_at:
            raise Stop
        f0 = ps[1][:, 0].clone() if f is None else f[:, 0].clone()
        rows.append({"t": torch.tensor([t, t]), "f0": f0, "w": ps[0].sum(-1).clone()})

    run_gd(step, params, [0.1, 0.1], 40, list(range(0, 41, 3)), on_record, [0, 1], checkpoint=ck, optimizer=opt,
           batches=batches)
    return params, ck



def test_a_resumed_adam_sgd_loop_equals_the_uninterrupted_one(tmp_path):
    """Adam on mini-batches, interrupted at step 21: the rerun resumes with the optimizer's buffers and step count
    and the batch order of step 21 on, and ends bit-identical to an uninterrupted run."""
    with pytest.raises(Stop):
        _train(tmp_path, stop_at=21, rows=[], optimizer="adam")
    rows: list = []
    params, ck = _train(tmp_path, stop_at=None, rows=rows, optimizer="adam")
    assert ck.resumed_from == 21
    ref_rows: list = []
    ref_params, _ = _train(tmp_path / "ref", stop_at=None, rows=ref_rows, every_s=1e9, optimizer="adam")
    assert all(torch.equal(a, b) for a, b in zip(params, ref_params, strict=True))
    assert all(torch.equal(a[k], b[k]) for a, b in zip(rows, ref_rows, strict=True) for k in a)
    fresh_params, _ = _train(tmp_path / "fresh", stop_at=None, rows=[], every_s=1e9, optimizer="adam")
    without_state = _train(tmp_path / "gd", stop_at=None, rows=[], every_s=1e9)[0]
    assert not torch.equal(fresh_params[0], without_state[0])  # the rule matters: Adam is not GD


def test_resumed_loop_equals_uninterrupted_loop(tmp_path):
    """Interrupted at step 21 after per-step checkpoints, the rerun resumes at the last one and ends with
    the same parameters and rows, bit for bit."""
    with pytest.raises(Stop):
        _train(tmp_path, stop_at=21, rows=[])
    assert (tmp_path / "ck.pt").is_file()
    rows: list = []
    params, ck = _train(tmp_path, stop_at=None, rows=rows)
    assert ck.resumed_from == 21  # the state saved at the start of the interrupted step
    ref_rows: list = []
    ref_params, _ = _train(tmp_path / "ref", stop_at=None, rows=ref_rows, every_s=1e9)
    assert all(torch.equal(a, b) for a, b in zip(params, ref_params, strict=True))
    assert len(rows) == len(ref_rows) == 14
    assert all(torch.equal(a[k], b[k]) for a, b in zip(rows, ref_rows, strict=True) for k in a)


def test_checkpoint_that_does_not_fit_is_ignored(tmp_path, capsys):
    (tmp_path / "ck.pt").write_bytes(b"not a checkpoint")
    rows: list = []
    _, ck = _train(tmp_path, stop_at=None, rows=rows, every_s=1e9)
    assert ck.resumed_from is None and len(rows) == 14
    assert "ignoring the unreadable checkpoint" in capsys.readouterr().err
    _, params = _toy()
    Checkpoint(tmp_path / "ck.pt").save(5, [params[0]], {"first_bad": torch.zeros(2, dtype=torch.long)}, 0.0)
    _, ck = _train(tmp_path, stop_at=None, rows=[], every_s=1e9)  # one parameter tensor instead of two
    assert ck.resumed_from is None and "does not fit this run" in capsys.readouterr().err


def test_interval_from_flag_or_environment(monkeypatch):
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    assert checkpoint_interval() == CHECKPOINT_EVERY_S == 2.0 and checkpoint_interval(2.5) == 2.5
    monkeypatch.setenv(CHECKPOINT_ENV, "0.25")
    assert checkpoint_interval() == 0.25
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="checkpoint_every_s="):
            checkpoint_interval(bad)
    monkeypatch.setenv(CHECKPOINT_ENV, "soon")
    with pytest.raises(ConfigError, match=CHECKPOINT_ENV):
        checkpoint_interval()


def test_sigkilled_run_resumes_from_its_checkpoint_and_matches(tmp_path):
    """SIGKILL `python -m earlylin.verify` once its first checkpoint is on disk; the same command resumes
    there (not from step 0), deletes the checkpoint, and writes the record of an uninterrupted run."""
    cache, out = tmp_path / "cache", tmp_path / "out"
    cmd = [sys.executable, "-m", "earlylin.verify", *SIZE, "--cache-dir", str(cache), "--out", str(out)]
    env = {**os.environ, CHECKPOINT_ENV: "0.1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list((cache / "checkpoints").glob("*.pt")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed: raise --steps"
    assert not (out / "record.json").exists()
    [saved] = (cache / "checkpoints").glob("*.pt")

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = [line for line in done.stderr.splitlines() if line.startswith("resuming from the checkpoint at step")]
    assert len(resumed) == 1 and int(resumed[0].split()[6]) > 0, done.stderr
    assert not saved.exists() and not [p for p in (cache / "checkpoints").iterdir()]  # deleted when done

    ref = tmp_path / "ref"
    assert verify.main([*SIZE, "--quiet", "--cache-dir", str(tmp_path / "ref-cache"), "--out", str(ref)]) == 0
    got, want = (json.loads((d / "record.json").read_text()) for d in (out, ref))
    assert _strip(got["runs"]) == _strip(want["runs"])
    assert _strip(got["summary"]) == _strip(want["summary"])


def test_no_checkpoint_without_the_cache(tmp_path, monkeypatch):
    """--no-cache: no checkpoint is written anywhere (not even in the default cache dir)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(CHECKPOINT_ENV, "1e-6")
    code = verify.main([*SIZE[:9], "60", "--no-cache", "--quiet", "--out", str(tmp_path / "o"),
                        "--device", "cpu", "--no-plot"])
    assert code == 0
    assert not list(tmp_path.rglob("*.pt")) and not (tmp_path / "xdg").exists()
