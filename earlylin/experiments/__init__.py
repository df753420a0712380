"""The experiment families and the one registry that dispatches to them.

Each family is an adapter of :mod:`earlylin.experiments.pipeline` holding only what differs —
its data, network and linear model(s): :class:`~earlylin.experiments.two_layer.TwoLayer`,
:class:`~earlylin.experiments.cnn1d.Cnn1d`, :class:`~earlylin.experiments.cifar.Cifar` and
:class:`~earlylin.experiments.network.Network` (a user's own torch network). :func:`experiment_for`
maps a built-in config to its experiment; the CLI, the studies and the sweeps all go through it.
"""

from __future__ import annotations

from typing import Any

from earlylin.config import CifarConfig, Cnn1dConfig, NetworkConfig, TwoLayerConfig
from earlylin.errors import ConfigError
from earlylin.experiments.cifar import Cifar
from earlylin.experiments.cnn1d import Cnn1d
from earlylin.experiments.network import Network
from earlylin.experiments.pipeline import Experiment, Prepared, run
from earlylin.experiments.result import Result
from earlylin.experiments.two_layer import TwoLayer

# family name → (config class, experiment class); subclasses first (Cnn1dConfig extends TwoLayerConfig)
FAMILIES: dict[str, tuple[type, type]] = {
    "cnn1d": (Cnn1dConfig, Cnn1d),
    "two_layer": (TwoLayerConfig, TwoLayer),
    "cifar": (CifarConfig, Cifar),
    "network": (NetworkConfig, Network),
}


def family_of(config: Any) -> str:
    """The family of a config object or of a config dict read from a record."""
    if isinstance(config, dict):
        if "family" in config:
            return str(config["family"])
        if config.get("model") == "cnn1d" or "filter_size" in config:
            return "cnn1d"
        return "cifar" if "arch" in config else "two_layer"
    for name, (cls, _) in FAMILIES.items():
        if isinstance(config, cls):
            return name
    raise ConfigError(f"no experiment family takes a {type(config).__name__}; valid: "
                      f"{', '.join(c.__name__ for c, _ in FAMILIES.values())}")


def config_from_dict(family: str, fields: dict[str, Any]) -> Any:
    """A config of ``family`` from plain fields (lists become tuples; unknown keys are refused)."""
    if family not in FAMILIES:
        raise ConfigError(f"family {family!r} is unknown; valid: {', '.join(FAMILIES)}")
    cls = FAMILIES[family][0]
    names = set(cls.__dataclass_fields__)
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ConfigError(f"{family} config has no field(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def experiment_for(config: Any, *, data_cache_dir: Any = "default", data_dir: Any = None, **pieces: Any) -> Experiment:
    """The experiment of a built-in config. ``pieces``: a user's target, data or activation (two-layer
    net, 1D CNN); ``data_cache_dir``: the CIFAR loader's pooled-array cache (None: none); ``data_dir``: where
    the CIFAR archive is looked for and downloaded (None: ``$EARLYLIN_DATA_DIR`` or the per-user data dir)."""
    if hasattr(config, "prepare"):
        return config
    family = family_of(config)
    if family == "cifar":
        return Cifar(config, data_cache_dir=data_cache_dir, data_dir=data_dir, **pieces)
    return FAMILIES[family][1](config, **pieces)


__all__ = ["FAMILIES", "Cifar", "Cnn1d", "Experiment", "Network", "NetworkConfig", "Prepared", "Result", "TwoLayer",
           "config_from_dict", "experiment_for", "family_of", "run"]
