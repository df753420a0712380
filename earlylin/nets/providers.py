"""Who computes the ``fast`` CPU step's matrix products on this machine: torch (MKL) or numpy (OpenBLAS).

The step's products (docs/theory.md §1: Z = X Wᵀ/√d, f = φ(Z) v/√m, ∇_v ∝ φ(Z)ᵀ r, ∇_W ∝ (r ⊙ X)ᵀ φ′(Z)) can
be evaluated by either BLAS the core already brings, and which is faster depends on the CPU (MKL takes a
generic path on some non-Intel CPUs). ``GEMMS`` holds the candidates: ``torch`` (``torch.mm``/``torch.mv``)
and ``numpy`` (``numpy.matmul`` on the same memory, OpenBLAS held to one thread per call by threadpoolctl,
as torch's are on the step's workers).

:func:`choose` times candidates (interleaved rounds, best of each) and keeps the fastest; :func:`machine_choice`
does it once per machine (CPU model, torch and numpy versions, block shape) on the whole step, and keeps the answer
in ``providers.json`` in the machine folder (:func:`earlylin.runtime.machine.machine_dir`), under that folder's lock:
every later run and process on the machine (with or without a result cache, a sweep's Ray workers too) reads the
same answer, so their bits agree. Where numpy is not clearly faster (under :data:`MARGIN` × torch's time) torch
stays. The choice goes into every record's ``net_step.gemm``; ``EARLYLIN_GEMM=torch`` (or ``numpy``) forces one.
A choice changes only the fp32 rounding of the products, never the equations.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch

from earlylin.errors import ConfigError, DataError
from earlylin.runtime.machine import cpu_model, machine_lock
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


def machine_key(rows: int, m: int, d: int) -> str:
    """What a choice is kept under: the CPU, the libraries and the block shape (not the thread count: the step's
    bits must not depend on it, so every thread count takes the same provider)."""
    return f"{cpu_model()} | torch {torch.__version__} | numpy {np.__version__} | block {rows}x{m}x{d}"


_CHOSEN: dict[str, str] = {}  # this process's choices, by machine_key
MARGIN = 0.9  # numpy replaces torch only when its time is below 0.9× torch's: a near tie keeps torch


def machine_choice(key: str, candidates: Callable[[], dict[str, Callable[[], object]]]) -> str:
    """The GEMM provider for ``key`` (:func:`machine_key`): this process's earlier answer, else the machine's
    (``providers.json`` in the machine folder), else measured now under the folder's lock (a second process
    waits, then reads it): :func:`choose` among ``candidates()`` (name → one step with that provider), ``numpy``
    only where it takes under :data:`MARGIN` × torch's time, written atomically. Where the folder cannot be
    made or written the answer is kept for this process only."""
    if key in _CHOSEN:
        return _CHOSEN[key]
    with machine_lock() as folder:
        path = None if folder is None else folder / "providers.json"
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
                with contextlib.suppress(OSError, DataError):
                    write_json_atomic(path, known | {key: {"gemm": name, "seconds": seconds}})
    _CHOSEN[key] = name
    return name
