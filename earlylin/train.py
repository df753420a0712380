"""Batched full-batch gradient descent with a log-spaced recording schedule and divergence checks.

The trainer knows nothing about the model: ``step_fn(params)`` returns the per-seed loss (K,), the
training outputs (K, n) and one gradient per parameter, and every tensor has the seed axis first, so
K seeds advance as one computation. ``on_record(t, f_train, params)`` runs at each recorded step.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from earlylin.errors import DivergenceError

StepFn = Callable[[list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]]
RecordFn = Callable[[int, torch.Tensor, list[torch.Tensor]], None]

# A loss this many times its initial value (or above 1e6 when the initial loss is 0) is divergence.
BLOWUP_FACTOR = 1e4
CHECK_EVERY = 50


def record_schedule(steps: int, n_log: int = 60, extra: Sequence[int] = ()) -> list[int]:
    """Steps 0 and ``steps``, ``n_log`` log-spaced steps in between, and any ``extra`` steps ≤ steps."""
    grid = np.unique(np.round(np.logspace(0, math.log10(max(steps, 1)), n_log)).astype(int))
    chosen = {0, steps, *grid.tolist(), *(e for e in extra if 0 <= e <= steps)}
    return sorted(s for s in chosen if s <= steps)


def diverged_seeds(first_bad: torch.Tensor, seeds: Sequence[int]) -> dict[int, int]:
    """{seed: first step with a non-finite or exploded loss} for the seeds that diverged."""
    bad = first_bad.cpu().tolist()
    return {seed: int(step) for seed, step in zip(seeds, bad, strict=True) if step >= 0}


def run_gd(
    step_fn: StepFn,
    params: list[torch.Tensor],
    lrs: list[float],
    steps: int,
    record_steps: Sequence[int],
    on_record: RecordFn,
    seeds: Sequence[int],
    progress: bool = False,
) -> dict[int, int]:
    """Run ``steps`` GD updates p ← p − η ∇L (in place) and record at ``record_steps``.

    Returns:
        {seed: step} for seeds whose loss became NaN/inf or exceeded BLOWUP_FACTOR × its initial
        value; their later records hold NaN. The other seeds are unaffected (independent batch rows).

    Raises:
        DivergenceError: every seed diverged (names the step, the seeds and the learning rate).
    """
    to_record = set(record_steps)
    first_bad: torch.Tensor | None = None
    limit: torch.Tensor | None = None
    start = time.perf_counter()
    next_report = 0.1
    for t in range(steps + 1):
        loss, f_train, grads = step_fn(params)
        if first_bad is None:
            first_bad = torch.full_like(loss, -1, dtype=torch.long)
            limit = torch.where(loss > 0, loss * BLOWUP_FACTOR, torch.full_like(loss, 1e6))
        bad = ~torch.isfinite(loss) | (loss > limit)
        first_bad = torch.where((first_bad < 0) & bad, torch.full_like(first_bad, t), first_bad)
        if t in to_record:
            on_record(t, f_train, params)
        if t in to_record or t % CHECK_EVERY == 0 or t == steps:
            if bool((first_bad >= 0).all()):
                worst = diverged_seeds(first_bad, seeds)
                raise DivergenceError(
                    f"gradient descent diverged for every seed (first bad step per seed: {worst}) at "
                    f"learning rate {lrs}: the loss became NaN/inf or grew {BLOWUP_FACTOR:g}× past its "
                    "initial value. Use a smaller --lr."
                )
        if t == steps:
            break
        with torch.no_grad():
            for p, g, lr in zip(params, grads, lrs, strict=True):
                if g is not None and lr != 0.0:
                    p.sub_(g, alpha=lr)
        if progress and (t + 1) / steps >= next_report:
            elapsed = time.perf_counter() - start
            eta = elapsed * (steps - t - 1) / (t + 1)
            print(f"  step {t + 1}/{steps}  {elapsed:.1f}s elapsed, ~{eta:.1f}s left", file=sys.stderr)
            next_report += 0.1
    assert first_bad is not None
    return diverged_seeds(first_bad, seeds)
