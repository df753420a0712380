"""Batched training (full-batch GD by default): a log-spaced recording schedule, divergence checks and checkpoints.

The trainer knows nothing about the model: ``step_fn(params)`` returns the per-seed loss (K,), the
training outputs (K, n) and one gradient per parameter, and every tensor has the seed axis first, so
K seeds advance as one computation. ``on_record(t, f_train, params)`` runs at each recorded step. With
mini-batches (:class:`earlylin.training.batches.Batches`) the trainer calls ``step_fn(params, idx)`` with the
step's batch and the step returns the batch loss and None for the outputs (``on_record`` then gets None); the
update rule is an :class:`earlylin.training.optim.Optimizer` (default: GD with the given learning rates).

A :class:`Checkpoint` makes a long run survive a kill: every ``every_s`` seconds :func:`run_gd` saves
the parameters, the step, the loss watch's state (divergence, spikes) and the rows recorded so far (``checkpoint.rows``)
atomically (:func:`earlylin.runtime.records.write_bytes_atomic`). Given the same checkpoint,
a rerun resumes there; GD is deterministic, so on a CPU the finished record is bit-identical to an
uninterrupted run's.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earlylin.errors import ConfigError, DivergenceError, arg
from earlylin.runtime.progress import bar, say, warn
from earlylin.runtime.records import write_bytes_atomic
from earlylin.training.batches import Batches
from earlylin.training.optim import Optimizer, OptimSpec

StepFn = Callable[[list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]]
RecordFn = Callable[[int, torch.Tensor, list[torch.Tensor]], None]

# A loss this many times its initial value (or above 1e6 when the initial loss is 0) is divergence.
BLOWUP_FACTOR = 1e4
CHECK_EVERY = 50

# A loss spike (docs/theory.md §4.5): a step whose train loss exceeds SPIKE_FACTOR × the lowest loss of the steps
# before it, by more than SPIKE_FLOOR × the initial loss; each excursion is counted once, at its first step.
SPIKE_FACTOR = 1.5
SPIKE_FLOOR = 1e-3
MAX_SPIKES = 32  # spike steps kept per seed (the count goes on)

CHECKPOINT_FORMAT = "earlylin.checkpoint/2"
CHECKPOINT_EVERY_S = 2.0  # default seconds of training between checkpoints: a kill loses at most this much
CHECKPOINT_ENV = "EARLYLIN_CHECKPOINT_EVERY_S"  # overrides the default (tests use a fraction of a second)


def record_schedule(steps: int, n_log: int = 60, extra: Sequence[int] = ()) -> list[int]:
    """Steps 0 and ``steps``, ``n_log`` log-spaced steps in between, and any ``extra`` steps ≤ steps."""
    grid = np.unique(np.round(np.logspace(0, math.log10(max(steps, 1)), n_log)).astype(int))
    chosen = {0, steps, *grid.tolist(), *(e for e in extra if 0 <= e <= steps)}
    return sorted(s for s in chosen if s <= steps)


def diverged_seeds(first_bad: torch.Tensor, seeds: Sequence[int]) -> dict[int, int]:
    """{seed: first step with a non-finite or exploded loss} for the seeds that diverged."""
    bad = first_bad.cpu().tolist()
    return {seed: int(step) for seed, step in zip(seeds, bad, strict=True) if step >= 0}


class LossWatch:
    """What the trainer watches in every step's per-seed train loss, on the loss's device (no sync per step):

    - divergence: the first step whose loss is NaN/inf or above BLOWUP_FACTOR × the initial loss;
    - loss spikes: the first step of each excursion above SPIKE_FACTOR × the lowest earlier loss (and above it
      by more than SPIKE_FLOOR × the initial loss) — GD below the stability bound lowers a smooth loss, so a
      rise is instability, not closeness (docs/theory.md §4.5)."""

    def __init__(self, steps: int, spikes: bool = True) -> None:
        self.steps = steps
        self.detect_spikes = spikes  # off for mini-batch losses, which rise and fall by design
        self.state: dict[str, torch.Tensor] = {}

    def update(self, t: int, loss: torch.Tensor) -> None:
        st = self.state
        if not st:
            st["first_bad"] = torch.full_like(loss, -1, dtype=torch.long)
            st["limit"] = torch.where(loss > 0, loss * BLOWUP_FACTOR, torch.full_like(loss, 1e6))
            st["floor"] = loss.abs() * SPIKE_FLOOR
            st["low"] = torch.full_like(loss, math.inf)
            st["in_spike"] = torch.zeros_like(loss, dtype=torch.bool)
            st["spike_steps"] = torch.full((*loss.shape, MAX_SPIKES), -1, dtype=torch.long, device=loss.device)
            st["spike_count"] = torch.zeros_like(loss, dtype=torch.long)
        bad = ~torch.isfinite(loss) | (loss > st["limit"])
        st["first_bad"] = torch.where((st["first_bad"] < 0) & bad, torch.full_like(st["first_bad"], t), st["first_bad"])
        up = torch.isfinite(loss) & (loss > SPIKE_FACTOR * st["low"]) & (loss - st["low"] > st["floor"])
        up &= self.detect_spikes
        onset = up & ~st["in_spike"]
        slot = st["spike_count"].clamp(max=MAX_SPIKES - 1).unsqueeze(-1)
        kept = st["spike_steps"].gather(-1, slot)
        st["spike_steps"].scatter_(-1, slot, torch.where(onset.unsqueeze(-1) & (kept < 0), t, kept))
        st["spike_count"] += onset.long()
        st["in_spike"] = up
        st["low"] = torch.where(torch.isfinite(loss), torch.minimum(st["low"], loss), st["low"])

    def all_diverged(self) -> bool:
        return bool((self.state["first_bad"] >= 0).all())

    def diverged(self, seeds: Sequence[int]) -> dict[int, int]:
        return diverged_seeds(self.state["first_bad"], seeds)

    def spikes(self, seeds: Sequence[int]) -> dict[int, list[int] | None]:
        """{seed: the first step of each loss spike (the first MAX_SPIKES)} — an empty list: none — before any
        divergence; None for every seed where spikes are not detected (mini-batches)."""
        if not self.detect_spikes:
            return {seed: None for seed in seeds}
        kept = self.state["spike_steps"].cpu().tolist()
        bad = self.state["first_bad"].cpu().tolist()
        return {seed: [t for t in kept[k] if t >= 0 and (bad[k] < 0 or t < bad[k])] for k, seed in enumerate(seeds)}


def checkpoint_interval(every_s: float | None = None) -> float:
    """``every_s``, else ``$EARLYLIN_CHECKPOINT_EVERY_S``, else :data:`CHECKPOINT_EVERY_S` (seconds > 0)."""
    if every_s is None:
        raw = os.environ.get(CHECKPOINT_ENV)
        try:
            every_s = float(raw) if raw else CHECKPOINT_EVERY_S
        except ValueError:
            raise ConfigError(f"${CHECKPOINT_ENV}={raw!r}: must be a number of seconds > 0") from None
    if not (math.isfinite(every_s) and every_s > 0):
        raise ConfigError(f"{arg('checkpoint_every_s', every_s)}: must be a finite number of seconds > 0")
    return float(every_s)


def _stack_rows(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Recorded rows as one (rows, …) CPU tensor per metric: one tensor each to save, not one per row."""
    return {k: torch.stack([row[k].detach() for row in rows]).cpu() for k in (rows[0] if rows else {})}


def _unstack_rows(stacked: dict[str, torch.Tensor], device: torch.device) -> list[dict[str, torch.Tensor]]:
    """The inverse of :func:`_stack_rows`, on ``device``."""
    n = len(next(iter(stacked.values()))) if stacked else 0
    return [{k: v[i].to(device) for k, v in stacked.items()} for i in range(n)]


class Checkpoint:
    """Periodic snapshots of one :func:`run_gd` loop in the file ``path``.

    ``rows`` is the caller's list of recorded rows (one dict of tensors per recorded step): it is
    saved with each snapshot and, on resume, refilled in place. ``resumed_from`` is the step a run
    resumed at (None: from step 0) and ``elapsed_s`` the training time spent before it.
    """

    def __init__(self, path: str | os.PathLike[str], every_s: float | None = None,
                 rows: list[dict[str, torch.Tensor]] | None = None) -> None:
        self.path = Path(path)
        self.every_s = checkpoint_interval(every_s)
        self.rows: list[dict[str, torch.Tensor]] = [] if rows is None else rows
        self.resumed_from: int | None = None
        self.elapsed_s = 0.0
        self.saves = 0

    def save(self, step: int, params: list[torch.Tensor], watch: dict[str, torch.Tensor], elapsed_s: float,
             optim: dict[str, Any] | None = None) -> None:
        """Write the state at the start of ``step`` (θ_step, the optimizer's state, rows of the steps before)
        atomically."""
        state = {
            "optim": optim or {},
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "params": [p.detach().cpu().clone() for p in params],
            "watch": {k: v.cpu().clone() for k, v in watch.items()},
            "rows": _stack_rows(self.rows),
            "elapsed_s": elapsed_s,
        }
        buf = io.BytesIO()
        torch.save(state, buf)
        write_bytes_atomic(self.path, buf.getvalue())
        self.saves += 1

    def load(self, params: list[torch.Tensor], steps: int) -> dict[str, Any] | None:
        """The saved state if it fits these ``params`` and ``steps``, else None (an unusable file is
        named in a warning and ignored)."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            saved = state["params"]
            fits = (state.get("format") == CHECKPOINT_FORMAT and 0 < int(state["step"]) <= steps
                    and len(saved) == len(params)
                    and all(s.shape == p.shape and s.dtype == p.dtype for s, p in zip(saved, params, strict=True)))
        except Exception as exc:  # truncated or foreign files raise many types
            warn(f"ignoring the unreadable checkpoint {self.path} ({type(exc).__name__}); starting from step 0")
            return None
        if not fits:
            warn(f"ignoring the checkpoint {self.path}: it does not fit this run; starting from step 0")
            return None
        return state

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


def run_gd(
    step_fn: StepFn,
    params: list[torch.Tensor],
    lrs: list[float],
    steps: int,
    record_steps: Sequence[int],
    on_record: RecordFn,
    seeds: Sequence[int],
    progress: bool = False,
    checkpoint: Checkpoint | None = None,
    optimizer: Optimizer | None = None,
    batches: Batches | None = None,
) -> LossWatch:
    """Run ``steps`` updates (in place; default GD, p ← p − η ∇L) and record at ``record_steps``.

    ``progress``: a progress bar on stderr (when it is a terminal). ``checkpoint``: resume from its
    file if it holds a state of this run, and save one every ``checkpoint.every_s`` seconds. ``optimizer``: the
    update rule (:class:`earlylin.training.optim.Optimizer`; None: GD with ``lrs``). ``batches``: the mini-batch
    sequence (None or a full batch: ``step_fn(params)`` on all points).

    Returns:
        The :class:`LossWatch` of the run: ``diverged(seeds)`` gives {seed: step} for seeds whose loss became
        NaN/inf or exceeded BLOWUP_FACTOR × its initial value (their later records hold NaN; the other seeds are
        unaffected, independent batch rows), ``spikes(seeds)`` the loss spikes of every seed.

    Raises:
        DivergenceError: every seed diverged (names the step, the seeds and the learning rate).
    """
    to_record = set(record_steps)
    minibatch = batches is not None and not batches.full
    watch = LossWatch(steps, spikes=not minibatch)
    opt = optimizer if optimizer is not None else Optimizer(OptimSpec("gd"), params, lrs)
    start_step = 0
    if checkpoint is not None and (state := checkpoint.load(params, steps)) is not None:
        device = params[0].device
        with torch.no_grad():
            for p, saved in zip(params, state["params"], strict=True):
                p.copy_(saved)
        watch.state = {k: v.to(device) for k, v in state["watch"].items()}
        if state.get("optim"):
            opt.load(state["optim"], device)
        checkpoint.rows[:] = _unstack_rows(state["rows"], device)
        start_step = checkpoint.resumed_from = int(state["step"])
        checkpoint.elapsed_s = float(state["elapsed_s"])
        say(f"resuming from the checkpoint at step {start_step} of {steps} ({checkpoint.path})", progress)
    started = time.perf_counter()
    last_save = time.monotonic()
    with bar(total=steps, initial=start_step, desc="GD steps", unit="step", enabled=progress) as shown:
        for t in range(start_step, steps + 1):
            if checkpoint is not None and t > start_step and time.monotonic() - last_save >= checkpoint.every_s:
                checkpoint.save(t, params, watch.state, checkpoint.elapsed_s + time.perf_counter() - started,
                                opt.state())
                last_save = time.monotonic()
            loss, f_train, grads = step_fn(params, batches.indices(t)) if minibatch else step_fn(params)
            if t == 0 and not bool(torch.isfinite(loss).all()):  # before any update: not a learning-rate problem
                bad = [s for s, ok in zip(seeds, torch.isfinite(loss).tolist(), strict=True) if not ok]
                raise ConfigError(f"the loss at step 0, before any update, is NaN or inf for seed(s) {bad}: the "
                                  "network's initial outputs or the targets are not finite")
            watch.update(t, loss)
            if t in to_record:
                on_record(t, f_train, params)
            if (t in to_record or t % CHECK_EVERY == 0 or t == steps) and watch.all_diverged():
                worst = watch.diverged(seeds)
                raise DivergenceError(
                    f"gradient descent diverged for every seed (first bad step per seed: {worst}) at "
                    f"learning rate {lrs}: the loss became NaN/inf or grew {BLOWUP_FACTOR:g}× past its "
                    f"initial value. Use a smaller {arg('lr')}."
                )
            if t == steps:
                break
            opt.step(params, grads)
            shown.update(1)
    return watch
