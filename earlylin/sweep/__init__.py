"""Sweeps: a grid over any config fields, each point one task, the same command on a laptop or a Ray cluster.

This is the library; the command is :mod:`earlylin.cli.sweep`.

Usage:
    python -m earlylin.sweep --grid d=25,50,100 width=256,1024 lr=0.5,1 --set steps=1000
    python -m earlylin.sweep --grid d=8,16,32 m_over_d=1,4,16 --n-exponent 1.5 --n-scale 8 \\
        --set steps_per_window=3 n_test=200 --seeds 0 1          # n = round(8·d^1.5), m = m/d·d
    python -m earlylin.sweep --grid d=25,50,100 --backend ray --ray-address auto   # on a Ray cluster

Python: ``earlylin.run_sweep({"d": [25, 50], "width": [256, 1024]}, fixed={"steps": 1000}, seeds=[0, 1],
cache_dir="~/.cache/earlylin")`` returns a :class:`SweepResult` (``.table``, ``.summary``, ``.record``).

A point is one config (``--family``: two_layer, cnn1d or cifar), all its seeds trained as one batch
by :func:`run_point`, a pure function of (family, fields, cache_dir) that goes through
:func:`earlylin.experiments.run` and its cache, with the same keys as ``python -m earlylin.verify``:
a sweep resumes where it stopped, and a point that ``verify`` computed is reused. Grid and ``--set``
values are parsed by the config field's type. Derived fields, per point: ``m_over_d`` sets the width
m = m/d·d (even); ``n_exponent`` with ``n_scale`` (default 1) set n = round(scale·d^exponent);
``steps_per_window`` sets steps = ⌈k·T⌉ with T = c·d·log(d)/η the early window (docs/theory.md §4.5).

The grid's fields are parsed and checked by :mod:`earlylin.sweep.spec`. Backends
(:mod:`earlylin.sweep.backends`): ``local`` (default; in this process) and ``ray`` (one Ray
task per point; a task whose worker dies is retried). A point that fails for a reason of its own
(an invalid config, the learning rate past the stability bound, divergence) is reported in the
table's ``error`` column; the others still run. Writes ``<out>/sweep.csv`` (one row per point and
seed) and ``<out>/sweep.json`` (spec, environment, code fingerprint, the table, a summary).
Exit status: 0 success, 2 invalid input (before any work), 3 some rows failed, 4 every row failed.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from earlylin.errors import ConfigError, EarlylinError, arg, int_range
from earlylin.experiments import FAMILIES, config_from_dict, experiment_for, memory, run
from earlylin.runtime.devices import resolve_device
from earlylin.runtime.progress import say
from earlylin.runtime.records import SCHEMA, Cache, environment, locked_dir, write_csv_atomic, write_json_atomic
from earlylin.sweep.backends import BACKENDS, PointFn, Rows, progress_bar, run_local, run_ray
from earlylin.sweep.spec import check_spec, grid_points, plain_value, resolve_fields

MAX_POINTS = 1_000  # a larger grid needs max_points= / --max-points: one typo in an axis can make 10⁶ points
KEY_FIELDS = ("d", "width", "n", "lr", "steps", "layers", "activation", "target", "arch", "depth")
METRICS = ("early_window_steps", "max_mse_early", "max_rel_mse_early", "escape_step", "initial_mismatch",
           "linear_regime_steps", "escape_step_observed", "loss_spikes", "wall_time_s", "point_wall_s", "device",
           "cached", "code_fingerprint", "error")


# ---------------------------------------------------------------------------------------------- one point
def _keys(family: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    try:
        resolved = resolve_fields(family, fields)
    except ConfigError:
        resolved = dict(fields)
    merged = {**FAMILIES[family][0]().as_dict(), **resolved}
    return {k: merged[k] for k in KEY_FIELDS if k in merged}


def error_rows(family: str, fields: Mapping[str, Any], message: str, wall: float = 0.0) -> Rows:
    """The rows of a point that failed: its key fields, one row per seed, metrics empty, ``error`` set."""
    keys = _keys(family, fields)
    return [{**keys, "seed": s, **dict.fromkeys(METRICS), "point_wall_s": wall, "cached": False, "error": message}
            for s in fields.get("seeds", [0])]


def run_point(family: str, fields: dict[str, Any], cache_dir: str | None, max_gb: float | None = None) -> Rows:
    """One grid point, its seeds as one batch: one plain-data row per seed (key config fields, seed,
    early-window maxima of the test MSE and relative MSE to f^lin, escape step, the initial mismatch, the
    measured linear regime, the observed escape, the number of loss spikes, wall time, device,
    cached, code fingerprint, error). An :class:`EarlylinError` becomes error rows. ``max_gb``: the
    memory limit (default: what the machine running the point has available)."""
    start = time.perf_counter()
    try:
        fields = resolve_fields(family, fields)  # a no-op on the fields that sweep() hands out (resolved there)
        cfg = config_from_dict(family, fields)
        cache = Cache(cache_dir)
        result = run(experiment_for(cfg, data_cache_dir=cache.directory), cache, max_gb=max_gb)
    except EarlylinError as err:
        return error_rows(family, fields, f"{type(err).__name__}: {err}", time.perf_counter() - start)
    wall = time.perf_counter() - start
    s, keys = result.summary, _keys(family, fields)
    rows = []
    for k, seed in enumerate(result.seeds):
        m = result.per_seed[seed]
        rows.append({**keys, "seed": seed, "early_window_steps": s["early_window_steps"],
                     "max_mse_early": s["max_test_mse_early_per_seed"][k],
                     "max_rel_mse_early": s["max_rel_test_mse_early_per_seed"][k],
                     "escape_step": s["escape_step_per_seed"][k],
                     "initial_mismatch": s["initial_mismatch_per_seed"][k],
                     "linear_regime_steps": s["linear_regime_steps_per_seed"][k],
                     "escape_step_observed": s["escape_step_observed_per_seed"][k],
                     "loss_spikes": len(m.get("loss_spikes") or []), "wall_time_s": m["wall_time_s"],
                     "point_wall_s": wall, "device": result.record["device"], "cached": bool(m["cached"]),
                     "code_fingerprint": s["code_fingerprint"],
                     "error": None if m["diverged_at"] is None else f"diverged at step {m['diverged_at']}"})
    return rows


# ---------------------------------------------------------------------------------------------- the sweep
class SweepResult:
    """A finished sweep: ``table`` (column → list; one row per point and seed), ``summary`` and the
    whole plain-data ``record`` written as ``sweep.json``."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    @property
    def table(self) -> dict[str, list[Any]]:
        return self.record["table"]

    @property
    def summary(self) -> dict[str, Any]:
        return self.record["summary"]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.table, vals, strict=True)) for vals in zip(*self.table.values(), strict=True)]

    def __repr__(self) -> str:
        s = self.summary
        return (f"SweepResult(points={s['points']}, rows={s['rows']}, cache_hits={s['cache_hits']}, "
                f"errors={s['error_rows']}, backend={self.record['backend']!r})")


def _table(axes: list[str], points: list[dict], rows_by_point: dict[int, Rows]) -> dict[str, list[Any]]:
    rows = [{"point": i, **{a: points[i][a] for a in axes}, **r} for i in range(len(points)) for r in rows_by_point[i]]
    keys = [k for k in KEY_FIELDS if k not in axes and any(k in r for r in rows)]
    return {c: [r.get(c) for r in rows] for c in ("point", *axes, *keys, "seed", *METRICS)}


def sweep(
    grid: Mapping[str, Sequence[Any]], *, family: str = "two_layer", fixed: Mapping[str, Any] | None = None,
    seeds: Sequence[int] = (0,), backend: str = "local", ray_address: str | None = None,
    out: str | os.PathLike[str] | None = None, cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False, max_retries: int = 2, point_fn: PointFn | None = None, argv: list[str] | None = None,
    max_points: int = MAX_POINTS, max_gb: float | None = None,
) -> SweepResult:
    """Run every point of ``grid`` with the ``fixed`` fields and ``seeds`` (``earlylin.run_sweep``).

    Args:
        grid: config field → values, every combination one point; derived fields as in the module
            docstring (``m_over_d``, ``n_exponent``/``n_scale``, ``steps_per_window``).
        family: ``two_layer``, ``cnn1d`` or ``cifar``.
        fixed: fields set at every point.
        seeds: the seeds of every point, trained as one batch.
        backend: ``local`` (this process) or ``ray`` (one Ray task per point; ``ray_address``,
            ``max_retries``).
        out: with a folder, ``sweep.csv`` and ``sweep.json`` are written there.
        cache_dir: results cached per (config, seed), shared with :func:`earlylin.run` (None: no cache).
        progress: a progress bar on stderr.
        max_points: the largest grid accepted (a guard against a grid far larger than meant).
        max_gb: the memory limit of a point in GiB (default: what this machine has available; with
            ``backend="ray"`` checked only against a ``max_gb`` given).

    Returns:
        The :class:`SweepResult`: ``table`` (one row per point and seed), ``summary``, ``record``.

    Raises:
        ConfigError: before any work, for a bad spec, a grid whose every config is invalid, more than
            ``max_points`` points, or a point past ``max_gb``. A point that fails on its own gives error rows.

    Example::

        import earlylin
        res = earlylin.run_sweep({"d": [8, 16]}, fixed={"n": 200, "n_test": 100, "width": 32, "steps": 30})
        res.table["max_rel_mse_early"]
    """
    fixed = {k: plain_value(v) for k, v in (fixed or {}).items()}
    grid = {k: v if isinstance(v, str | bytes) or not hasattr(v, "__iter__") else [plain_value(x) for x in v]
            for k, v in grid.items()}
    if backend not in BACKENDS:
        raise ConfigError(f"--backend {backend!r} is unknown; valid: {', '.join(BACKENDS)}")
    if ray_address is not None and backend != "ray":
        raise ConfigError("--ray-address needs --backend ray")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"--max-retries {max_retries!r}: must be an integer ≥ 0")
    check_spec(family, grid, fixed, seeds)
    int_range("max_points", max_points, 1, 10**9)
    count = math.prod(len(v) for v in grid.values())
    if count > max_points:
        shape = " × ".join(f"{len(v)} {k}" for k, v in grid.items())
        raise ConfigError(f"the grid has {count:,} points ({shape}), more than {arg('max_points', max_points)}; "
                          f"narrow the grid, or raise {arg('max_points')} if that many are meant")
    device = str(fixed.get("device", "auto"))
    if backend == "local":
        env_device = resolve_device(device)  # a cluster's workers may have devices this process lacks
    else:
        env_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    points = grid_points(grid, fixed, seeds)
    invalid: dict[int, str] = {}
    todo: dict[int, dict[str, Any]] = {}  # point index → its resolved fields (derived fields computed once, here)
    valid = []
    for i, p in enumerate(points):  # every config checked before any work
        try:
            fields = resolve_fields(family, p)
            valid.append(config_from_dict(family, fields))
            todo[i] = fields
        except ConfigError as err:
            invalid[i] = f"ConfigError: {err}"
    if len(invalid) == len(points):
        raise ConfigError(f"every point of the grid is invalid; point 0: {invalid[0].removeprefix('ConfigError: ')}")
    if backend == "local" or max_gb is not None:  # a cluster's workers: only against a limit given
        memory.check_fits([c for c in valid if memory.covers(c)], env_device, max_gb)
    cache_path = None if cache_dir is None else str(Path(cache_dir).expanduser().resolve())
    fn = point_fn or (run_point if max_gb is None else functools.partial(run_point, max_gb=max_gb))
    with contextlib.ExitStack() as stack:
        if out is not None:  # held until the table is written: a second sweep into ``out`` is refused meanwhile
            stack.enter_context(locked_dir(out, arg("out")))
        say(f"sweep: {count:,} point(s) × {len(seeds)} seed(s) on the {backend} backend"
            + (f" ({len(invalid)} invalid, reported in the table)" if invalid else ""), progress)
        start = time.perf_counter()
        bar = stack.enter_context(progress_bar(len(todo), progress))
        if backend == "local":
            done = run_local(family, todo, fn, cache_path, bar)
        else:
            done = run_ray(family, todo, fn, cache_path, bar, lambda i, msg: error_rows(family, todo[i], msg),
                           ray_address, max_retries)
        done.update({i: error_rows(family, points[i], msg) for i, msg in invalid.items()})
        record = {"schema": SCHEMA, "kind": "sweep", "family": family, "grid": {k: list(v) for k, v in grid.items()},
                  "fixed": fixed, "seeds": [int(s) for s in seeds], "backend": backend, "ray_address": ray_address,
                  "argv": argv, "cache_dir": cache_path,
                  "environment": environment(env_device, str(fixed.get("dtype", "float32"))),
                  **_outcome(_table(list(grid), points, done), len(points), len(invalid), start)}
        table = record["table"]
        if out is not None:  # still under the folder's lock
            write_csv_atomic(Path(out) / "sweep.csv", table)
            write_json_atomic(Path(out) / "sweep.json", record)
    return SweepResult(record)


def _outcome(table: dict[str, list[Any]], points: int, invalid: int, start: float) -> dict[str, Any]:
    """The code fingerprint, the summary (counts of points, rows, cache hits, failures; other code) and the table."""
    fingerprint = Cache(None).fingerprint
    cached, error = table["cached"], table["error"]
    summary = {"points": points, "rows": len(table["point"]), "invalid_points": invalid,
               "error_rows": sum(e is not None for e in error), "cache_hits": sum(bool(c) for c in cached),
               "computed": sum(not c and e is None for c, e in zip(cached, error, strict=True)),
               "other_code": sorted({f for f in table["code_fingerprint"] if f and f != fingerprint}),
               "wall_time_s": time.perf_counter() - start}
    return {"code_fingerprint": fingerprint, "summary": summary, "table": table}


def run_study(spec: Mapping[str, Any], device: str, cache: Cache, progress: bool,
              max_gb: float | None = None) -> dict[str, Any]:
    """A study of kind ``phase`` (:data:`earlylin.studies.presets.STUDY_SPECS`): its grid run locally through
    :func:`run_point`; returns the study record's ``table`` and ``summary``."""
    result = sweep(spec["grid"], family=spec.get("family", "two_layer"), fixed={**spec["fixed"], "device": device},
                   seeds=spec["seeds"], cache_dir=cache.directory, progress=progress, max_gb=max_gb)
    return {"table": result.table, "summary": result.summary}
