"""``python -m earlylin <command> [flags]``: one entry point for every command.

Each subcommand is the command of the same name, with the same flags and exit statuses:
``python -m earlylin verify --d 50`` is ``python -m earlylin.verify --d 50``. The older forms
(``python -m earlylin.verify``, ``.sweep``, ``.figures``, ``.kernel``, ``python -m paper_checks``) keep working.
"""

from __future__ import annotations

import importlib
import sys

from earlylin.version import __version__

# subcommand → (the module whose main(argv) runs it, what it does)
COMMANDS = {
    "verify": ("earlylin.cli.verify", "the network and its predicted linear model side by side (the main job)"),
    "sweep": ("earlylin.cli.sweep", "a grid of configs, locally or on a Ray cluster; one row per point and seed"),
    "figures": ("earlylin.cli.figures", "regenerate every figure (PNG + CSV table) from cached or saved runs"),
    "kernel-bound": ("earlylin.cli.kernel_bound", "the kernel bound: ‖Θ − Θ^lin‖ against the theorem's rate"),
    "checks": ("paper_checks.__main__", "every claim of the paper: paper value, measured value, verdict per choice"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items())
    return (f"usage: python -m earlylin <command> [flags]   (earlylin {__version__})\n\ncommands:\n{rows}\n\n"
            "python -m earlylin <command> --help lists a command's flags.")


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand ``argv[0]`` with the rest of ``argv``; its exit status, or 2 for an unknown command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"earlylin {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"earlylin: error: {argv[0]!r} is not a command; valid: {', '.join(COMMANDS)} "
              "(python -m earlylin --help)", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
