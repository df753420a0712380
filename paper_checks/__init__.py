"""Each claim of Hu, Xiao, Adlam & Pennington (2020) as a check: paper value, measured value, verdict.

Run ``python -m paper_checks`` (paper size, one GPU) or ``python -m paper_checks --quick`` (CPU size)
from the repository root. The checks are in :mod:`paper_checks.checks`; the runner in
:mod:`paper_checks.__main__` loads or runs the studies of :mod:`earlylin.studies` (cached, the same
records the figures use), prints the table and writes ``REPORT.md`` (by default under ``runs/``; the
committed ``paper_checks/REPORT.md`` is written only when ``--report`` names it). The checks read
records through :mod:`earlylin.experiments.analysis` and :mod:`earlylin.figures.tables` only, never a plotting library.
"""

from paper_checks.checks import CHECK_STUDIES, CHECKS, CheckResult

__all__ = ["CHECKS", "CHECK_STUDIES", "CheckResult"]
