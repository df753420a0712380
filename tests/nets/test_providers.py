"""The choice of the fast step's GEMM provider (earlylin.nets.providers): the faster of two constructed providers
is the one chosen (the choice, not the speed), the choice is measured once per machine and then read from the
machine folder by every process whatever its thread count, a forced provider is taken and a bad one refused, and
the numpy provider computes what torch's does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from earlylin.errors import ConfigError
from earlylin.nets import providers
from earlylin.runtime import machine
from tests.conftest import ROOT, assert_close


def _work(repeat: int):
    a, b = torch.randn(96, 96), torch.randn(96, 96)
    out = torch.empty(96, 96)

    def run() -> None:
        for _ in range(repeat):
            torch.mm(a, b, out=out)

    return run


@pytest.mark.parametrize("order", [("fast", "slow"), ("slow", "fast")])
def test_choose_picks_the_faster_of_two_providers(order):
    """Two providers built here, one doing 40× the other's work: whichever comes first, the fast one wins."""
    work = {"fast": _work(1), "slow": _work(40)}
    name, seconds = providers.choose({k: work[k] for k in order}, repeats=3)
    assert name == "fast"
    assert seconds["fast"] < seconds["slow"]


def test_machine_choice_is_measured_once_then_kept_for_the_machine(tmp_path, monkeypatch):
    """Measured once, then read from the machine folder's providers.json (a new process: the in-process memo
    emptied); an unreadable file is measured again; an unwritable folder costs only the measurement."""
    monkeypatch.setattr(providers, "_CHOSEN", {})
    monkeypatch.setenv("EARLYLIN_MACHINE_DIR", str(tmp_path / "machine"))
    calls = []

    def candidates():
        calls.append(1)
        return {"torch": _work(30), "numpy": _work(1)}

    assert providers.machine_choice("k", candidates) == "numpy"
    providers._CHOSEN.clear()  # as in a new process
    assert providers.machine_choice("k", candidates) == "numpy"
    assert len(calls) == 1  # the second answer came from the machine's file
    cached = json.loads((tmp_path / "machine" / "providers.json").read_text())
    assert cached["k"]["gemm"] == "numpy" and set(cached["k"]["seconds"]) == {"torch", "numpy"}
    (tmp_path / "machine" / "providers.json").write_text("{not json")
    providers._CHOSEN.clear()
    assert providers.machine_choice("k", candidates) == "numpy"
    assert len(calls) == 2  # an unreadable file is measured again
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("EARLYLIN_MACHINE_DIR", str(blocked / "machine"))  # cannot be made: below a file
    providers._CHOSEN.clear()
    assert providers.machine_choice("other", candidates) == "numpy" and len(calls) == 3


def test_the_kept_choice_decides_whatever_the_thread_count(tmp_path):
    """Two processes, one with 1 torch thread and one with 2, on one machine folder: the same provider (the one
    the folder holds, even where it is not the one a measurement would pick) and the same bits of a fast step.
    A sweep's Ray workers (1 thread) and its driver differ in the same way."""
    machine = tmp_path / "machine"
    script = (
        "import sys, hashlib, torch\n"
        "torch.set_num_threads(int(sys.argv[1]))\n"
        "from earlylin.activations import get_activation\n"
        "from earlylin.nets import two_layer as nets\n"
        "from tests.conftest import random_two_layer_problem\n"
        "X, y, W, v = random_two_layer_problem(1, 4096, 50, 256)\n"
        "step = nets.BlockedTwoLayerStep(get_activation('erf'), X, y, True, True)\n"
        "out = step(W, v)\n"
        "print(step.gemm(256), hashlib.sha256(b''.join(t.numpy().tobytes() for t in out)).hexdigest())\n")
    env = {**os.environ, "EARLYLIN_MACHINE_DIR": str(machine)}
    env.pop("EARLYLIN_GEMM", None)
    first = subprocess.run([sys.executable, "-c", script, "2"], env=env, cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    kept = json.loads((machine / "providers.json").read_text())
    (key,) = kept
    assert "threads" not in key and kept[key]["gemm"] == first[0]
    other = "numpy" if first[0] == "torch" else "torch"  # the file, not a new measurement, decides
    (machine / "providers.json").write_text(json.dumps({key: {"gemm": other, "seconds": {}}}))
    runs = [subprocess.run([sys.executable, "-c", script, t], env=env, cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split() for t in ("1", "2")]
    assert runs[0] == runs[1] and runs[0][0] == other


def test_forced_provider_and_bad_name(monkeypatch):
    monkeypatch.setenv("EARLYLIN_GEMM", "numpy")
    assert providers.forced() == "numpy"
    monkeypatch.setenv("EARLYLIN_GEMM", "blis")
    with pytest.raises(ConfigError, match=r"EARLYLIN_GEMM='blis'.*valid: torch, numpy"):
        providers.forced()
    monkeypatch.delenv("EARLYLIN_GEMM")
    assert providers.forced() is None


def test_numpy_provider_computes_the_torch_products():
    """numpy's products on torch's memory (plain and transposed views) equal torch's to fp32 rounding."""
    g = torch.Generator().manual_seed(0)
    a, H, x, r = (torch.randn(*s, generator=g) for s in ((300, 50), (300, 64), (64,), (300,)))
    p, q = providers.GEMMS["numpy"], providers.GEMMS["torch"]
    with p.single():
        for op, args in (("mm", (a, torch.randn(50, 64, generator=g))), ("mv", (H, x)),
                         ("mv", (H.transpose(0, 1), r)), ("mm", (a.transpose(0, 1), H))):
            shape = (args[0].shape[0], *args[1].shape[1:])
            got, want = getattr(p, op)(*args, torch.empty(shape)), getattr(q, op)(*args, torch.empty(shape))
            assert_close(got, want, "fp32")


def test_cpu_model_is_named():
    assert machine.cpu_model().strip() and machine.cpu_model() in machine.cpu_signature()
