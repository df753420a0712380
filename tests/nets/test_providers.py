"""The choice of the fast step's GEMM provider (earlylin.nets.providers): the faster of two constructed providers
is the one chosen (the choice, not the speed), the choice is measured once and then read from the cache, a forced
provider is taken and a bad one refused, and the numpy provider computes what torch's does."""

from __future__ import annotations

import json

import pytest
import torch

from earlylin.errors import ConfigError
from earlylin.nets import providers
from tests.conftest import assert_close


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


def test_machine_choice_is_measured_once_then_cached(tmp_path, monkeypatch):
    """Measured once, then read from the cache file (a new process: the in-process memo emptied); an unreadable
    file is measured again; without a cache dir nothing is written."""
    monkeypatch.setattr(providers, "_CHOSEN", {})
    calls = []

    def candidates():
        calls.append(1)
        return {"torch": _work(30), "numpy": _work(1)}

    with providers.cache_at(tmp_path):
        assert providers.machine_choice("k", candidates) == "numpy"
        providers._CHOSEN.clear()  # as in a new process
        assert providers.machine_choice("k", candidates) == "numpy"
        assert len(calls) == 1  # the second answer came from the cache file
        cached = json.loads((tmp_path / "providers.json").read_text())
        assert cached["k"]["gemm"] == "numpy" and set(cached["k"]["seconds"]) == {"torch", "numpy"}
        (tmp_path / "providers.json").write_text("{not json")
        providers._CHOSEN.clear()
        assert providers.machine_choice("k", candidates) == "numpy"
        assert len(calls) == 2  # an unreadable cache is measured again
    providers._CHOSEN.clear()
    assert providers.CACHE_DIR.get() is None
    assert providers.machine_choice("other", candidates) == "numpy"
    assert len(calls) == 3 and set(json.loads((tmp_path / "providers.json").read_text())) == {"k"}


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
    assert providers.cpu_model().strip()
