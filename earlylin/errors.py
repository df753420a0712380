"""The one error type earlylin raises for anything a user can fix, its refinements, and how a value is named.

A message names the value the way the caller gave it: ``lr=1000000.0`` from Python, ``--lr 1e+06`` on the
command line. Checks shared by both write the name with :func:`arg`; the command-line wrapper
(:func:`earlylin.cli.command`) switches the naming to flags for the duration of a command (:func:`naming`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

# config field → its command-line flag, where the flag is not "--" + the field with "-" for "_"
FLAG_OF = {"filter_size": "--filter", "kernel_size": "--filter", "npz_path": "--npz", "max_gb": "--max-gb"}
_STYLE: contextvars.ContextVar[str] = contextvars.ContextVar("earlylin_naming", default="api")
_UNSET = object()
CUSTOM = "custom:"  # prefix of the names of user pieces (activation, target, inputs, network)


def flag_of(field: str) -> str:
    """The command-line flag of a config field (``n_test`` → ``--n-test``)."""
    return FLAG_OF.get(field, "--" + field.replace("_", "-"))


def arg(field: str, value: Any = _UNSET) -> str:
    """``field`` (and ``value``) as the caller wrote them: ``lr=1000000.0`` from Python, ``--lr 1e+06`` from a
    command. Strings show quoted in both (``activation='swish'``, ``--activation 'swish'``)."""
    if _STYLE.get() == "flag":
        flag = flag_of(field)
        if value is _UNSET:
            return flag
        shown = repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else (
            " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value))
        return f"{flag} {shown}"
    if value is _UNSET:
        return f"{field}="
    return f"{field}={value!r}"


@contextmanager
def naming(style: str) -> Iterator[None]:
    """Name values as ``"flag"`` (command line) or ``"api"`` (Python, the default) inside the block."""
    token = _STYLE.set(style)
    try:
        yield
    finally:
        _STYLE.reset(token)


class EarlylinError(Exception):
    """A bad input or a failed run, with a message that names the value, the valid range and the flag."""


class ConfigError(EarlylinError, ValueError):
    """An invalid configuration value, detected before any work starts."""


class DivergenceError(EarlylinError, FloatingPointError):
    """Gradient descent diverged: the loss became NaN/inf or grew far beyond its initial value."""


class DataError(EarlylinError, OSError):
    """A file that cannot be read or written: data missing, truncated or failing its integrity check, or an
    output or cache file that a full disk or a permission refused (the message names the path)."""


def report(err: EarlylinError) -> int:
    """Print ``err`` for a command-line user and return its exit status: 2 invalid input,
    4 divergence of every seed, 1 any other failure (data, I/O)."""
    import sys

    print(f"earlylin: error: {err}", file=sys.stderr)
    if isinstance(err, ConfigError):
        return 2
    if isinstance(err, DivergenceError):
        return 4
    return 1


# ------------------------------------------------------------------ checks shared by every config
def int_range(field: str, value: Any, lo: int, hi: int, valid: str | None = None) -> None:
    """Refuse ``value`` unless it is an integer (not a bool) in [lo, hi]; ``valid`` rewords the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{arg(field, value)}: {valid or f'must be an integer in [{lo}, {hi}]'}")


def positive(field: str, value: Any) -> None:
    """Refuse ``value`` unless it is a finite number > 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{arg(field, value)}: must be a finite number > 0")


def choice(field: str, value: Any, valid: tuple[str, ...], custom: bool = False) -> None:
    """Refuse ``value`` unless it is one of ``valid`` (``custom``: or a user piece's ``custom:`` name)."""
    if custom and isinstance(value, str) and value.startswith(CUSTOM):
        return
    if not isinstance(value, str) or value not in valid:
        raise ConfigError(f"{arg(field, value)} is unknown; valid: {', '.join(valid)}")


C = TypeVar("C")


def config_class(cls: type[C]) -> type[C]:
    """``@dataclass(frozen=True)`` that checks itself once, at construction: an unknown field or extra
    positional values raise a :class:`ConfigError` listing the valid fields (``TwoLayerConfig(foo=1)``) instead
    of Python's TypeError, and then the class's own ``validate()`` (if it has one) checks every value, so that
    no invalid config exists. ``validate()`` stays callable and returns the config (a second call re-checks
    nothing new: the config is frozen)."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    init: Callable[..., None] = cls.__init__  # type: ignore[misc]
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        unknown = [k for k in kwargs if k not in names]
        if unknown or len(args) > len(names):
            given = ", ".join(f"{k}={kwargs[k]!r}" for k in unknown) or f"{len(args)} positional values"
            raise ConfigError(f"{cls.__name__}({given}): no such field; valid fields: {', '.join(names)}")
        init(self, *args, **kwargs)
        if hasattr(self, "validate"):
            self.validate()

    cls.__init__ = __init__  # type: ignore[misc]
    return cls
