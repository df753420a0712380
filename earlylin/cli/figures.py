"""``python -m earlylin.figures``: regenerate every figure (PNG + CSV table) from cached or saved study records.

Usage:
    python -m earlylin.figures --quick                  # every figure at CPU size, into runs/figures-quick/
    python -m earlylin.figures --device cuda            # paper size, into runs/figures/ (one GPU)
    python -m earlylin.figures --device cuda --out figures   # the same, replacing the committed figures/
    python -m earlylin.figures --only fig1a fig1c       # some figures
    python -m earlylin.figures --replot                 # redraw from the saved CSV tables, run nothing
    python -m earlylin.figures --records figures/records --out figures --only fig3_grid
                                                        # tables and figures from saved study records, run nothing

The defaults never overwrite the committed ``figures/``: pass ``--out figures`` to do so. For each
figure id of :data:`earlylin.figures.tables.TABLES`: the studies it needs (:mod:`earlylin.studies`, cached
per (config, seed) and per study) are loaded or run and saved as ``<out>/records/<study>.json``; its
table is written as ``<out>/<id>.csv``, read back from disk and drawn by :data:`earlylin.figures.plots.PLOTS`
into ``<out>/<id>.png``, so a figure shows only what its table holds. ``<out>/index.json`` lists the
figures, the size, the device and the wall time of each study. Exit status: 0 success, 2 invalid
input (checked before any work: figure ids, flags --replot or --records would ignore, missing records,
``--out``/``--cache-dir`` writable), 3 a study had diverged seeds (figures still drawn), 1 other errors (a
malformed record), 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from earlylin import cli, figures, studies
from earlylin.errors import ConfigError
from earlylin.figures import FIGURES
from earlylin.figures.tables import TABLES
from earlylin.runtime.devices import DEVICES, resolve_device
from earlylin.runtime.records import default_cache_dir


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m earlylin.figures",
                           description="Regenerate every figure (PNG + CSV table) from cached runs.")
    p.add_argument("--quick", action="store_true", help="CPU size (verdicts of paper_checks may be inconclusive)")
    p.add_argument("--only", nargs="+", default=None, metavar="ID", help=f"figure ids: {', '.join(FIGURES)}")
    p.add_argument("--device", choices=DEVICES, default=None, help="auto: CUDA if available, else CPU (default: auto)")
    p.add_argument("--out", type=Path, default=None, help="output folder [default: runs/figures/, --quick: "
                   "runs/figures-quick/]")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help=f"cache of runs, studies and checkpoints (default: {default_cache_dir()})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--replot", action="store_true", help="draw from the CSV tables in --out only; run nothing")
    p.add_argument("--records", type=Path, default=None,
                   help="folder of saved study records (<study>.json, as written into <out>/records): make the "
                   "tables and figures from them; run nothing")
    p.add_argument("--max-gb", type=float, default=None, help="refuse a study with a run whose estimated memory "
                   "(GiB) exceeds this (default: the memory available now)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def check_args(args: argparse.Namespace, ids: list[str], out: Path) -> Path | None:
    """Refuse, before any work, unknown ids, flags that --replot or --no-cache would ignore, missing tables
    for --replot and unwritable outputs; return the cache dir (None: off)."""
    if bad := [i for i in ids if i not in FIGURES]:
        raise ConfigError(f"--only {' '.join(bad)}: unknown figure id(s); valid: {', '.join(FIGURES)}")
    if args.no_cache and args.cache_dir is not None:
        raise ConfigError("--cache-dir with --no-cache: the cache is off; give one of them")
    if args.replot and args.records is not None:
        raise ConfigError("--replot with --records: --replot draws from the CSV tables, --records makes them from "
                          "saved records; give one of them")
    if args.replot or args.records is not None:
        flag = "--replot" if args.replot else "--records"
        ignored = cli.given(args, {"device": "--device", "cache_dir": "--cache-dir", "no_cache": "--no-cache",
                                   "max_gb": "--max-gb"})
        if ignored:
            them = "they" if ignored[1:] else "it"
            raise ConfigError(f"{', '.join(ignored)} with {flag}: nothing is run, so {them} would be ignored; "
                              f"leave it out or drop {flag}")
    if args.records is not None and not args.records.is_dir():
        raise ConfigError(f"--records {args.records}: not a folder; name a records folder written by "
                          "python -m earlylin.figures (<out>/records)")
    if args.replot:
        for fid in ids:
            if not (out / f"{fid}.csv").is_file():
                raise ConfigError(f"--replot: {out / f'{fid}.csv'} does not exist; run without --replot first")
    else:
        resolve_device(args.device or "auto")
    if not args.replot and args.records is None:  # every run of every study fits, before the first starts
        studies.check_memory(list(dict.fromkeys(s for i in ids for s in TABLES[i].studies)),
                             "quick" if args.quick else "paper", args.device or "auto", args.max_gb)
    cli.probe_dir(out, "--out")
    if args.replot or args.no_cache or args.records is not None:
        return None
    return cli.probe_dir(args.cache_dir or default_cache_dir(), "--cache-dir")


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    size = "quick" if args.quick else "paper"
    out = args.out or (Path("runs/figures-quick") if args.quick else Path("runs/figures"))
    ids = args.only or list(FIGURES)
    cache_dir = check_args(args, ids, out)
    saved = None
    if args.records is not None:
        saved, missing = studies.load_records(list(dict.fromkeys(s for i in ids for s in TABLES[i].studies)),
                                              args.records, size)
        if missing:
            raise ConfigError(f"--records {args.records}: no record of {', '.join(missing)} ({size} size); "
                              "make it with python -m earlylin.figures, or leave those figures out of --only")
    with cli.locked_dir(out, "--out"):
        index = figures.regenerate(ids, size, args.device or "auto", out, cache_dir, args.replot,
                                   progress=not args.quiet, saved=saved, max_gb=args.max_gb)
    for fid in ids:
        print(out / f"{fid}.png")
    listed = "" if args.replot else f"; {out / 'index.json'} lists {len(index['pngs'])}"
    print(f"{len(ids)} figure(s) drawn ({size} size) in {index['total_wall_time_s']:.1f}s wall{listed}")
    if any(index["diverged"].values()):
        print(f"earlylin: some seeds diverged: {index['diverged']}", file=sys.stderr)
        return 3
    return 0
