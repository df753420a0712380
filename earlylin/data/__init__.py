"""Data generators: synthetic Gaussian inputs and targets (:mod:`earlylin.data.synthetic`)."""
