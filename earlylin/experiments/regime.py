"""The linear regime measured from a run itself (docs/theory.md §4.5): pure numpy on recorded curves.

A theorem gives an early window T = c·d·log(d)/η only for the two-layer net and the 1D CNN
(:data:`earlylin.config.THEOREM_FAMILIES`). Every run, with or without one, also gets what its own curves
say, from the relative test distance r(t) = MSE(net, lin)/mean(f_net²) at the recorded steps:

- the **initial mismatch**: r at the first recorded step after 0 — the tangent kernel's mismatch at
  initialisation (the network's output is 0 at step 0 under symmetric initialisation, so r is undefined
  there), not drift;
- the **linear regime**: the steps up to the first recorded step t > 0 with r(t) above the threshold
  max(ε, escape_factor × initial mismatch) (ε: ``regime_eps``, default :data:`earlylin.config.REGIME_EPS`);
  None if r stays below it over the whole run. The second term keeps a distance that is only the kernel's
  mismatch at initialisation (a narrow deep net can start above ε) from counting as departure;
- the **observed escape**: the first recorded step at which r exceeds ``escape_factor`` × its lowest value
  over the recorded steps before it (after 0), and exceeds :data:`ESCAPE_FLOOR` — the network leaving its
  linear model, found wherever it happens, before or after T; None if it never does.

NaN values (undefined r, diverged seeds) never count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ESCAPE_FLOOR = 1e-3  # a rise of r counts as escape only above this (a relative RMS gap of ≈ 3 %): not rounding


def _after_zero(steps: Sequence[int], r: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    s, v = np.asarray(steps, dtype=np.int64), np.asarray(r, dtype=float)
    keep = s > 0
    return s[keep], v[keep]


def initial_mismatch(steps: Sequence[int], r: Sequence[float]) -> tuple[int | None, float | None]:
    """(step, r) at the first recorded step after 0 where r is defined; (None, None) if there is none."""
    s, v = _after_zero(steps, r)
    ok = np.isfinite(v)
    if not ok.any():
        return None, None
    i = int(np.argmax(ok))
    return int(s[i]), float(v[i])


def regime_threshold(initial: float | None, eps: float, factor: float) -> float:
    """max(ε, factor × initial mismatch): the relative distance above which the linear regime has ended."""
    return eps if initial is None else max(eps, factor * initial)


def regime_end(steps: Sequence[int], r: Sequence[float], eps: float) -> int | None:
    """The first recorded step t > 0 with r(t) > ``eps`` (a threshold: :func:`regime_threshold`), or None."""
    s, v = _after_zero(steps, r)
    over = np.isfinite(v) & (v > eps)
    return int(s[np.argmax(over)]) if over.any() else None


def linear_regime(steps: Sequence[int], r: Sequence[float], eps: float, factor: float
                  ) -> tuple[float | None, float, int | None]:
    """(initial mismatch, threshold, end of the linear regime) of one curve r: :func:`initial_mismatch`,
    :func:`regime_threshold` and :func:`regime_end` in the one order every caller uses (the run's summary, the
    paper checks' measured window)."""
    mismatch = initial_mismatch(steps, r)[1]
    threshold = regime_threshold(mismatch, eps, factor)
    return mismatch, threshold, regime_end(steps, r, threshold)


def escape_from_minimum(steps: Sequence[int], r: Sequence[float], factor: float) -> int | None:
    """The first recorded step t > 0 with r(t) > factor × min of r over the recorded steps in (0, t) and
    r(t) > ESCAPE_FLOOR, or None."""
    s, v = _after_zero(steps, r)
    low = math.inf
    for t, value in zip(s.tolist(), v.tolist(), strict=True):
        if not math.isfinite(value):
            continue
        if value > factor * low and value > ESCAPE_FLOOR:
            return int(t)
        low = min(low, value)
    return None
