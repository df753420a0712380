"""``python -m earlylin.figures``: the figures command (:mod:`earlylin.cli.figures`)."""

from earlylin import cli
from earlylin.cli.figures import main

cli.exit(main())
