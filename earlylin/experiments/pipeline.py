"""One experiment pipeline: what every family shares, done once.

An :class:`Experiment` holds exactly what differs between families — its config, its data, its
network (initial parameters and GD step), its linear model(s) — and hands them over as a
:class:`Prepared` batch. :func:`run` does everything else:

1. validate the config, resolve the device, check that the run fits in memory (:mod:`earlylin.experiments.memory`) and
   that the cache dir can take its results, check a user's pieces on a few points, turn TF32 off
   (docs/theory.md §6);
2. look up each seed in the cache (key: family, config, seed, device, the experiment's data and
   callable fingerprints, and the package's code fingerprint — :class:`earlylin.runtime.records.Cache`);
3. train the missing seeds as one batch: the learning-rate stability check against the linear
   model (η < 2n/λ_max(ΨᵀΨ)), the record schedule (log-spaced steps plus the early window
   T = c·d·log(d)/η, docs/theory.md §4), full-batch GD (:func:`earlylin.experiments.train.run_gd`) with the
   comparison of :class:`earlylin.experiments.comparison.LinearComparison` at every recorded step; with the cache
   on, a :class:`earlylin.experiments.train.Checkpoint` of the batch (``<cache>/checkpoints/<key>.pt``, the key
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

import numpy as np
import torch

from earlylin.activations import gaussian_constants
from earlylin.config import paper_training, theorem_window
from earlylin.errors import ConfigError, DivergenceError, arg
from earlylin.experiments import memory
from earlylin.experiments.comparison import LinearComparison, output_mse, relative_mse
from earlylin.experiments.result import Result, summarise
from earlylin.experiments.train import Checkpoint, StepFn, record_schedule, run_gd
from earlylin.runtime.devices import exact_fp32, resolve_device
from earlylin.runtime.progress import say, warn
from earlylin.runtime.records import Cache, probe_dir, to_jsonable
from earlylin.training.batches import Batches
from earlylin.training.optim import Optimizer, OptimSpec, stability_factor

KEPT = "outputs:"  # prefix of a recorded row's full outputs (keep_outputs), taken out before the metrics
STABILITY_WARN = 0.9  # warn when η exceeds this fraction of the linear model's bound 2n/λ_max


@dataclass
class Prepared:
    """One batch of seeds, ready to train: every tensor has the seed axis first.

    ``step(params)`` → (loss (K,), train outputs (K, n), one gradient per parameter);
    ``test_outputs(params)`` → the network's test outputs (K, n_test); ``extra_outputs(params)`` → {name: test
    outputs (K, n_test)} of further models trained alongside (the θ-linearised net ``ntk_lin``): each adds
    ``test_mse_<name>`` (MSE to the net) to a recorded row, and ``keep_outputs`` stores it as ``test_<name>``;
    ``extra_row(params, f_test)`` adds family-specific metrics to a recorded row; ``shared`` is plain data stored
    with every seed (constants, data source, linear-model coefficients)."""

    params: list[torch.Tensor]
    lrs: list[float]
    step: StepFn
    test_outputs: Callable[[list[torch.Tensor]], torch.Tensor]
    comparison: LinearComparison
    lr_context: str
    shared: dict[str, Any] = field(default_factory=dict)
    extra_row: Callable[[list[torch.Tensor], torch.Tensor], dict[str, torch.Tensor]] | None = None
    seed_data: dict[int, dict[str, Any]] = field(default_factory=dict)  # plain data of one seed (its fitted model)
    extra_outputs: Callable[[list[torch.Tensor]], dict[str, torch.Tensor]] | None = None
    optim: OptimSpec = field(default_factory=OptimSpec)  # the update rule of the network and its linear model
    batches: Batches | None = None  # the mini-batch sequence; None: full batch, ``step(params)``
    train_outputs: Callable[[list[torch.Tensor]], torch.Tensor] | None = None  # (K, n); for mini-batch steps
    lr_factor: float | None = 1.0  # the linear model's bound × this is the limit (training.optim.stability_factor)
    trained: list[Any] = field(default_factory=list)  # more models trained in the loop: ``params``, ``grads(idx)``


class Experiment(Protocol):
    """What differs between families. ``config`` has ``validate()``, ``as_dict()``, ``seeds``, ``d``,
    ``lr``, ``steps``, ``n_log``, ``window_c``, ``escape_factor`` and ``device``.

    ``identity()`` is the plain data that, besides the config and the seed, determines a result
    (fingerprints of user data and callables), or a string saying why the run cannot be cached.
    An experiment may also have ``check()``: a quick test of its pieces on a few points, run before any
    work (a user's network: :meth:`earlylin.experiments.network.Network.check`). ``prepare`` calls
    :func:`check_lr` as soon as the linear model's features are known, before its costly parts."""

    family: str
    config: Any

    def identity(self) -> dict[str, Any] | str: ...

    def prepare(self, seeds: list[int], device: torch.device, progress: bool) -> Prepared: ...


def training_fields(cfg: Any, n: int, outputs: int = 1) -> dict[str, Any]:
    """The :class:`Prepared` fields of how ``cfg`` trains (docs/theory.md §3.3): its update rule, its mini-batch
    sequence (None: all n points) and the factor of its stability bound."""
    return {"optim": OptimSpec(cfg.optimizer, momentum=cfg.momentum),
            "batches": Batches(n, cfg.batch_size, cfg.batch_seed) if cfg.batch_size not in (None, n) else None,
            "lr_factor": stability_factor(cfg.loss, cfg.optimizer, cfg.momentum, outputs)}


def _disk_bytes(cfg: Any, keep_outputs: bool = False) -> int:
    """A generous bound on what a run writes into the cache dir: per seed its entry (metrics at every recorded
    step, ≤ 1 MiB), two copies of the checkpoint (the file and its temporary twin: every parameter of both
    network copies in float64 terms, and with ``keep_outputs`` the outputs recorded so far), and the pooled
    CIFAR arrays (≈ 18 MB) for a CIFAR run."""
    K = len(cfg.seeds)
    width, d = int(getattr(cfg, "width", 0)), int(getattr(cfg, "d", 0))
    depth, k = int(getattr(cfg, "depth", 1)), int(getattr(cfg, "kernel_size", 1))
    params = 2 * (width * d + depth * width * width * k * k + width)  # both copies of every layer, roughly
    kept = 2 * memory.outputs_bytes(cfg) if keep_outputs else 0
    return K * 2**20 + 2 * K * 8 * params + kept + (40 * 2**20 if hasattr(cfg, "cifar_norm") else 0)


def check_lr(lr: float, bound: torch.Tensor, context: str,
             what: str = "the linear model's stability bound 2n/λ_max(ΨᵀΨ)") -> None:
    """Refuse η at or past a stability bound (default: the linear model's, 2n/λ_max(ΨᵀΨ); a user's network is also
    checked against its own empirical tangent kernel's, 2n/λ_max(Θ)); warn within 10% of it."""
    limit = float(bound.min())
    if lr >= limit:
        raise ConfigError(f"{arg('lr', lr)} is past {what} = {limit:.4g} ({context}); "
                          f"use {arg('lr')} below {limit:.4g}")
    if lr > STABILITY_WARN * limit:
        warnings.warn(f"{arg('lr', lr)} is within 10% of {what} = {limit:.4g}", stacklevel=3)


def train(exp: Experiment, seeds: list[int], device: torch.device, progress: bool,
          checkpoint: Checkpoint | None = None, outputs: dict[str, Any] | None = None) -> tuple[dict[int, dict], dict]:
    """Train ``seeds`` of ``exp`` as one batch: ({seed: metrics per recorded step}, shared data).
    ``checkpoint``: resume from it and save to it (:func:`earlylin.experiments.train.run_gd`). ``outputs``: a
    dict to fill with the full outputs at every recorded step (``keep_outputs``): ``steps`` (R,), ``seeds``
    (K,) and one float64 (K, R, n) array per model and set (:meth:`LinearComparison.outputs`, ``test_<name>``
    of ``extra_outputs``); they travel with the recorded rows (so a checkpoint keeps them) on the CPU."""
    cfg = exp.config
    ntk = f"; exact NTK model: the {cfg.n}×{cfg.n} kernel and its eigendecomposition" if getattr(
        cfg, "ntk_model", False) else ""
    say(f"set-up: data, network and linear model(s) of {len(seeds)} seed(s){ntk}…", progress)
    prep = exp.prepare(seeds, device, progress)
    if prep.lr_factor is not None:  # every family; most checked it early already
        check_lr(cfg.lr, prep.comparison.bound * prep.lr_factor, prep.lr_context,
                 what="the linear model's stability bound 2n/λ_max(ΨᵀΨ)" + (
                     "" if prep.lr_factor == 1.0 else f" × {prep.lr_factor:g} (the loss and optimizer's factor)"))
    paper = paper_training(cfg) and prep.comparison.classes is None  # one output, trained as the theorem assumes
    window = theorem_window(exp.family, cfg.d, cfg.lr, cfg.window_c, paper)  # where a theorem gives it
    steps = record_schedule(cfg.steps, cfg.n_log, extra=[] if window is None else [window])
    rows: list[dict[str, torch.Tensor]] = [] if checkpoint is None else checkpoint.rows

    trained = [*prep.comparison.trained, *prep.trained]  # models trained in this loop, after the network's params
    n_net = len(prep.params)

    def step(ps: list[torch.Tensor], idx: torch.Tensor | None = None) -> tuple[Any, Any, list[Any]]:
        loss, f, grads = prep.step(ps[:n_net]) if idx is None else prep.step(ps[:n_net], idx)  # type: ignore[call-arg]
        return loss, f, [*grads, *(g for m in trained for g in m.grads(idx))]

    def on_record(t: int, f_train: torch.Tensor | None, all_params: list[torch.Tensor]) -> None:
        params = all_params[:n_net]
        with torch.no_grad():
            if f_train is None:  # a mini-batch step: the outputs on every training point
                f_train = prep.train_outputs(params)  # type: ignore[misc]
            f_test = prep.test_outputs(params)
            outs = prep.comparison.outputs(t, f_train, f_test)
            row = prep.comparison.row(t, f_train, f_test, outs)
            more = prep.extra_outputs(params) if prep.extra_outputs is not None else {}
            row.update({f"test_mse_{k}": output_mse(outs["test_net"], v.double()) for k, v in more.items()})
            row.update({f"test_rel_mse_{k}": relative_mse(outs["test_net"], v.double()) for k, v in more.items()})
            if prep.extra_row is not None:
                row.update(prep.extra_row(params, f_test))
            if outputs is not None:
                outs.update({f"test_{k}": v.double() for k, v in more.items()})
                row.update({KEPT + k: v.detach().cpu() for k, v in outs.items()})
        rows.append(row)

    start = time.perf_counter()
    params = [*prep.params, *(p for m in trained for p in m.params)]
    lrs = [*prep.lrs, *[cfg.lr] * (len(params) - len(prep.params))]
    watch = run_gd(step if trained or prep.batches is not None else prep.step, params, lrs, cfg.steps, steps,
                   on_record, seeds, progress, checkpoint, Optimizer(prep.optim, params, lrs), prep.batches)
    wall = time.perf_counter() - start + (checkpoint.elapsed_s if checkpoint is not None else 0.0)
    if outputs is not None:  # out of the rows before they become plain data
        names = [k for k in rows[0] if k.startswith(KEPT)]
        outputs.update(steps=np.asarray(steps), seeds=np.asarray(seeds))
        outputs.update({k.removeprefix(KEPT): torch.stack([r.pop(k).cpu() for r in rows], dim=1).numpy()
                        for k in names})
    per_seed = prep.comparison.per_seed(rows, steps, seeds, watch.diverged(seeds), wall)
    for seed, spikes in watch.spikes(seeds).items():
        per_seed[seed].update(prep.seed_data.get(seed, {}), loss_spikes=spikes)
    return per_seed, prep.shared


def run(exp: Experiment, cache: Cache | None = None, progress: bool = False,
        checkpoint_every_s: float | None = None, max_gb: float | None = None, keep_outputs: bool = False) -> Result:
    """Run (or load from ``cache``) every seed of ``exp``; the missing seeds train as one batch.
    ``max_gb``: the memory limit in GiB (default: what the device has available; :mod:`earlylin.experiments.memory`).
    ``checkpoint_every_s``: seconds between checkpoints of that batch (default
    :func:`earlylin.experiments.train.checkpoint_interval`); none without the cache. ``keep_outputs``: keep the
    full outputs of every recorded step (:meth:`Result.outputs`); refused before any work when they would not fit
    in memory (:func:`earlylin.experiments.memory.check_outputs_fit`). The cache holds metrics, not outputs, so
    such a run reads no cache entry: every seed trains (and is stored as usual), and its checkpoint is its own."""
    cfg = exp.config
    if not isinstance(keep_outputs, bool):
        raise ConfigError(f"{arg('keep_outputs', keep_outputs)}: give True or False")
    device = resolve_device(cfg.device)
    if memory.covers(cfg):  # before any work: a run that cannot fit is refused with its estimate
        memory.check_fits(cfg, device, max_gb)
    if keep_outputs:
        memory.check_outputs_fit(cfg, device, max_gb)
    cache = cache or Cache(None)
    if cache.directory is not None:
        probe_dir(cache.directory, arg("cache_dir"), _disk_bytes(cfg, keep_outputs))
    check = getattr(exp, "check", None)
    if check is not None:
        check()
    act = getattr(exp, "act", None)  # families with a derived linear model: say where Stein's identities fail
    if act is not None and (note := gaussian_constants(act).note(act.name)):
        warn(note)
    ident = exp.identity()
    cacheable = cache.enabled and isinstance(ident, dict)
    not_cached = None if isinstance(ident, dict) else ident
    base = {"family": exp.family, **cfg.as_dict(), "seeds": None, "device": device.type,
            **(ident if isinstance(ident, dict) else {})}

    entries: dict[int, dict] = {}
    if cacheable and not keep_outputs:  # an entry holds no outputs: a keep_outputs run trains every seed
        for s in cfg.seeds:
            hit = cache.load({**base, "seed": s})
            if hit is not None:
                entries[s] = hit
    hits = len(entries)
    missing = [s for s in cfg.seeds if s not in entries]
    start = time.perf_counter()
    kept: dict[str, Any] | None = {} if keep_outputs else None
    if missing:
        checkpoint = None
        if cacheable:
            assert cache.directory is not None
            key = cache.key({**base, "seed": None, "batch": missing, "checkpoint": True,
                             **({"keep_outputs": True} if keep_outputs else {})})  # its rows hold the outputs
            checkpoint = Checkpoint(cache.directory / "checkpoints" / f"{key}.pt", checkpoint_every_s)
        try:
            with exact_fp32():  # fp32 means fp32 for the run, torch's settings restored after it
                per_seed, shared = train(exp, missing, device, progress, checkpoint, kept)
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
    return Result(record, outputs=kept)
