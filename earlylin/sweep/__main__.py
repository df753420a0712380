"""``python -m earlylin.sweep``: the sweep command (:mod:`earlylin.cli.sweep`)."""

from earlylin import cli
from earlylin.cli.sweep import main

cli.exit(main())
