"""Verdicts, choice tables and claim classes of the paper checks.

A check depends on details the paper does not give (a target formula, an activation, an input
normalisation, a width). It names them (``unknowns``) and runs the plausible choices: its result is a
*choice table*, one :class:`Row` per choice (choice → measured → verdict), summed up as

- ``holds for every choice``,
- ``holds for X; fails for Y`` (the verdict ``depends``: the claim turns on our choice),
- ``fails for every choice``,
- ``inconclusive`` when no row is decided.

Inconclusive rows do not count toward the class (a table of fails and one inconclusive row fails for
every decided choice); the summary line and the report's row counts still show them.

Several checks can test one claim of the paper (Fig 3's agreement for FC and CNN, at paper size
and on the subsampled grid); :func:`claim_classes` pools their rows by claim, and the report's
headline counts claims in these classes, then rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

HOLDS, FAILS, INCONCLUSIVE, DEPENDS = "holds", "fails", "inconclusive", "depends"
# the class of a claim (or check) from its rows
ALL_HOLD, SOME, ALL_FAIL, UNDECIDED = ("holds for every choice", "holds for some choices, fails for others",
                                       "fails for every choice", "inconclusive")
CLASSES = (ALL_HOLD, SOME, ALL_FAIL, UNDECIDED)


@dataclass
class Row:
    """One choice of the unknown details, what it measured and its verdict."""

    choice: str
    measured: str
    verdict: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def class_of(verdicts: Iterable[str]) -> str:
    """The class of a set of row verdicts, over the decided rows (holds or fails): every one holds / some hold
    and some fail / every one fails; inconclusive when no row is decided."""
    decided = [v for v in verdicts if v in (HOLDS, FAILS)]
    if not decided:
        return UNDECIDED
    if all(v == HOLDS for v in decided):
        return ALL_HOLD
    return ALL_FAIL if all(v == FAILS for v in decided) else SOME


def summarise(rows: list[Row]) -> tuple[str, str]:
    """(verdict, summary) of a choice table: holds / fails / depends / inconclusive and one line, e.g.
    ``holds for erf, sphere; fails for relu, coordinate``."""
    cls = class_of(r.verdict for r in rows)
    verdict = {ALL_HOLD: HOLDS, ALL_FAIL: FAILS, SOME: DEPENDS, UNDECIDED: INCONCLUSIVE}[cls]
    if len(rows) == 1:
        return verdict, f"{rows[0].verdict} (one setting: {rows[0].choice})"
    undecided = sum(r.verdict == INCONCLUSIVE for r in rows)
    if cls in (ALL_HOLD, ALL_FAIL) and not undecided:
        return verdict, f"{cls} ({len(rows)} choices)"
    parts = [f"{v} for {'; '.join(r.choice for r in rows if r.verdict == v)}" for v in (HOLDS, FAILS, INCONCLUSIVE)
             if any(r.verdict == v for r in rows)]
    return verdict, " — ".join(parts)


def claim_classes(results: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """claim id → {"checks": [names], "class": one of :data:`CLASSES`, "rows": {verdict: count}}, pooling
    the rows of every check of the claim (results: objects with ``claim_id``, ``name`` and ``rows``)."""
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        entry = out.setdefault(r.claim_id, {"checks": [], "verdicts": []})
        entry["checks"].append(r.name)
        entry["verdicts"] += [row.verdict for row in r.rows]
    for entry in out.values():
        vs = entry.pop("verdicts")
        entry["class"] = class_of(vs)
        entry["rows"] = {v: vs.count(v) for v in (HOLDS, FAILS, INCONCLUSIVE)}
    return out
