"""Who computes the ``fast`` CPU step's matrix products on this machine: torch (MKL) or numpy (OpenBLAS).

The step's products (docs/theory.md §1: Z = X Wᵀ/√d, f = φ(Z) v/√m, ∇_v ∝ φ(Z)ᵀ r, ∇_W ∝ (r ⊙ X)ᵀ φ′(Z)) can
be evaluated by either BLAS the core already brings, and which is faster depends on the CPU (MKL takes a
generic path on some non-Intel CPUs). ``GEMMS`` holds the candidates: ``torch`` (``torch.mm``/``torch.mv``)
and ``numpy`` (``numpy.matmul`` on the same memory, OpenBLAS held to one thread per call by threadpoolctl,
as torch's are on the step's workers).

:func:`choose` times candidates (interleaved rounds, best of each) and keeps the fastest; :func:`machine_choice`
does it once per machine (CPU model, torch and numpy versions, threads, block shape) on the whole step, and
caches the answer in ``<cache dir>/providers.json`` (the run's cache dir, ``~/.cache/earlylin`` by default for the
commands; none with ``--no-cache`` or ``cache_dir=None``: then measured once per process). Where numpy is not
clearly faster (under :data:`MARGIN` × torch's time) torch stays, so that a near tie cannot flip between runs.
The choice goes into every record's ``net_step.gemm``; ``EARLYLIN_GEMM=torch`` (or ``numpy``) forces one. A
choice changes only the fp32 rounding of the products, never the equations; reruns on one machine reuse it,
so their bits agree.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from earlylin.errors import ConfigError
from earlylin.runtime.records import write_json_atomic


def mm_torch(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.mm(a, b, out=out)


def mv_torch(a: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.mv(a, x, out=out)


def mm_numpy(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    np.matmul(a.numpy(), b.numpy(), out=out.numpy())
    return out


def mv_numpy(a: torch.Tensor, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    # xᵀaᵀ: numpy's vector-matrix product on a transposed view is its fast form
    np.matmul(x.numpy(), a.numpy().T, out=out.numpy())
    return out


@dataclass(frozen=True)
class Gemm:
    """A provider of the step's two product shapes, matrix-matrix and matrix-vector, into ``out``; ``single``
    is the context within which its calls run single-threaded (entered around the pool's work)."""

    mm: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    mv: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    single: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext


def _openblas_single() -> AbstractContextManager[object]:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


GEMMS: dict[str, Gemm] = {"torch": Gemm(mm_torch, mv_torch), "numpy": Gemm(mm_numpy, mv_numpy, _openblas_single)}
DEFAULT = "torch"  # where nothing is measured (not a CPU, or not float32)


def choose(candidates: dict[str, Callable[[], object]], repeats: int = 5) -> tuple[str, dict[str, float]]:
    """The fastest of ``candidates`` (name → a call that does one unit of work) and each one's seconds: after one
    warm-up call each, the best of ``repeats`` rounds, the candidates in turn within a round (so that a change of
    the machine's load hits all alike); ties keep the first."""
    best = {name: math.inf for name in candidates}
    for fn in candidates.values():  # warm-up: first-call allocations and library set-up
        fn()
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return min(best, key=lambda name: best[name]), best


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``), with family and model."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if not line.strip():
                break
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name


def forced() -> str | None:
    """``EARLYLIN_GEMM`` if set (one of :data:`GEMMS`), else None.

    Raises:
        ConfigError: a name that is not one of :data:`GEMMS`.
    """
    name = os.environ.get("EARLYLIN_GEMM", "").strip()
    if not name:
        return None
    if name not in GEMMS:
        raise ConfigError(f"EARLYLIN_GEMM={name!r} is unknown; valid: {', '.join(GEMMS)} (or unset: measured)")
    return name


def machine_key(rows: int, m: int, d: int, threads: int) -> str:
    return (f"{cpu_model()} | torch {torch.__version__} | numpy {np.__version__} | threads {threads} | "
            f"block {rows}x{m}x{d}")


_CHOSEN: dict[str, str] = {}  # this process's choices, by machine_key
CACHE_DIR: ContextVar[Path | None] = ContextVar("earlylin_providers_cache", default=None)
MARGIN = 0.9  # numpy replaces torch only when its time is below 0.9× torch's: a near tie keeps torch, run after run


@contextlib.contextmanager
def cache_at(directory: str | os.PathLike[str] | None):
    """Within the block, :func:`machine_choice` reads and writes ``directory/providers.json`` (None: no file)."""
    token = CACHE_DIR.set(None if directory is None else Path(directory))
    try:
        yield
    finally:
        CACHE_DIR.reset(token)


def machine_choice(key: str, candidates: Callable[[], dict[str, Callable[[], object]]]) -> str:
    """The GEMM provider for ``key`` (:func:`machine_key`): this process's earlier answer, else the one cached in
    ``CACHE_DIR/providers.json`` (set by the run to its cache dir; None: no file, as with ``--no-cache``), else
    measured now: :func:`choose` among ``candidates()`` (name → one step with that provider), ``numpy`` only where
    it takes under :data:`MARGIN` × torch's time, and cached atomically for the next run (an unwritable cache only
    costs the measurement again)."""
    if key in _CHOSEN:
        return _CHOSEN[key]
    directory = CACHE_DIR.get()
    path = None if directory is None else Path(directory) / "providers.json"
    known: dict = {}
    if path is not None:
        try:
            loaded = json.loads(path.read_text())
            known = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            pass
    entry = known.get(key)
    if isinstance(entry, dict) and entry.get("gemm") in GEMMS:
        name = str(entry["gemm"])
    else:
        _, seconds = choose(candidates(), repeats=3)
        name = "numpy" if seconds.get("numpy", math.inf) < MARGIN * seconds.get("torch", math.inf) else "torch"
        if path is not None:
            try:
                write_json_atomic(path, known | {key: {"gemm": name, "seconds": seconds}})
            except OSError:
                pass
    _CHOSEN[key] = name
    return name
