"""One experiment pipeline: what every family shares, done once.

An :class:`Experiment` holds exactly what differs between families — its config, its data, its
network (initial parameters and GD step), its linear model(s) — and hands them over as a
:class:`Prepared` batch. :func:`run` does everything else:

1. validate the config, resolve the device, turn TF32 off (docs/theory.md §6);
2. look up each seed in the cache (key: family, config, seed, device, the experiment's data and
   callable fingerprints, and the package's code fingerprint — :class:`earlylin.records.Cache`);
3. train the missing seeds as one batch: the learning-rate stability check against the linear
   model (η < 2n/λ_max(ΨᵀΨ)), the record schedule (log-spaced steps plus the early window
   T = c·d·log(d)/η, docs/theory.md §4), full-batch GD (:func:`earlylin.train.run_gd`) with the
   comparison of :class:`earlylin.compare.LinearComparison` at every recorded step; with the cache
   on, a :class:`earlylin.train.Checkpoint` of the batch (``<cache>/checkpoints/<key>.pt``, the key
   of the batch of missing seeds) is saved every ``checkpoint_every_s`` seconds, resumed by a rerun
   and deleted when the batch is done;
4. store each finished, non-diverged seed, and return a :class:`~earlylin.experiments.result.Result`
   whose summary says how many seeds came from the cache (``cache_hits``) and under which code.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from earlylin.compare import LinearComparison, early_window
from earlylin.config import resolve_device, set_exact_fp32
from earlylin.errors import ConfigError, DivergenceError
from earlylin.experiments.result import Result, summarise
from earlylin.progress import say
from earlylin.records import Cache, to_jsonable
from earlylin.train import Checkpoint, StepFn, record_schedule, run_gd

STABILITY_WARN = 0.9  # warn when η exceeds this fraction of the linear model's bound 2n/λ_max


@dataclass
class Prepared:
    """One batch of seeds, ready to train: every tensor has the seed axis first.

    ``step(params)`` → (loss (K,), train outputs (K, n), one gradient per parameter);
    ``test_outputs(params)`` → the network's test outputs (K, n_test); ``extra_row(params, f_test)``
    adds family-specific metrics to a recorded row; ``shared`` is plain data stored with every seed
    (constants, data source, linear-model coefficients)."""

    params: list[torch.Tensor]
    lrs: list[float]
    step: StepFn
    test_outputs: Callable[[list[torch.Tensor]], torch.Tensor]
    comparison: LinearComparison
    lr_context: str
    shared: dict[str, Any] = field(default_factory=dict)
    extra_row: Callable[[list[torch.Tensor], torch.Tensor], dict[str, torch.Tensor]] | None = None


class Experiment(Protocol):
    """What differs between families. ``config`` has ``validate()``, ``as_dict()``, ``seeds``, ``d``,
    ``lr``, ``steps``, ``n_log``, ``window_c``, ``escape_factor`` and ``device``.

    ``identity()`` is the plain data that, besides the config and the seed, determines a result
    (fingerprints of user data and callables), or a string saying why the run cannot be cached."""

    family: str
    config: Any

    def identity(self) -> dict[str, Any] | str: ...

    def prepare(self, seeds: list[int], device: torch.device, progress: bool) -> Prepared: ...


def check_lr(lr: float, bound: torch.Tensor, context: str) -> None:
    """Refuse η at or past the linear model's stability bound 2n/λ_max(ΨᵀΨ); warn within 10% of it."""
    limit = float(bound.min())
    if lr >= limit:
        raise ConfigError(
            f"--lr {lr:g} is past the linear model's stability bound 2n/λ_max(ΨᵀΨ) = {limit:.4g} "
            f"({context}); use --lr below {limit:.4g}"
        )
    if lr > STABILITY_WARN * limit:
        warnings.warn(f"--lr {lr:g} is within 10% of the stability bound {limit:.4g}", stacklevel=3)


def train(exp: Experiment, seeds: list[int], device: torch.device, progress: bool,
          checkpoint: Checkpoint | None = None) -> tuple[dict[int, dict], dict]:
    """Train ``seeds`` of ``exp`` as one batch: ({seed: metrics per recorded step}, shared data).
    ``checkpoint``: resume from it and save to it (:func:`earlylin.train.run_gd`)."""
    cfg = exp.config
    ntk = f"; exact NTK model: the {cfg.n}×{cfg.n} kernel and its eigendecomposition" if getattr(
        cfg, "ntk_model", False) else ""
    say(f"set-up: data, network and linear model(s) of {len(seeds)} seed(s){ntk}…", progress)
    prep = exp.prepare(seeds, device, progress)
    check_lr(cfg.lr, prep.comparison.bound, prep.lr_context)
    window = early_window(cfg.d, cfg.lr, cfg.window_c)
    steps = record_schedule(cfg.steps, cfg.n_log, extra=[window])
    rows: list[dict[str, torch.Tensor]] = [] if checkpoint is None else checkpoint.rows

    def on_record(t: int, f_train: torch.Tensor, params: list[torch.Tensor]) -> None:
        with torch.no_grad():
            f_test = prep.test_outputs(params)
            row = prep.comparison.row(t, f_train, f_test)
            if prep.extra_row is not None:
                row.update(prep.extra_row(params, f_test))
        rows.append(row)

    start = time.perf_counter()
    diverged = run_gd(prep.step, prep.params, prep.lrs, cfg.steps, steps, on_record, seeds, progress, checkpoint)
    wall = time.perf_counter() - start + (checkpoint.elapsed_s if checkpoint is not None else 0.0)
    return prep.comparison.per_seed(rows, steps, seeds, diverged, wall), prep.shared


def run(exp: Experiment, cache: Cache | None = None, progress: bool = False,
        checkpoint_every_s: float | None = None) -> Result:
    """Run (or load from ``cache``) every seed of ``exp``; the missing seeds train as one batch.
    ``checkpoint_every_s``: seconds between checkpoints of that batch (default
    :func:`earlylin.train.checkpoint_interval`); none without the cache."""
    cfg = exp.config.validate()
    device = resolve_device(cfg.device)
    set_exact_fp32()
    cache = cache or Cache(None)
    ident = exp.identity()
    cacheable = cache.enabled and isinstance(ident, dict)
    not_cached = None if isinstance(ident, dict) else ident
    base = {"family": exp.family, **cfg.as_dict(), "seeds": None, "device": device.type,
            **(ident if isinstance(ident, dict) else {})}

    entries: dict[int, dict] = {}
    if cacheable:
        for s in cfg.seeds:
            hit = cache.load({**base, "seed": s})
            if hit is not None:
                entries[s] = hit
    hits = len(entries)
    missing = [s for s in cfg.seeds if s not in entries]
    start = time.perf_counter()
    if missing:
        checkpoint = None
        if cacheable:
            assert cache.directory is not None
            key = cache.key({**base, "seed": None, "batch": missing, "checkpoint": True})
            checkpoint = Checkpoint(cache.directory / "checkpoints" / f"{key}.pt", checkpoint_every_s)
        try:
            per_seed, shared = train(exp, missing, device, progress, checkpoint)
        except DivergenceError:
            if checkpoint is not None:
                checkpoint.delete()
            raise
        for s in missing:
            entries[s] = {"shared": to_jsonable(shared), "metrics": per_seed[s]}
            if cacheable and per_seed[s]["diverged_at"] is None:
                cache.store({**base, "seed": s}, entries[s])
        if checkpoint is not None:
            checkpoint.delete()
    wall = time.perf_counter() - start
    shared = next(iter(entries.values()))["shared"]
    record: dict[str, Any] = {
        "config": {**cfg.as_dict(), "family": exp.family},
        "device": str(device),
        **shared,
        "per_seed": {str(s): {**entries[s]["metrics"], "cached": s not in missing} for s in cfg.seeds},
    }
    record["summary"] = summarise(record, wall, cache_hits=hits, code_fingerprint=cache.fingerprint,
                                  not_cached=not_cached if cache.enabled else None)
    return Result(record)
