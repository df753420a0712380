"""``python -m earlylin.kernel``: the kernel bound, ‖Θ − Θ^lin‖ against the theorem's rate.

The command lives in :mod:`earlylin.cli.kernel_bound`; this module keeps ``python -m earlylin.kernel``
working. ``python -m earlylin kernel-bound`` is the same.
"""

from earlylin import cli
from earlylin.cli.kernel_bound import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    cli.exit(main())
