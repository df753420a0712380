"""The inputs of the synthetic-data families (two-layer net, 1D CNN), batched over seeds.

Three sources, one shape: every seed's synthetic data (:func:`earlylin.data.synthetic.make_dataset`,
docs/theory.md §1, §5), the same inputs with a user's target function, or a user's own arrays
(:class:`earlylin.data.arrays.Arrays`, the same for every seed: seeds then differ by their
initialisation only). Everything is float64 here; the network casts to its own dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from earlylin.activations import Activation, get_activation
from earlylin.config import TwoLayerConfig
from earlylin.data.arrays import Arrays
from earlylin.data.synthetic import TargetFn, make_dataset, tr_sigma2_over_d
from earlylin.errors import CUSTOM, ConfigError, arg
from earlylin.runtime.fingerprint import Unhashable, callable_fingerprint


@dataclass
class InputBatch:
    """X (K, n, d), Xt (K, n_test, d), y (K, n), yt (K, n_test) in float64 on the device, and
    Tr(Σ²)/d of the input distribution (ν, docs/theory.md §2)."""

    X: torch.Tensor
    Xt: torch.Tensor
    y: torch.Tensor
    yt: torch.Tensor
    tr_sigma2_over_d: float


def _stack(arrays: list[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).to(device=device, dtype=torch.float64)


class SyntheticInputs:
    """The data source of a two-layer or 1D-CNN run: built-in, user target, or user arrays."""

    def __init__(self, cfg: TwoLayerConfig, target: TargetFn | None = None, data: Arrays | None = None) -> None:
        if target is not None and data is not None:
            raise ConfigError("give a target function or data arrays, not both")
        if cfg.target.startswith(CUSTOM) and target is None and data is None:
            raise ConfigError(f"{arg('target', cfg.target)} names a user target: pass the function as target=")
        self.target, self.data = target, data

    @staticmethod
    def configure(cfg: TwoLayerConfig, target: TargetFn | None, data: Arrays | None) -> TwoLayerConfig:
        """The config that records which pieces are the user's (their names, and d, n, n_test of arrays)."""
        if data is not None:
            if not isinstance(data, Arrays):
                raise ConfigError(f"data: a {type(data).__name__}; give earlylin.Arrays(x_train, y_train, x_test, "
                                  "y_test)")
            if data.images:
                raise ConfigError(f"data: inputs of shape {data.x_train.shape[1:]}; the built-in nets take inputs "
                                  "(n, d) (targets (n,) or (n, K)); image inputs: earlylin.run_network")
            return data.sized(cfg).with_(target=f"{CUSTOM}arrays", inputs=f"{CUSTOM}arrays",
                                         sigma=f"{CUSTOM}empirical")
        if target is not None:
            return cfg.with_(target=f"{CUSTOM}{getattr(target, '__name__', 'target')}")
        return cfg

    def identity(self) -> dict[str, Any] | str:
        if self.data is not None:
            return {"data": self.data.fingerprint}
        if self.target is not None:
            try:
                return {"target_fn": callable_fingerprint(self.target)}
            except Unhashable as err:
                return f"the target function cannot be fingerprinted ({err})"
        return {}

    def batch(self, cfg: TwoLayerConfig, seeds: list[int], device: torch.device) -> InputBatch:
        if self.data is not None:
            a, K = self.data, len(seeds)
            return InputBatch(
                *(_stack([arr] * K, device) for arr in (a.x_train, a.x_test, a.y_train, a.y_test)),
                tr_sigma2_over_d=a.tr_sigma2_over_d(),
            )
        sets = [make_dataset(s, cfg.d, cfg.n, cfg.n_test, cfg.sigma, cfg.target, cfg.teacher_width, cfg.inputs,
                             target_fn=self.target) for s in seeds]
        return InputBatch(
            X=_stack([b.x_train for b in sets], device),
            Xt=_stack([b.x_test for b in sets], device),
            y=_stack([b.y_train for b in sets], device),
            yt=_stack([b.y_test for b in sets], device),
            tr_sigma2_over_d=tr_sigma2_over_d(sets[0].spectrum),
        )


ActivationLike = str | Activation | Any


def resolve_activation(cfg_name: str, activation: ActivationLike | None) -> tuple[Activation, dict[str, Any] | str]:
    """The activation object and its cache identity ({} for a built-in; a fingerprint or a reason)."""
    if activation is None:
        if cfg_name.startswith(CUSTOM):
            raise ConfigError(f"{arg('activation', cfg_name)} names a user activation: pass it as activation=")
        return get_activation(cfg_name), {}
    act = get_activation(activation)
    if isinstance(activation, str):
        return act, {}
    try:
        return act, {"activation_fn": callable_fingerprint(getattr(act, "phi", activation))}
    except Unhashable as err:
        return act, f"the activation cannot be fingerprinted ({err})"


def activation_name(activation: ActivationLike | None, default: str) -> str:
    if activation is None:
        return default
    if isinstance(activation, str):
        return activation
    name = getattr(activation, "name", None) or getattr(activation, "__name__", "activation")
    return name if name.startswith(CUSTOM) else f"{CUSTOM}{name}"


def merge_identity(*parts: dict[str, Any] | str) -> dict[str, Any] | str:
    """One identity from several: the first reason not to cache wins."""
    out: dict[str, Any] = {}
    for part in parts:
        if isinstance(part, str):
            return part
        out.update(part)
    return out


class SyntheticFamily:
    """What the two-layer and 1D-CNN experiments share: a config, the data source (built-in, a user's
    target or arrays), the activation (built-in or a user's callable), and the cache identity of those."""

    default_config: type = TwoLayerConfig

    def __init__(self, config: TwoLayerConfig | None = None, *, target: TargetFn | None = None,
                 data: Arrays | None = None, activation: ActivationLike | None = None) -> None:
        cfg = SyntheticInputs.configure(config or self.default_config(), target, data)
        self.config = cfg.with_(activation=activation_name(activation, cfg.activation))
        self.inputs = SyntheticInputs(self.config, target, data)
        self.act, self._act_identity = resolve_activation(self.config.activation, activation)

    def identity(self) -> dict[str, Any] | str:
        return merge_identity(self.inputs.identity(), self._act_identity)
