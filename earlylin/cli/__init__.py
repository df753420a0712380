"""What every command-line entry point shares: argument parsing, up-front checks, signals, progress.

- :class:`ArgumentParser` prints a parse error as one line (``earlylin: error: …``) and exits 2;
  :class:`HelpFormatter` shows a default only where there is one (never "(default: None)").
- :func:`command` wraps a ``main(argv) -> int``: an :class:`~earlylin.errors.EarlylinError` becomes
  its exit status (:func:`earlylin.errors.report`: 2 invalid input, 1 other), an ``OSError`` exit 1,
  Ctrl-C exit 130 and SIGTERM exit 143 — each one line on stderr, never a traceback. SIGTERM raises
  :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so the atomic writers
  (:mod:`earlylin.runtime.records`) delete their temporary files on the way out: nothing is left half-written.
  Warnings print as one line each (``earlylin: warning: …``).
- :func:`probe_dir` / :func:`probe_file` (:mod:`earlylin.runtime.records`) check before any work that an output can
  be written and that its disk has room.
- :func:`say` prints one status line; :func:`bar` is a tqdm progress bar on stderr, off with
  ``enabled=False`` (``--quiet``) and whenever stderr is not a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

from earlylin.errors import EarlylinError, naming, report
from earlylin.runtime.records import locked_dir, probe_dir, probe_file

T = TypeVar("T")
EXIT_SIGINT = 130  # 128 + SIGINT, the shell's convention
EXIT_SIGTERM = 143  # 128 + SIGTERM
RESUME_HINT = "rerun the same command to continue from the cache and the last checkpoint"


# ---------------------------------------------------------------------------------------------- parsing
class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to a flag's help only when it has a real default and its help does not
    already state one; lists print space-separated, paths as paths."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or default in (None, False, argparse.SUPPRESS, "", [], ())
                or "default" in text or isinstance(action, argparse._HelpAction)):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
        if f"[{shown}]" in text:  # stated in the help's own [default] style
            return text
        return f"{text} (default: {shown.replace('%', '%%')})"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the project's formatter and one-line errors (exit status 2, no usage dump)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"earlylin: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


# ---------------------------------------------------------------------------------------------- checks
def given(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """The flags (of ``{dest: "--flag"}``) that were given, i.e. are neither None nor False."""
    return [flag for dest, flag in flags.items() if getattr(args, dest) not in (None, False)]


def config_fields(args: argparse.Namespace, cls: type, dest: dict[str, str] | None = None) -> dict[str, Any]:
    """The fields of the config class ``cls`` that the command line gave: each field's value from its flag (the
    argument ``dest[field]``, else the field's own name), lists as tuples. Flags left at None are left out, so
    that the config fills them from its own defaults (no default is copied here)."""
    dest = dest or {}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, dest.get(f.name, f.name), None)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


# ---------------------------------------------------------------------------------------------- signals
class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that every cleanup handler runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextmanager
def _handle_sigterm() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
    print(f"earlylin: warning: {message}", file=sys.stderr if file is None else file)


def exit(status: int) -> NoReturn:
    """End the process with ``status``: what ``if __name__ == "__main__"`` of every command calls.

    After Ctrl-C or SIGTERM (130, 143) the output is flushed and the process ends at once (``os._exit``), so that
    the status is exactly the one :func:`command` reported: Python's own shutdown turns a KeyboardInterrupt that
    passed through Python code run by a C extension (an import under way when the signal came) into death by
    SIGINT, which a parent process sees as −2 instead of 130. Every file was closed and every temporary file
    removed on the way out of ``main``; only Python's final clean-up is skipped."""
    if status in (EXIT_SIGINT, EXIT_SIGTERM):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)
    sys.exit(status)


def command(main: Callable[..., int] | None = None, *, hint: str | None = RESUME_HINT) -> Any:
    """Decorator of a CLI ``main`` (``@command`` or ``@command(hint=...)``): errors, Ctrl-C and SIGTERM
    become one line and an exit status; ``hint`` ends the interrupt line (what a rerun does)."""
    if main is None:
        return lambda fn: command(fn, hint=hint)
    tail = f"; {hint}" if hint else ""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        with _handle_sigterm(), warnings.catch_warnings(), naming("flag"):
            warnings.showwarning = _one_line_warning
            try:
                return main(*args, **kwargs)
            except EarlylinError as err:
                return report(err)
            except Terminated:
                print(f"\nearlylin: terminated (SIGTERM); no file was left half-written{tail}",
                      file=sys.stderr)
                return EXIT_SIGTERM
            except KeyboardInterrupt:
                print(f"\nearlylin: interrupted (Ctrl-C); no file was left half-written{tail}",
                      file=sys.stderr)
                return EXIT_SIGINT
            except OSError as err:  # disk full, permissions changed mid-run, …: the environment, not a bug
                print(f"earlylin: error: {err}", file=sys.stderr)
                return 1

    return wrapper


__all__ = ["ArgumentParser", "HelpFormatter", "Terminated", "command", "exit", "given", "locked_dir", "probe_dir",
           "probe_file"]
