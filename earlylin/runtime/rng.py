"""The random streams of one seed: every draw of a run comes from ``default_rng([seed, stream, ...])``.

Streams are independent, so a seed gives the same teacher, inputs and initial weights whatever the
device, dtype or the other seeds of a batch (docs/theory.md §1, §5):

- ``STREAM_TEACHER`` the teacher network of the synthetic targets;
- ``STREAM_TRAIN`` / ``STREAM_TEST`` the synthetic train and test inputs;
- ``STREAM_INIT`` the network's initial weights (two-layer net, 1D-CNN filters, deep nets with
  the sub-stream 1, user networks with the sub-stream 2);
- ``STREAM_CNN1D_SIGNS`` the 1D CNN's per-position readout signs;
- ``STREAM_BATCHES`` the mini-batch order of SGD (seeded by the run's ``batch_seed``, one sub-stream per epoch).
"""

from __future__ import annotations

import numpy as np

STREAM_TEACHER, STREAM_TRAIN, STREAM_TEST, STREAM_INIT = 0, 1, 2, 3
STREAM_CNN1D_SIGNS = 7919
STREAM_BATCHES = 11
SUBSTREAM_DEEP, SUBSTREAM_NETWORK = 1, 2


def stream(seed: int, *path: int) -> np.random.Generator:
    """The generator of ``seed``'s stream ``path`` (e.g. ``stream(s, STREAM_INIT)``)."""
    return np.random.default_rng([seed, *path])
