"""Every figure's table rebuilt from the committed study records matches the committed CSV: the same
columns in the same order, the same number of rows, every text, integer and empty cell exactly, and every
float cell to float64 rounding.

Why not byte for byte: the tables are float64 post-processing of float64 records — seed means and
standard deviations, maxima, ratios and differences, d·log(d)/η (no fits: the slopes are fitted where
the tables are read). The IEEE operations +, −, ×, ÷ and √ are correctly rounded and give the same bits on
every machine, and numpy adds the few seeds of a mean in a fixed order, but log comes from the C library,
whose implementations (and their FMA or vector variants) may differ in the last bit, and another numpy may
sum in another order. That is a few ulp per cell (1 ulp = 2.2e-16 relative), ≤ 10 ulp over the longest
chain of operations. A float cell is accepted when

    |new − committed| ≤ TOL · (|committed| + largest |value| of its column),  TOL = 1e-12,

≈ 4,500 ulp (tests/conftest.py's TOL["table"]): a margin of several hundred over that chain, and still a
bound that any real change of a table (another formula, another record, a moved row) exceeds by orders of
magnitude. The column term is for cells that are sums or differences of larger numbers that cancel (a seed
mean of outputs of both signs, a V_lin⊥ drop of exactly 0.0): their rounding error is relative to the
numbers summed, which are of the column's size, not to the cell. On this machine the rebuilt tables are
byte-identical to the committed CSVs, also with other OpenBLAS kernels (OPENBLAS_CORETYPE), MKL code
paths, torch's and numpy's vector code restricted and one thread; test_a_last_bit_change_of_log_passes
emulates another C library.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from earlylin import config
from earlylin.figures.tables import TABLES
from earlylin.runtime.records import write_csv_atomic
from tests.conftest import ROOT, TOL

FIGURES = ROOT / "figures"
TABLE_TOL = TOL["table"]
INTEGER = re.compile(r"-?\d+")


@pytest.fixture(scope="module")
def records() -> dict:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((FIGURES / "records").glob("*.json"))}


# figures whose paper-size records are not committed yet (the phase diagram needs a GPU run)
NOT_COMMITTED = {fid for fid in TABLES if not (FIGURES / f"{fid}.csv").exists()}


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _float(cell: str) -> float | None:
    """The value of a float cell (Python's repr of a float); None for text, integer and empty cells."""
    if cell == "" or INTEGER.fullmatch(cell):
        return None
    try:
        return float(cell)
    except ValueError:
        return None


def assert_same_table(new: str, old: str, name: str) -> float:
    """Fail unless the CSV text ``new`` matches ``old`` as the module docstring says; returns the worst
    |new − old| / tolerance over the float cells (0 when they are identical)."""
    new_rows, old_rows = _rows(new), _rows(old)
    assert new_rows[:1] == old_rows[:1], f"{name}: columns {new_rows[:1]} != {old_rows[:1]}"
    assert len(new_rows) == len(old_rows), f"{name}: {len(new_rows) - 1} rows != {len(old_rows) - 1}"
    header = old_rows[0]
    scale = [max((abs(v) for r in old_rows[1:] if (v := _float(r[j])) is not None and math.isfinite(v)), default=0.0)
             for j in range(len(header))]
    worst = 0.0
    for i, (a_row, b_row) in enumerate(zip(new_rows[1:], old_rows[1:], strict=True), start=1):
        assert len(a_row) == len(b_row), f"{name}: row {i} has {len(a_row)} cells, not {len(b_row)}"
        for j, (a, b) in enumerate(zip(a_row, b_row, strict=True)):
            where = f"{name}: row {i}, column {header[j]}"
            b_val, a_val = _float(b), _float(a)
            if b_val is None or a_val is None or not (math.isfinite(a_val) and math.isfinite(b_val)):
                assert a == b, f"{where}: {a!r} != {b!r}"
                continue
            tol = TABLE_TOL * (abs(b_val) + scale[j])
            diff = abs(a_val - b_val)
            assert diff <= tol, f"{where}: {a} != {b} (|diff| {diff:.3g} > tolerance {tol:.3g})"
            worst = max(worst, diff / tol if tol else 0.0)
    return worst


def _rebuilt(records: dict, fid: str, tmp_path: Path) -> str:
    spec = TABLES[fid]
    assert set(spec.studies) <= set(records), f"{fid}: missing records {set(spec.studies) - set(records)}"
    return write_csv_atomic(tmp_path / f"{fid}.csv", spec.table(records)).read_text(encoding="utf-8")


@pytest.mark.parametrize("fid", [f for f in TABLES if f not in NOT_COMMITTED])
def test_table_matches_committed_csv(records, fid, tmp_path, record_property):
    new, committed = _rebuilt(records, fid, tmp_path), (FIGURES / f"{fid}.csv").read_text(encoding="utf-8")
    record_property("worst_diff_over_tolerance", assert_same_table(new, committed, fid))  # for --junitxml
    record_property("bit_identical", new == committed)


def test_a_last_bit_change_of_log_passes(records, tmp_path, monkeypatch):
    """Another C library's log, emulated as 4 ulp off: the escape table (d·log(d)/η) is then not
    byte-identical to the committed CSV but passes; log off by 1e-9 (a change of formula's size) fails."""
    committed = (FIGURES / "escape.csv").read_text(encoding="utf-8")

    def log_off(ulps: float, rel: float = 0.0):
        def log(x: float) -> float:
            v = math.log(x) * (1 + rel)
            for _ in range(int(ulps)):
                v = math.nextafter(v, math.inf)
            return v

        return SimpleNamespace(**{**{k: getattr(math, k) for k in dir(math) if not k.startswith("_")}, "log": log})

    monkeypatch.setattr(config, "math", log_off(4))  # the one d·log(d)/η: config.window_scale
    new = _rebuilt(records, "escape", tmp_path)
    assert new != committed and 0 < assert_same_table(new, committed, "escape") < 1
    monkeypatch.setattr(config, "math", log_off(0, rel=1e-9))
    with pytest.raises(AssertionError, match="d_log_d_over_lr"):
        assert_same_table(_rebuilt(records, "escape", tmp_path), committed, "escape")


def test_comparison_catches_a_change():
    """The comparison is not vacuous: a float cell moved by 100× its tolerance, a text cell, a dropped row
    and a renamed column each fail it; a move by a tenth of the tolerance passes."""
    old = (FIGURES / "fig1c.csv").read_text(encoding="utf-8")
    rows = _rows(old)
    j = rows[0].index("max_rel_mse_early")
    scale = max(abs(float(r[j])) for r in rows[1:])

    def moved(by: float) -> str:
        new = [list(r) for r in rows]
        b = float(new[1][j])
        new[1][j] = repr(b + by * TABLE_TOL * (abs(b) + scale))
        return _text(new)

    assert assert_same_table(old, old, "fig1c") == 0.0
    assert 0 < assert_same_table(moved(0.1), old, "fig1c") <= 0.11
    for changed in (moved(100.0), _text([rows[0], ["other", *rows[1][1:]], *rows[2:]]), _text(rows[:-1]),
                    _text([["seed" if c == "d" else c for c in rows[0]], *rows[1:]])):
        with pytest.raises(AssertionError):
            assert_same_table(changed, old, "fig1c")
