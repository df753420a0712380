"""``python -m earlylin.verify``: the network and its predicted linear model side by side.

The command lives in :mod:`earlylin.cli.verify`; this module keeps the command users run (and
``from earlylin import verify; verify.main([...])``) working. ``python -m earlylin verify`` is the same.
"""

from earlylin import cli
from earlylin.cli.verify import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    cli.exit(main())
