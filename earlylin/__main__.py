"""``python -m earlylin <command>``: verify, sweep, figures, kernel-bound or checks (:mod:`earlylin.cli.main`)."""

from earlylin import cli
from earlylin.cli.main import main

cli.exit(main())
