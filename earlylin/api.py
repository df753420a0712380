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
    keep_outputs: bool = False,
) -> Result:
    """Train the network of ``config`` and its predicted linear model side by side (docs/theory.md §3–§4).

    Every seed of the config trains as one batch; the linear model's trajectory is in closed form; the
    comparison (MSE between outputs, losses, the V_lin split, the escape step) is recorded at log-spaced
    steps.

    Args:
        config: a :class:`TwoLayerConfig`, :class:`Cnn1dConfig` or :class:`CifarConfig`, or an experiment
            object (:class:`earlylin.TwoLayer`, ...) that holds its own pieces.
        target: your target function (numpy (n, d) → (n,)) on the synthetic inputs, replacing the teacher.
        data: your arrays (:class:`Arrays`); d, n and n_test then come from them.
        activation: your φ, a name or a callable on torch tensors (φ′ by autograd, the constants by
            quadrature). ``target``, ``data`` and ``activation`` apply to the two-layer net and the 1D CNN.
        cache_dir: where results are cached per (config, seed), keyed by the code's and the inputs'
            fingerprints (None: no cache).
        progress: progress on stderr.
        max_gb: the memory limit in GiB (default: the memory available now); a run estimated past it is
            refused (:mod:`earlylin.experiments.memory`).
        keep_outputs: also keep the full train and test outputs of the network and of its linear model(s) at
            every recorded step (``Result.outputs()``; ``Result.save`` writes them to ``outputs.npz`` beside
            ``record.json``, record key ``outputs_file``). Refused before any work when seeds × recorded steps ×
            points × 8 bytes per array would not fit in memory. Such a run reads no cache entry (entries hold
            no outputs): every seed trains.

    Returns:
        The :class:`Result`: ``summary``, per-seed curves, a tidy table, ``save``, ``outputs()``.

    Raises:
        ConfigError: bad input, before any work (values named as ``lr=``); a learning rate past the
            linear model's stability bound; a run that does not fit in memory.
        DivergenceError: every seed diverged.

    Example::

        import earlylin
        result = earlylin.run(earlylin.TwoLayerConfig(d=10, n=200, n_test=100, width=64, steps=50))
        print(result.summary["max_rel_test_mse_early"])
        kept = earlylin.run(earlylin.TwoLayerConfig(d=10, n=200, n_test=100, width=64, steps=50), keep_outputs=True)
        kept.outputs()["test_net"].shape  # (seeds, recorded steps, n_test)
    """
    pieces = {k: v for k, v in (("target", target), ("data", data), ("activation", activation)) if v is not None}
    _check_config(config, pieces)
    return pipeline.run(experiment_for(config, **pieces), Cache(cache_dir), progress, max_gb=max_gb,
                        keep_outputs=keep_outputs)


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
    progress: bool = False, max_gb: float | None = None, keep_outputs: bool = False,
) -> Result:
    """Train your own network against the affine model fitted to its own empirical tangent kernel at
    initialisation (docs/theory.md §4): the network runs as a doubled copy, so that f₀ ≡ 0.

    Args:
        network: a ``torch.nn.Module`` mapping (n, d) to (n,) or (n, 1), or a function ``fn(params, x)``
            (then ``init`` is needed).
        data: the train and test arrays (:class:`Arrays`).
        config: learning rate, steps, seeds, the points the affine model is fitted on
            (:class:`NetworkConfig`; default: its defaults).
        init: a function of the seed returning the parameters (in ``named_parameters()`` order). Without
            it seed s re-initialises the module with ``reset_parameters()`` under a generator seeded from s;
            a module that has none and several seeds are refused.
        cache_dir: the result cache (None: none); the network's source and parameters are fingerprinted.
        progress: progress on stderr.
        max_gb: the memory limit in GiB (default: the memory available now).
        keep_outputs: also keep the full train and test outputs of the network and of its fitted affine model
            at every recorded step (``Result.outputs()``, as for :func:`run`).

    Returns:
        The :class:`Result`.

    Raises:
        ConfigError: bad input, found before training: the wrong input size or output shape, NaN at
            initialisation, a learning rate past the stability bound.

    Example::

        import numpy as np, torch, earlylin
        x = np.random.default_rng(0).standard_normal((300, 8))
        data = earlylin.Arrays(x[:200], np.sign(x[:200, 0]), x[200:], np.sign(x[200:, 0]))
        net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
        own = earlylin.run_network(net, data, earlylin.NetworkConfig(lr=0.1, steps=30, n_fit=64))
        print(own.summary["max_rel_test_mse_early"])
    """
    return pipeline.run(Network(network, data, config, init=init), Cache(cache_dir), progress, max_gb=max_gb,
                        keep_outputs=keep_outputs)
