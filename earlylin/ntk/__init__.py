"""Neural tangent kernels (docs/theory.md §5): the exact infinite-width NNGP/NTK recursions of deep nets
(:mod:`earlylin.ntk.exact`), their linearisation and features (:mod:`earlylin.ntk.linearise`), and the
empirical kernel of a given network (:mod:`earlylin.ntk.empirical`)."""
