"""The networks, batched over seeds with a leading axis K: the two-layer net (docs/theory.md §1),
the 1D CNN and the deep FC/CNN nets of Fig 3 (§5), the θ-linearised network (§4.3) and the fused GPU step."""

from __future__ import annotations

import torch


def seed_batched(X: torch.Tensor, y: torch.Tensor) -> tuple[bool, torch.Tensor, torch.Tensor]:
    """(whether X already had a seed axis, X as (K, n, d), y as (K, n)), both contiguous: the steps take one
    network's batch (n, d) or K seeds' (K, n, d)."""
    batched = X.dim() == 3
    return batched, (X if batched else X.unsqueeze(0)).contiguous(), (y if batched else y.unsqueeze(0)).contiguous()

