"""Bad input from Python, and the machine's own limits: refused before any work with earlylin's own error type.

From Python every refusal is an :class:`earlylin.ConfigError` (or :class:`earlylin.DataError` for a file that
cannot be written), never a raw TypeError, AttributeError, RuntimeError or OSError, and its message names the
value as the API spells it (``lr=``, not ``--lr``). Each case runs with tripwires on the functions that start the
work (the set-up of the network and its linear models, the empirical NTK, gradient descent), so a refusal that
came too late fails here instead of running; and nothing may be written.

Full disks are real: a small tmpfs mounted for the test (this needs root; elsewhere those cases skip).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import earlylin
from earlylin.errors import ConfigError, DataError
from earlylin.experiments import network as network_module
from earlylin.experiments import pipeline
from earlylin.linear import trajectory
from tests.conftest import finish, start_training

SMALL = {"d": 8, "n": 50, "n_test": 20, "width": 8, "steps": 5, "device": "cpu"}


def _tripwire(*args, **kwargs):
    raise AssertionError("work started before the input was refused")


@pytest.fixture
def no_work(monkeypatch):
    """Tripwires on what starts the work: GD, the linear models' closed-form fits, the empirical NTK."""
    monkeypatch.setattr(pipeline, "run_gd", _tripwire)
    monkeypatch.setattr(trajectory.LinearTrajectory, "fit", classmethod(_tripwire))
    monkeypatch.setattr(network_module, "empirical_ntk", _tripwire)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _arrays(d: int = 20, n: int = 80, n_test: int = 20) -> earlylin.Arrays:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n + n_test, d))
    y = np.sign(x[:, 0] + 0.5 * x[:, 1])
    return earlylin.Arrays(x[:n], y[:n], x[n:], y[n:])


class NoReset(torch.nn.Module):
    """A module whose parameters no reset_parameters() covers: every seed would be the same network."""

    def __init__(self, d: int = 20, m: int = 16) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(m, d))
        self.v = torch.nn.Parameter(torch.randn(m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.w.T / x.shape[-1] ** 0.5) @ self.v / self.v.numel() ** 0.5


class NaNNet(torch.nn.Module):
    def __init__(self, d: int = 20) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x) * float("nan")


# ---------------------------------------------------------------------------------------------- the API's names
@pytest.mark.parametrize(("call", "needle"), [
    (lambda: earlylin.TwoLayerConfig(foo=1), "TwoLayerConfig(foo=1): no such field; valid fields: window_c"),
    (lambda: earlylin.CifarConfig(width=64, colour=True), "CifarConfig(colour=True): no such field"),
    (lambda: earlylin.TwoLayerConfig(d=10).with_(widht=4), "widht=4"),
    (lambda: earlylin.run({"d": 8}), "config: a dict; give a TwoLayerConfig"),
    (lambda: earlylin.run(earlylin.NetworkConfig()), "call earlylin.run_network"),
    (lambda: earlylin.run(earlylin.CifarConfig(), target=np.tanh), "target= with a CifarConfig"),
    (lambda: earlylin.run(earlylin.TwoLayer(earlylin.TwoLayerConfig(**SMALL)), target=np.tanh),
     "target= with an experiment object"),
    (lambda: earlylin.run(earlylin.TwoLayerConfig(**{**SMALL, "lr": -1.0})), "lr=-1.0: must be a finite number > 0"),
    (lambda: earlylin.run(earlylin.TwoLayerConfig(**{**SMALL, "seeds": 3})), "seeds=3: give a tuple"),
    (lambda: earlylin.run(earlylin.TwoLayerConfig(**{**SMALL, "activation": "swish"})),
     "activation='swish' is unknown"),
    (lambda: earlylin.run(earlylin.TwoLayerConfig(**{**SMALL, "lr": 1e6})), "lr=1000000.0 is past the linear model's"),
    (lambda: earlylin.run(earlylin.TwoLayerConfig(d=10), data=_arrays()), "d=10: the data have d = 20"),
    (lambda: earlylin.run(earlylin.TwoLayerConfig(n_test=7), data=_arrays()), "n_test=7: the data have n_test = 20"),
    (lambda: earlylin.run(earlylin.TwoLayerConfig(), data=np.zeros((4, 4))), "data: a ndarray; give earlylin.Arrays"),
    (lambda: earlylin.run_network(torch.nn.Linear(20, 1), _arrays(), earlylin.NetworkConfig(d=10)),
     "d=10: the data have d = 20"),
    (lambda: earlylin.run_network(torch.nn.Linear(20, 1), _arrays(), earlylin.TwoLayerConfig()),
     "run_network takes an earlylin.NetworkConfig"),
    (lambda: earlylin.run_network(torch.nn.Linear(30, 1), _arrays(), earlylin.NetworkConfig(steps=5)),
     "the network cannot take the data's inputs: on x_train[:8] of shape (8, 20) it raised RuntimeError"),
    (lambda: earlylin.run_network(NaNNet(), _arrays(), earlylin.NetworkConfig(steps=5)),
     "outputs at initialisation (seed 0, x_train[:8]) are NaN or inf"),
    (lambda: earlylin.run_network(NoReset(), _arrays(), earlylin.NetworkConfig(steps=5, seeds=(0, 1))),
     "seeds=[0, 1]: the parameters w, v of the module NoReset are not re-initialised per seed"),
])
def test_api_refuses_with_its_own_names_before_work(no_work, call, needle):
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert needle in message, message
    assert "--" not in message.replace("---", ""), message  # the API's names, never a flag


def test_lr_past_the_fitted_models_bound_is_refused_before_gd(monkeypatch):
    """A user network's bound needs its empirical NTK on n_fit points: its own tangent kernel's bound refuses the
    learning rate after that and before any GD step, named as the API names it."""
    monkeypatch.setattr(pipeline, "run_gd", _tripwire)
    with pytest.raises(ConfigError, match=r"^lr=1000000.0 is past the stability bound of the network's own empirical "
                       r"tangent kernel at initialisation, 2n/λ_max\(Θ\) = .* use lr= below"):
        earlylin.run_network(torch.nn.Linear(20, 1), _arrays(), earlylin.NetworkConfig(steps=5, lr=1e6))


def test_lr_past_the_bound_is_refused_before_the_costly_set_up(monkeypatch):
    """The two-layer bound is known from the features alone: refused before the closed-form fits of the linear
    models (the slow part of the set-up: 21 s at paper size on a 2-core CPU)."""
    monkeypatch.setattr(trajectory.LinearTrajectory, "fit", classmethod(_tripwire))
    with pytest.raises(ConfigError, match=r"lr=1000000.0 is past"):
        earlylin.run(earlylin.TwoLayerConfig(**{**SMALL, "lr": 1e6}))


def test_several_seeds_of_a_module_without_reset_run_with_init():
    """init= gives each seed its parameters (in named_parameters() order): the seeds then differ."""
    def init(seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [rng.standard_normal((16, 20)), rng.standard_normal(16)]

    r = earlylin.run_network(NoReset(), _arrays(), earlylin.NetworkConfig(steps=20, n_log=5, seeds=(0, 1), n_fit=32),
                             init=init)
    assert not np.allclose(r.curve("test_mse")[0][1:], r.curve("test_mse")[1][1:])
    with pytest.raises(ConfigError, match=r"init\(0\) gave parameters of shapes \[\(16, 20\)\]"):
        earlylin.run_network(NoReset(), _arrays(), earlylin.NetworkConfig(steps=5), init=lambda s: [np.zeros((16, 20))])


def test_nan_at_step_zero_is_not_called_divergence():
    """A function-form network whose outputs are NaN is refused as such, not as a learning-rate problem."""
    def net(params, x):
        return x[:, 0] * params[0] * float("nan")

    with pytest.raises(ConfigError, match="NaN or inf, before any gradient step"):
        earlylin.run_network(net, _arrays(), earlylin.NetworkConfig(steps=5), init=lambda s: [np.ones(1)])


# ---------------------------------------------------------------------------------------------- files and disks
def _mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.decode().strip() or 'not root'})")


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB file system (room for a small run's cache), unmounted afterwards."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "4m")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> None:
    """Write zeros until the file system is full (ENOSPC)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


def test_cache_dir_on_a_full_disk_is_refused_before_work(no_work, small_disk):
    _fill(small_disk)
    before = _files(small_disk)
    with pytest.raises(ConfigError, match=rf"cache_dir={small_disk}/c: its disk has .* free, and this run writes"):
        earlylin.run(earlylin.TwoLayerConfig(**SMALL), cache_dir=small_disk / "c")
    assert _files(small_disk) == before


@pytest.fixture
def read_only(tmp_path):
    """A real read-only file system (a tmpfs remounted ro: read-only even for root)."""
    ro = tmp_path / "ro"
    _mount_tmpfs(ro, "64k")
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    yield ro
    subprocess.run(["umount", "-l", str(ro)], check=False)


def test_cache_dir_that_cannot_be_written_is_refused_before_work(no_work, read_only):
    with pytest.raises(ConfigError, match=rf"cache_dir={read_only}/c: cannot write there \(Read-only file system\)"):
        earlylin.run(earlylin.TwoLayerConfig(**SMALL), cache_dir=read_only / "c")


def test_result_saved_where_it_cannot_be_written_names_the_path(read_only):
    result = earlylin.run(earlylin.TwoLayerConfig(**SMALL))
    with pytest.raises(DataError, match=rf"^cannot write {read_only}/r/record.json: Read-only file system$"):
        result.save(read_only / "r" / "record.json")


def test_disk_that_fills_mid_run_gives_one_line_naming_the_path(small_disk, tmp_path):
    """The disk fills while the run trains (its checkpoints go there): one line naming the file, exit 1."""
    cache = small_disk / "cache"
    proc = start_training(tmp_path / "out", "--cache-dir", str(cache), env={"EARLYLIN_CHECKPOINT_EVERY_S": "0.2"})
    _fill(small_disk)
    _, err = finish(proc)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 1, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"earlylin: error: cannot write {cache}/checkpoints/") and "No space left" in lines[0]


def test_files_get_the_users_umask(tmp_path):
    """record.json, the PNG and CSV tables are written 0666 less the umask (mkstemp alone would give 0600)."""
    script = ("import os, sys; os.umask(0o027); from earlylin import verify; "
              f"sys.exit(verify.main(['--d', '8', '--n', '50', '--n-test', '20', '--width', '8', '--steps', '5', "
              f"'--device', 'cpu', '--quiet', '--no-cache', '--out', {str(tmp_path / 'out')!r}]))")
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()}
    assert modes == {"record.json": 0o640, "verify.png": 0o640}


# ---------------------------------------------------------------------------------------------- the command line
def _verify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "earlylin.verify", "--d", "8", "--n", "50", "--n-test", "20",
                           "--width", "8", "--steps", "5", "--device", "cpu", "--quiet", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_cli_cache_dir_on_a_full_disk_is_refused_before_work(small_disk, tmp_path):
    _fill(small_disk)
    done = _verify("--cache-dir", str(small_disk / "c"), "--out", str(tmp_path / "out"))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"earlylin: error: --cache-dir {small_disk}/c: its disk has ")
    assert "free, and this run writes up to" in lines[0]
    assert _files(tmp_path / "out") == [] and not (small_disk / "c").exists()


def test_a_second_run_into_the_same_out_is_refused_while_the_first_runs(tmp_path):
    """Two real processes: while the first trains into --out, the second is refused (exit 2, one line) and
    writes nothing; the first is unaffected."""
    out = tmp_path / "out"
    first = start_training(out, "--no-cache")
    try:
        second = _verify("--no-cache", "--out", str(out))
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert lines[0] == (f"earlylin: error: --out {out}: another earlylin run is writing there now (it holds the "
                            "folder's lock); wait for it to finish or name another folder")
        assert _files(out) == [] and first.poll() is None
    finally:
        first.kill()
        first.wait()
    assert _verify("--no-cache", "--out", str(out)).returncode == 0  # a killed run's lock is gone with it
