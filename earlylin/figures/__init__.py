"""The figures (report) wing: every figure id's studies, CSV table and plot, and :func:`regenerate`,
which loads or runs the studies, writes the tables and draws every PNG from its CSV.

:mod:`earlylin.figures.tables` (one table per figure id, the registry), :mod:`earlylin.figures.plots`
(one plot per id), :mod:`earlylin.figures.choices` and :mod:`earlylin.figures.phase` (their panels).
The command is :mod:`earlylin.cli.figures` (``python -m earlylin.figures``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from earlylin import studies
from earlylin.errors import ConfigError
from earlylin.figures.tables import TABLES
from earlylin.runtime.devices import resolve_device
from earlylin.runtime.progress import say
from earlylin.runtime.records import Cache, device_label, environment, read_csv, write_csv_atomic, write_json_atomic

FIGURES = tuple(TABLES)  # every figure id, in order


def regenerate(
    ids: list[str], size: str, device: str, out: Path, cache_dir: Path | None, replot: bool = False,
    progress: bool = True, saved: dict[str, dict[str, Any]] | None = None, max_gb: float | None = None,
) -> dict[str, Any]:
    """Load or run the studies of ``ids`` (``saved``: the study records to use instead, nothing is run), write
    records and tables, draw every PNG from its CSV."""
    from earlylin.figures.plots import PLOTS, save_figure  # matplotlib: only when drawing

    bad = [i for i in ids if i not in FIGURES]
    if bad:
        raise ConfigError(f"--only {' '.join(bad)}: unknown figure id(s); valid: {', '.join(FIGURES)}")
    dev = resolve_device(device)
    start = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    study_walls: dict[str, float] = {}
    if not replot:
        cache = Cache(cache_dir)
        for study in dict.fromkeys(s for i in ids for s in TABLES[i].studies):
            t0 = time.perf_counter()
            records[study] = (saved[study] if saved is not None
                              else studies.get_study(study, size, device, cache, progress=progress, max_gb=max_gb))
            study_walls[study] = time.perf_counter() - t0
            write_json_atomic(out / "records" / f"{study}.json", records[study])
            say(f"[{study}] done in {study_walls[study]:.1f}s", progress)
    drawn = []
    for fid in ids:
        csv_path = out / f"{fid}.csv"
        if not replot:
            write_csv_atomic(csv_path, TABLES[fid].table(records))
        elif not csv_path.is_file():
            raise ConfigError(f"--replot: {csv_path} does not exist; run without --replot first")
        drawn.append(str(save_figure(PLOTS[fid](read_csv(csv_path)), out / f"{fid}.png")))
    index = {
        "size": size, "figures": ids, "pngs": drawn, "replot": replot,
        "environment": environment(dev, "float32"),
        "study_wall_time_s": study_walls,
        "study_compute_time_s": {k: r.get("wall_time_s") for k, r in records.items()},
        "total_wall_time_s": time.perf_counter() - start,
        "study_device": {k: device_label(r.get("environment")) for k, r in records.items()},  # may mix machines
        "diverged": {k: [r2["summary"]["diverged_seeds"] for r2 in r.get("runs", []) if r2["summary"].get(
            "diverged_seeds")] for k, r in records.items()},
    }
    index_path = out / "index.json"
    if index_path.exists() and not replot:
        index = _merge_index(json.loads(index_path.read_text(encoding="utf-8")), index, list(FIGURES))
    if not replot or not index_path.exists():
        write_json_atomic(index_path, index)
    return index


def _merge_index(prev: dict[str, Any], new: dict[str, Any], order: list[str]) -> dict[str, Any]:
    """``new`` plus the figures and studies of ``prev`` that ``new`` did not redraw (same size only):
    ``--only`` updates its entries of an index instead of dropping the rest."""
    if prev.get("size") != new["size"]:
        return new
    figs = [f for f in order if f in new["figures"] or f in prev.get("figures", [])]
    pngs = {Path(p).stem: p for p in [*prev.get("pngs", []), *new["pngs"]]}
    out = {**new, "figures": figs, "pngs": [pngs[f] for f in figs if f in pngs]}
    for key in ("study_wall_time_s", "study_compute_time_s", "diverged", "study_device"):
        out[key] = {**prev.get(key, {}), **new[key]}
    if "note" in prev:
        out["note"] = prev["note"]
    return out
