"""The spec of a sweep (:mod:`earlylin.sweep`): its grid's fields, parsed, checked and expanded into points.

- :func:`parse_assignments`: ``FIELD=V1,V2`` tokens of the command line, each value parsed by the type of
  the config field it sets (int, float, bool, str);
- :func:`resolve_fields`: the derived fields of one point (``m_over_d`` → width, ``n_exponent`` /
  ``n_scale`` → n, ``steps_per_window`` → steps) at its d;
- :func:`check_spec`: names, conflicts and sizes, before any work; :func:`grid_points`: the points;
  :func:`grid_configs`: their validated configs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from earlylin.config import early_window
from earlylin.errors import ConfigError
from earlylin.experiments import FAMILIES, config_from_dict

SWEEP_FAMILIES = ("two_layer", "cnn1d", "cifar")
DERIVED = ("m_over_d", "n_exponent", "n_scale", "steps_per_window")  # per-point fields of d (not cifar)


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(text)
    return low in ("true", "1", "yes")


_PARSERS = {"int": int, "float": float, "bool": _bool, "str": str, "str | None": str}


def field_parsers(family: str) -> dict[str, Any]:
    """Field name → parser of one value, for the fields a sweep may set (all but ``seeds``)."""
    if family not in SWEEP_FAMILIES:
        raise ConfigError(f"--family {family!r} is unknown; valid: {', '.join(SWEEP_FAMILIES)}")
    cls = FAMILIES[family][0]
    out = {name: _PARSERS[str(f.type)] for name, f in cls.__dataclass_fields__.items() if str(f.type) in _PARSERS}
    if family != "cifar":
        out.update(dict.fromkeys(DERIVED, float))
    return out


def parse_assignments(tokens: Sequence[str], family: str, flag: str, many: bool) -> dict[str, Any]:
    """``name=v1,v2`` tokens (``many``: a list per name; else one value) parsed by the fields' types."""
    parsers = field_parsers(family)
    out: dict[str, Any] = {}
    for token in tokens:
        name, sep, text = token.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not text.strip():
            raise ConfigError(f"{flag} {token!r}: write FIELD={'V1,V2,…' if many else 'VALUE'}")
        if name not in parsers:
            hint = " (give seeds with --seeds)" if name == "seeds" else ""
            raise ConfigError(f"{flag} {token!r}: {family} has no field {name!r}{hint}; "
                              f"valid: {', '.join(sorted(parsers))}")
        if name in out:
            raise ConfigError(f"{flag}: {name} is given twice")
        texts = [t.strip() for t in text.split(",")] if many else [text.strip()]
        try:
            values = [parsers[name](t) for t in texts]
        except ValueError:
            kind = getattr(parsers[name], "__name__", "value").lstrip("_")
            raise ConfigError(f"{flag} {token!r}: {name} takes {kind} values") from None
        out[name] = values if many else values[0]
    return out


def resolve_fields(family: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The config fields of one point: the derived fields (``m_over_d``, ``n_exponent``/``n_scale``,
    ``steps_per_window``) replaced by the width, n and steps they give at the point's d (an invalid d
    is left for the config's own check)."""
    out = {k: v for k, v in fields.items() if k not in DERIVED}
    derived = {k: fields[k] for k in DERIVED if k in fields}
    defaults = FAMILIES[family][0]()
    d = out.get("d", getattr(defaults, "d", None))
    if not derived or isinstance(d, bool) or not isinstance(d, int) or d < 2:
        return out
    try:
        if "m_over_d" in derived:
            out["width"] = 2 * max(1, round(float(derived["m_over_d"]) * d / 2))
        if "n_exponent" in derived:
            out["n"] = max(2, round(float(derived.get("n_scale", 1.0)) * d ** float(derived["n_exponent"])))
        if "steps_per_window" in derived:
            T = early_window(d, out.get("lr", defaults.lr), out.get("window_c", defaults.window_c))
            out["steps"] = max(1, math.ceil(float(derived["steps_per_window"]) * T))
    except (TypeError, ValueError, OverflowError) as err:
        raise ConfigError(f"{', '.join(f'{k}={v!r}' for k, v in derived.items())} at d = {d}: {err}") from None
    return out


def check_spec(family: str, grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any], seeds: Sequence[int]) -> None:
    """Names, conflicts and sizes, before any work."""
    parsers = field_parsers(family)
    if not grid:
        raise ConfigError("--grid: give at least one FIELD=V1,V2,… axis")
    for flag, names in (("--grid", grid), ("--set", fixed)):
        unknown = [k for k in names if k not in parsers]
        if unknown:
            hint = " (give seeds with --seeds / seeds=)" if "seeds" in unknown else ""
            raise ConfigError(f"{flag}: {family} has no field(s) {', '.join(unknown)}{hint}; "
                              f"valid: {', '.join(sorted(parsers))}")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ConfigError(f"{', '.join(both)}: given both in --grid and --set; give each field once")
    for name, values in grid.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"--grid {name}: give a non-empty list of values")
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"--grid {name}={','.join(map(str, values))}: values must be distinct")
    names = set(grid) | set(fixed)
    for derived, direct in (("m_over_d", "width"), ("n_exponent", "n"), ("steps_per_window", "steps")):
        if derived in names and direct in names:
            raise ConfigError(f"{derived} sets {direct}: give one of {derived} and {direct}, not both")
    if "n_scale" in names and "n_exponent" not in names:
        raise ConfigError("--n-scale needs --n-exponent (n = round(scale·d^exponent))")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {list(seeds)}: give distinct seeds (integers ≥ 0)")


def grid_points(grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any], seeds: Sequence[int]) -> list[dict]:
    """Every point of the grid (product of the axes, the last axis fastest) as fields, with the seeds."""
    axes = list(grid)
    return [{**fixed, **dict(zip(axes, combo, strict=True)), "seeds": [int(s) for s in seeds]}
            for combo in itertools.product(*(grid[a] for a in axes))]


def grid_configs(family: str, grid: Mapping[str, Sequence[Any]], fixed: Mapping[str, Any],
                 seeds: Sequence[int]) -> list[Any]:
    """The validated config of every point (raises the first :class:`ConfigError`)."""
    check_spec(family, grid, fixed, seeds)
    return [config_from_dict(family, resolve_fields(family, p)) for p in grid_points(grid, fixed, seeds)]


def plain_value(value: Any) -> Any:
    """A numpy scalar as its Python value (configs check ``isinstance(value, int)``)."""
    return value.item() if hasattr(value, "item") and not isinstance(value, str | bytes) else value
