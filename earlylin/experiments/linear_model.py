"""A run's linear model as a function of new inputs: ``Result.linear_model.predict(x)`` (docs/theory.md §3).

A run record holds, per seed, the linear model's coefficients β_t at every recorded step (``linear_coef``) and
what its features need: the constants of the derived model (two-layer net, 1D CNN: ``constants``, the layers,
the filter size; the CIFAR nets: the derived coefficients (L1)/(L2) in ``linear_model.derived``) or the affine
model fitted to each seed's own tangent kernel (a user's network, a CIFAR run with ``linear="fitted"``:
``fitted``).
:class:`LinearModel` rebuilds the features ψ(x) of new inputs from that plain data alone — a loaded
``record.json`` predicts as the run did — and returns f^lin_t(x) = β_tᵀψ(x).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from earlylin.activations import GaussianConstants
from earlylin.errors import ConfigError, arg
from earlylin.linear.cnn1d import cnn1d_features
from earlylin.linear.deep import features_from_summary, pixel_weights
from earlylin.linear.features import features
from earlylin.linear.fitted import fitted_features

FAMILIES = ("two_layer", "cnn1d", "network", "cifar")


class LinearModel:
    """f^lin of one run record, evaluated on new inputs.

    Example::

        import numpy as np, earlylin
        r = earlylin.run(earlylin.TwoLayerConfig(d=10, n=200, n_test=100, width=64, steps=30))
        f = r.linear_model.predict(np.random.default_rng(0).standard_normal((7, 10)))   # (seeds, 7), last step
    """

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.family = record["config"].get("family", "two_layer")
        if self.family not in FAMILIES:
            raise ConfigError(f"predict: the {self.family} family's linear model is not rebuilt from its record; "
                              f"available for {', '.join(FAMILIES)}")
        first = next(iter(record["per_seed"].values()))
        if "linear_coef" not in first:
            raise ConfigError("predict: this record has no linear_coef (written by an earlier earlylin); rerun it")

    def predict(self, x: np.ndarray, step: int | None = None) -> np.ndarray:
        """f^lin_t(x) for every seed, shape (seeds, n), or (seeds, n, K) for K outputs: at recorded ``step``
        (default: the last).

        Args:
            x: inputs of shape (n, d), d the run's input dimension (a user's images (n, C, H, W) too); for
                CIFAR, inputs as the run saw them (pooled to 3×8×8, standardised and, with
                ``cifar_norm="sphere"``, on the sphere: :class:`earlylin.data.cifar.CatHorse`), of shape (n, 192)
                or (n, 3, 8, 8).
            step: a recorded step (``Result.steps``); None for the last.
        """
        cfg = self.record["config"]
        X = np.asarray(x, dtype=np.float64)
        if X.ndim > 2 and (self.family == "network" or (self.family == "cifar" and X.shape[1:] == (3, 8, 8))):
            X = X.reshape(len(X), -1)  # images: the fitted model's features are those of the flattened pixels
        if X.ndim != 2 or X.shape[1] != cfg["d"]:
            shapes = "(n, 192) or (n, 3, 8, 8)" if self.family == "cifar" else f"(n, d = {cfg['d']})"
            raise ConfigError(f"predict: x of shape {X.shape}; need {shapes}")
        steps = next(iter(self.record["per_seed"].values()))["steps"]
        t = steps[-1] if step is None else step
        if t not in steps:
            raise ConfigError(f"{arg('step', t)}: not a recorded step; recorded: {steps[0]} … {steps[-1]} "
                              "(Result.steps)")
        i = steps.index(t)
        out = [self._psi(torch.from_numpy(X), m) @ np.asarray(m["linear_coef"][i], dtype=np.float64)
               for m in self.record["per_seed"].values()]
        return np.stack(out)

    def _psi(self, X: torch.Tensor, seed_metrics: dict[str, Any]) -> np.ndarray:
        cfg = self.record["config"]
        if self.family == "cifar":
            return self._psi_cifar(X, seed_metrics)
        if self.family == "network":
            return fitted_features(X, seed_metrics["fitted"], np.ones(X.shape[1]))[0].numpy()
        c = self.record["constants"]
        consts = GaussianConstants(**{f.name: c[f.name] for f in dataclasses.fields(GaussianConstants)})
        if self.family == "cnn1d":
            return cnn1d_features(X, consts, c["nu"], cfg["layers"], cfg["filter_size"], nu2=c["nu2"]).numpy()
        return features(X, consts, c["nu"], cfg["layers"], nu2=c["nu2"]).numpy()

    def _psi_cifar(self, X: torch.Tensor, seed_metrics: dict[str, Any]) -> np.ndarray:
        cfg, lm = self.record["config"], self.record["linear_model"]
        derived = lm["derived"]
        if lm.get("used", "derived") == "fitted":
            if "fitted" not in seed_metrics:
                raise ConfigError("predict: this CIFAR record has no per-seed fitted model (written by an earlier "
                                  "earlylin); rerun it")
            weights = pixel_weights(cfg["arch"], X.shape[1], derived.get("m"))
            return fitted_features(X, seed_metrics["fitted"], weights)[0].numpy()
        return features_from_summary(cfg["arch"], derived)(X.reshape(len(X), 3, 8, 8)).numpy()
