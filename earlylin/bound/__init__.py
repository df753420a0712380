"""The kernel bound of docs/theory.md §4, measured matrix-free: the operators (:mod:`earlylin.bound.operator`),
their spectral norms (:mod:`earlylin.bound.lanczos`), the sweep configuration (:mod:`earlylin.bound.config`)
and the measurement with its record (:mod:`earlylin.bound.measure`)."""
