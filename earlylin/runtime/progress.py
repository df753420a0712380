"""Progress on stderr: one-line status messages and warnings, and tqdm progress bars. Every layer (trainer,
pipeline, sweeps, commands) reports through here.

On a terminal a bar redraws in place. When stderr is not a terminal (a log file, a pipe, a batch job) the same
bar is written as one whole line every :func:`log_interval` seconds (``$EARLYLIN_PROGRESS_EVERY_S``, default
5 s), and once when it starts and when it ends, so that a long run shows it is alive and how far it is.
``enabled=False`` (``--quiet``) turns both off.
"""

from __future__ import annotations

import io
import math
import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
PROGRESS_ENV = "EARLYLIN_PROGRESS_EVERY_S"  # seconds between progress lines when stderr is not a terminal
LOG_EVERY_S = 5.0
LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left, {rate_fmt}"


def say(message: str, enabled: bool = True) -> None:
    """One status line on stderr (written around any progress bar on screen)."""
    if enabled:
        tqdm.write(message, file=sys.stderr)
        sys.stderr.flush()


def warn(message: str) -> None:
    """One warning line on stderr, whatever --quiet says."""
    say(f"earlylin: warning: {message}")


def log_interval() -> float:
    """Seconds between progress lines when stderr is not a terminal: ``$EARLYLIN_PROGRESS_EVERY_S`` (a number
    > 0; an unreadable value falls back to the default) or :data:`LOG_EVERY_S`."""
    try:
        value = float(os.environ.get(PROGRESS_ENV, LOG_EVERY_S))
    except ValueError:
        return LOG_EVERY_S
    return value if math.isfinite(value) and value > 0 else LOG_EVERY_S


class _Lines(io.TextIOBase):
    """The stream a bar writes to when stderr is not a terminal: each redraw (``"\\r" + text``) becomes one
    line; tqdm's blank clear-line writes print nothing, and neither does a repeat of the same count (the final
    redraw when the bar closes)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        count = line.split(",")[0]
        if line and count != self.last:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.last = count
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):
        return False


def bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "", enabled: bool = True,
        initial: int = 0, unit: str = "it", leave: bool = False) -> Any:
    """A tqdm progress bar on stderr: redrawn in place on a terminal, one line every :func:`log_interval`
    seconds otherwise (the first when it starts); none when ``enabled`` is False."""
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if _is_terminal(sys.stderr):
        return tqdm(iterable, total=total, desc=desc, initial=initial, unit=unit, leave=leave, file=sys.stderr,
                    dynamic_ncols=True, mininterval=0.5)
    return tqdm(iterable, total=total, desc=desc, initial=initial, unit=unit, leave=leave, file=_Lines(sys.stderr),
                mininterval=log_interval(), maxinterval=max(log_interval(), 10.0), miniters=1, ascii=True,
                bar_format=LOG_FORMAT)


__all__ = ["PROGRESS_ENV", "bar", "log_interval", "say", "warn"]
