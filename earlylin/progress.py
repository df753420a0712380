"""Progress on stderr: one-line status messages and warnings, and tqdm bars that stay off when stderr is
not a terminal or the user asked for quiet. Every layer (trainer, pipeline, commands) reports through here."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def say(message: str, enabled: bool = True) -> None:
    """One status line on stderr (written around any progress bar on screen)."""
    if enabled:
        tqdm.write(message, file=sys.stderr)
        sys.stderr.flush()


def warn(message: str) -> None:
    """One warning line on stderr, whatever --quiet says."""
    say(f"earlylin: warning: {message}")


def bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", enabled: bool = True,
        initial: int = 0, unit: str = "it", leave: bool = False) -> Any:
    """A tqdm progress bar on stderr: none when ``enabled`` is False or stderr is not a terminal."""
    return tqdm(iterable, total=total, desc=desc, initial=initial, unit=unit, leave=leave, file=sys.stderr,
                disable=None if enabled else True, dynamic_ncols=True, mininterval=0.5)


__all__ = ["bar", "say", "warn"]
