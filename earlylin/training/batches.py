"""The mini-batch sequence of a run (docs/theory.md §3.3): the same for the network, its linear model and every
seed of a batch, fixed by one seed, and a function of the step alone (so a resumed run draws what it would have).

Epoch e is a permutation π_e of the n training points drawn from ``stream(batch_seed, STREAM_BATCHES, e)``
(:mod:`earlylin.runtime.rng`); step t takes the points π_e[j·b : (j+1)·b] with e, j = divmod(t, ⌊n/b⌋) — each epoch
drops the last n mod b points. With b = n every step takes all points in the data's order: SGD is then GD,
bit for bit.
"""

from __future__ import annotations

import torch

from earlylin.runtime.rng import STREAM_BATCHES, stream


class Batches:
    """Which training points step t uses: ``indices(t)``, or None for all of them in order."""

    def __init__(self, n: int, batch_size: int | None, batch_seed: int = 0) -> None:
        self.n = n
        self.b = n if batch_size is None else int(batch_size)
        self.seed = batch_seed
        self.per_epoch = n // self.b
        self._epoch: tuple[int, torch.Tensor] | None = None

    @property
    def full(self) -> bool:
        return self.b == self.n

    def permutation(self, epoch: int) -> torch.Tensor:
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, torch.from_numpy(stream(self.seed, STREAM_BATCHES, epoch).permutation(self.n)))
        return self._epoch[1]

    def indices(self, t: int) -> torch.Tensor | None:
        if self.full:
            return None
        e, j = divmod(t, self.per_epoch)
        return self.permutation(e)[j * self.b : (j + 1) * self.b]
