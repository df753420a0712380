"""What every command-line entry point shares: argument parsing, up-front checks, signals, progress.

- :class:`ArgumentParser` prints a parse error as one line (``earlylin: error: …``) and exits 2;
  :class:`HelpFormatter` shows a default only where there is one (never "(default: None)").
- :func:`command` wraps a ``main(argv) -> int``: an :class:`~earlylin.errors.EarlylinError` becomes
  its exit status (:func:`earlylin.errors.report`: 2 invalid input, 1 other), an ``OSError`` exit 1,
  Ctrl-C exit 130 and SIGTERM exit 143 — each one line on stderr, never a traceback. SIGTERM raises
  :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so the atomic writers
  (:mod:`earlylin.records`) delete their temporary files on the way out: nothing is left half-written.
  Warnings print as one line each (``earlylin: warning: …``).
- :func:`probe_dir` / :func:`probe_file` check before any work that an output can be written: the
  directory is created if missing, a probe file is written there and removed, and the folders made
  for the probe are removed again (the atomic writers create them when they write).
- :func:`say` prints one status line; :func:`bar` is a tqdm progress bar on stderr, off with
  ``enabled=False`` (``--quiet``) and whenever stderr is not a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from earlylin.errors import ConfigError, EarlylinError, report

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
def probe_dir(path: str | os.PathLike[str], flag: str) -> Path:
    """Check that files can be written in the directory ``path``: create it (and missing parents),
    write and remove a probe file there, then remove the folders it created, so that a refusal later
    leaves no trace (the writers of :mod:`earlylin.records` create folders as they need them).

    Raises:
        ConfigError: ``path`` is a file, or the directory cannot be created or written to.
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{flag} {folder}: is a file, not a directory; name a directory (created if missing)")
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".earlylin-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{flag} {folder}: cannot write there ({exc.strerror or exc}); "
                          "name a writable directory") from None
    finally:
        for made in created:  # deepest first; a folder someone else filled meanwhile stays
            with contextlib.suppress(OSError):
                made.rmdir()
    return folder


def probe_file(path: str | os.PathLike[str], flag: str) -> Path:
    """Check that the file ``path`` can be written (atomically, beside its target): not a directory,
    and its directory writable (:func:`probe_dir`)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(f"{flag} {target}: is a directory; name a file")
    probe_dir(target.parent, flag)
    return target


def given(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    """The flags (of ``{dest: "--flag"}``) that were given, i.e. are neither None nor False."""
    return [flag for dest, flag in flags.items() if getattr(args, dest) not in (None, False)]


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


def command(main: Callable[..., int] | None = None, *, hint: str | None = RESUME_HINT) -> Any:
    """Decorator of a CLI ``main`` (``@command`` or ``@command(hint=...)``): errors, Ctrl-C and SIGTERM
    become one line and an exit status; ``hint`` ends the interrupt line (what a rerun does)."""
    if main is None:
        return lambda fn: command(fn, hint=hint)
    tail = f"; {hint}" if hint else ""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        with _handle_sigterm(), warnings.catch_warnings():
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
