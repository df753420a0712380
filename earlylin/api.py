"""The public Python API: run a built-in setting or your own pieces, get a :class:`Result`.

    import earlylin
    r = earlylin.run(earlylin.TwoLayerConfig(d=20, n=500, n_test=200, steps=200))
    r.summary["max_test_mse_early"], r.curve("test_mse"), r.table()

Bring your own pieces (docs/theory.md §3 for the linear models they are compared with):

- ``target=f``: labels y = f(x) on the synthetic inputs, f: (n, d) float64 array → (n,);
- ``data=earlylin.Arrays(x_train, y_train, x_test, y_test)``: your own inputs and labels;
- ``activation=φ``: a callable on torch tensors (φ′ by autograd, Gaussian constants by quadrature);
- ``earlylin.run_network(module, data)``: a torch module (or ``fn(params, x)`` with ``init=``), trained
  as a doubled copy with f₀ ≡ 0 against the affine model fitted to its own empirical NTK.

Results are cached only when ``cache_dir`` is given; the key covers the config, the seed, the
package's code fingerprint and the fingerprints of your data and callables (a callable that cannot
be fingerprinted is run uncached, and ``summary["not_cached"]`` says why).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from earlylin.config import CifarConfig, NetworkConfig, TwoLayerConfig
from earlylin.data.arrays import Arrays
from earlylin.errors import ConfigError
from earlylin.experiments import experiment_for, pipeline
from earlylin.experiments.network import Network
from earlylin.experiments.result import Result
from earlylin.runtime.records import Cache


def run(
    config: Any, *, target: Callable | None = None, data: Arrays | None = None, activation: Any = None,
    cache_dir: str | os.PathLike[str] | None = None, progress: bool = False, max_gb: float | None = None,
) -> Result:
    """Run a config (``TwoLayerConfig``, ``Cnn1dConfig``, ``CifarConfig``) or an experiment object.

    ``target``, ``data`` and ``activation`` replace the config's built-in pieces (two-layer net and
    1D CNN). ``max_gb``: the memory limit in GiB (default: the memory available; a run estimated past it
    is refused, :mod:`earlylin.experiments.memory`). Raises :class:`earlylin.errors.ConfigError` for bad input,
    before any work."""
    pieces = {k: v for k, v in (("target", target), ("data", data), ("activation", activation)) if v is not None}
    _check_config(config, pieces)
    return pipeline.run(experiment_for(config, **pieces), Cache(cache_dir), progress, max_gb=max_gb)


def _check_config(config: Any, pieces: dict[str, Any]) -> None:
    """Refuse what :func:`run` cannot take, naming what it takes instead."""
    given = ", ".join(f"{k}=" for k in pieces)
    if hasattr(config, "prepare"):  # an experiment object already holds its pieces
        if pieces:
            raise ConfigError(f"{given} with an experiment object ({type(config).__name__}): it holds its own pieces; "
                              "pass them to its constructor, or give run() a config")
        return
    if isinstance(config, NetworkConfig):
        raise ConfigError("a NetworkConfig runs a network of your own: call earlylin.run_network(module, data, config)")
    if not isinstance(config, TwoLayerConfig | CifarConfig):
        raise ConfigError(f"config: a {type(config).__name__}; give a TwoLayerConfig, Cnn1dConfig or CifarConfig "
                          "(e.g. earlylin.TwoLayerConfig(**fields)), or an experiment object")
    if pieces and isinstance(config, CifarConfig):
        raise ConfigError(f"{given} with a CifarConfig: user pieces replace those of the two-layer net and the 1D CNN; "
                          "the CIFAR experiment takes none")


def run_network(
    network: torch.nn.Module | Callable, data: Arrays, config: NetworkConfig | None = None, *,
    init: Callable[[int], Sequence[Any]] | None = None, cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Result:
    """Train a user's network (doubled copy, f₀ ≡ 0) against its fitted affine model on ``data``."""
    return pipeline.run(Network(network, data, config, init=init), Cache(cache_dir), progress)
