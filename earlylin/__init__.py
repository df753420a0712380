"""earlylin: check, by experiment, that early gradient descent on a neural network follows a linear model.

Hu, Xiao, Adlam & Pennington, *The Surprising Simplicity of the Early-Time Learning Dynamics of
Neural Networks* (NeurIPS 2020, arXiv:2006.14599); the theory as implemented is in docs/theory.md.

Python API (:mod:`earlylin.api`)::

    import earlylin
    result = earlylin.run(earlylin.TwoLayerConfig(d=20, n=500, n_test=200, steps=200))
    result.summary["max_test_mse_early"]

- :func:`run` a built-in config, optionally with your ``target=``, ``data=`` (:class:`Arrays`) or
  ``activation=``; :func:`run_network` a torch module of your own; both return a :class:`Result`.
- Configs: :class:`TwoLayerConfig`, :class:`Cnn1dConfig`, :class:`CifarConfig`, :class:`NetworkConfig`.
- :func:`get_activation` and :func:`gaussian_constants`: φ, φ′ and ζ, ν, ϑ₀, ϑ₁, ϑ₂.
- :func:`run_sweep` ``(grid, ...)``: a grid of configs, locally or on a Ray cluster (:mod:`earlylin.sweep`).

Commands: ``python -m earlylin verify|sweep|figures|kernel-bound|checks`` (:mod:`earlylin.cli.main`); the
forms ``python -m earlylin.verify``, ``.sweep``, ``.figures``, ``.kernel`` and ``python -m paper_checks`` run
the same commands.
"""

from earlylin.activations import gaussian_constants, get_activation
from earlylin.api import run, run_network
from earlylin.config import CifarConfig, Cnn1dConfig, NetworkConfig, TwoLayerConfig
from earlylin.data.arrays import Arrays
from earlylin.errors import ConfigError, DataError, DivergenceError, EarlylinError
from earlylin.experiments import Cifar, Cnn1d, Network, TwoLayer
from earlylin.experiments.result import Result
from earlylin.version import __version__

__all__ = [
    "Arrays", "Cifar", "CifarConfig", "Cnn1d", "Cnn1dConfig", "ConfigError", "DataError", "DivergenceError",
    "EarlylinError", "Network", "NetworkConfig", "Result", "TwoLayer", "TwoLayerConfig", "__version__",
    "gaussian_constants", "get_activation", "run", "run_network", "run_sweep",
]


def __getattr__(name: str) -> object:
    """``earlylin.run_sweep`` (:func:`earlylin.sweep.sweep`) is loaded on first use (PEP 562): ``import
    earlylin`` does not import the sweep machinery."""
    if name == "run_sweep":
        from earlylin.sweep import sweep

        return sweep
    raise AttributeError(f"module 'earlylin' has no attribute {name!r}")
