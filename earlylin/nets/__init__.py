"""The networks, batched over seeds with a leading axis K: the two-layer net (docs/theory.md §1),
the 1D CNN and the deep FC/CNN nets of Fig 3 (§5), the θ-linearised network (§4.3) and the fused GPU step."""
