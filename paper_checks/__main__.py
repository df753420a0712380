"""Run every paper check and write the report.

Usage (from the repository root):
    python -m paper_checks --device cuda          # paper size; writes runs/paper_checks/REPORT.md
    python -m paper_checks --quick                # CPU size; writes runs/paper_checks-quick/REPORT.md
    python -m paper_checks --records figures/records --figures figures --report paper_checks/REPORT.md
                                                  # judge the committed records, run nothing, update the
                                                  # committed report
    python -m paper_checks --only fig1_window kernel_bound

The defaults never overwrite committed results: the report goes to ``runs/paper_checks/REPORT.md``
(``--quick``: ``runs/paper_checks-quick/REPORT.md``) unless ``--report`` is given, and the study
records of a run go beside the figures it links, into ``<figures>/records/`` (``--figures``; default
``runs/figures/``, ``--quick``: ``runs/figures-quick/``, the folders ``python -m earlylin.figures``
writes by default).

Exit status: 0 when every check ran (whatever its verdict), 2 invalid input (checked before any work:
check names, flags ``--records`` would ignore, outputs writable), 1 other errors, 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from earlylin import cli
from earlylin.errors import ConfigError, DataError
from earlylin.runtime.devices import DEVICES, resolve_device
from earlylin.runtime.records import (
    Cache,
    default_cache_dir,
    device_label,
    environment,
    write_bytes_atomic,
    write_json_atomic,
)
from earlylin.studies import check_memory, get_study, load_records
from paper_checks.checks import CHECK_STUDIES, CHECKS, CheckResult
from paper_checks.verdicts import ALL_FAIL, ALL_HOLD, SOME, UNDECIDED, claim_classes


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m paper_checks", description="Check each claim of the paper.")
    p.add_argument("--quick", action="store_true", help="CPU size: verdicts are about this size, not the paper's")
    p.add_argument("--only", nargs="+", default=None, metavar="CHECK", help=f"checks: {', '.join(CHECKS)}")
    p.add_argument("--device", choices=DEVICES, default=None, help="auto: CUDA if available, else CPU (default: auto)")
    p.add_argument("--records", type=Path, default=None,
                   help="folder of saved study records (<study>.json, as written by python -m earlylin.figures "
                   "into <out>/records); nothing is run")
    p.add_argument("--report", type=Path, default=None,
                   help="report path [default: runs/paper_checks/REPORT.md; --quick: "
                   "runs/paper_checks-quick/REPORT.md]")
    p.add_argument("--figures", type=Path, default=None,
                   help="folder of the figures to link [default: runs/figures/; --quick: runs/figures-quick/]")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help=f"cache of runs, studies and checkpoints (default: {default_cache_dir()})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def format_table(results: list[CheckResult]) -> str:
    """One line per check (verdict, summary of its choice table), then one indented line per choice."""
    lines = [f"{'check':<24} {'verdict':<13} summary / choice: measured"]
    for r in results:
        lines.append(f"{r.name:<24} {r.verdict:<13} {r.summary}")
        if len(r.rows) > 1:
            lines += [f"{'':<24} {row.verdict:<13} {row.choice}: {row.measured}" for row in r.rows]
    return "\n".join(lines)


def headline(results: list[CheckResult]) -> str:
    """Claims by class (every choice holds / some hold, some fail / every choice fails / inconclusive), then rows."""
    claims = claim_classes(results)
    n = {c: sum(e["class"] == c for e in claims.values()) for c in (ALL_HOLD, SOME, ALL_FAIL, UNDECIDED)}
    rows = [row.verdict for r in results for row in r.rows]
    return (f"Claims ({len(claims)}): **{n[ALL_HOLD]} hold for every choice**, **{n[SOME]} hold for some choices "
            f"and fail for others**, **{n[ALL_FAIL]} fail for every choice**, {n[UNDECIDED]} inconclusive (a claim "
            "pools the rows of its checks; inconclusive rows do not count toward its class). "
            f"Rows ({len(rows)}, one per check and choice of the details the paper does not give): "
            f"{rows.count('holds')} hold, {rows.count('fails')} fail, {rows.count('inconclusive')} inconclusive.")


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _study_time(rec: dict[str, Any]) -> str:
    """The study's wall time, or, when every run came from the cache, the runs' recorded training time."""
    runs = rec.get("runs") or []
    if rec.get("wall_time_s") is None:
        return "cached"
    if runs and all(r.get("cached") for r in runs):
        train = sum(max(m.get("wall_time_s") or 0.0 for m in r["per_seed"].values()) for r in runs)
        return f"runs from the cache, trained in {train:.0f} s"
    return f"{rec['wall_time_s']:.1f} s"


def render_report(results: list[CheckResult], records: dict[str, dict[str, Any]], size: str, command: str,
                  env: dict[str, Any], figures: Path, report_path: Path, wall: float,
                  unrecorded: tuple[str, ...] = ()) -> str:
    """The Markdown report; ``unrecorded``: the checks left out for want of a record (listed as open)."""
    names = dict.fromkeys(device_label(rec.get("environment")) for rec in records.values())
    devices = (f"{env.get('device_name')} ({env.get('device')})" if len(names) <= 1
               else " and ".join(names) + " (per study below)")
    lines = [
        "# Paper checks",
        "",
        f"Command: `{command}` — size **{size}**, device {devices}, "
        f"torch {env.get('torch')}, earlylin {env.get('earlylin')}, {wall:.0f} s wall.",
        "",
        headline(results),
    ]
    if size == "quick":
        lines += ["", "**Quick size**: these runs are CPU-sized (small n, d, m, few steps). Their verdicts say "
                  "what happens at this size, not whether the paper's claims hold at the paper's size."]
    lines += ["", "## Claims", "", "| claim | checks | class | rows: hold / fail / inconclusive |", "|---|---|---|---|"]
    for cid, entry in claim_classes(results).items():
        counts = entry["rows"]
        lines.append(f"| `{cid}` | {', '.join(f'`{c}`' for c in entry['checks'])} | **{entry['class']}** | "
                     f"{counts['holds']} / {counts['fails']} / {counts['inconclusive']} |")
    open_items = [f"`{n}` (no record of {', '.join(f'`{s}`' for s in CHECK_STUDIES[n] if s not in records)})"
                  for n in unrecorded]
    if open_items:
        lines += ["", "Not run (open): " + "; ".join(open_items) + "."]
    lines += ["", "## Checks", "", "| check | claim | paper | unknown details | criterion | summary | verdict |",
              "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| `{r.name}` | {_md(r.claim)} | {_md(r.paper)} | {_md('; '.join(r.unknowns))} | "
                     f"{_md(r.criterion)} | {_md(r.summary)} | **{r.verdict}** |")
    lines += ["", "## Choice tables", ""]
    for r in results:
        lines += [f"### `{r.name}` — {r.verdict}", "", f"Unknown details: {'; '.join(r.unknowns)}. "
                  f"Summary: {r.summary}.", "", "| choice | measured | verdict |", "|---|---|---|"]
        lines += [f"| {_md(row.choice)} | {_md(row.measured)} | **{row.verdict}** |" for row in r.rows]
        lines.append("")
    lines += ["", "## Configs", ""]
    for study, rec in records.items():
        where = device_label(rec.get("environment"))
        lines.append(f"- `{study}` ({rec['kind']}, {where}, {_study_time(rec)}): "
                     f"`{json.dumps(rec['spec'], sort_keys=True)}`")
    pngs = sorted(figures.glob("*.png")) if figures.is_dir() else []
    if pngs:
        lines += ["", "## Figures", ""]
        for png in pngs:  # linked relative to the report, wherever both are
            rel = Path(os.path.relpath(png.resolve(), report_path.resolve().parent))
            lines.append(f"- [{png.stem}]({rel.as_posix()})")
    lines += ["", "Criteria and thresholds: `paper_checks/checks.py`, `paper_checks/rows.py` (Fig 2, Fig 3). Studies: "
              "`earlylin/studies/__init__.py`, their sizes: `earlylin/studies/presets.py`.", ""]
    return "\n".join(lines)


def check_args(args: argparse.Namespace, names: list[str], report_path: Path, figures: Path) -> Path | None:
    """Refuse, before any work, unknown checks, flags that --records or --no-cache would ignore and
    outputs that cannot be written; return the cache dir (None: off or unused)."""
    if bad := [n for n in names if n not in CHECKS]:
        raise ConfigError(f"--only {' '.join(bad)}: unknown check(s); valid: {', '.join(CHECKS)}")
    if args.no_cache and args.cache_dir is not None:
        raise ConfigError("--cache-dir with --no-cache: the cache is off; give one of them")
    if report_path.suffix == ".json":
        raise ConfigError(f"--report {report_path}: the report is Markdown and its results go beside it as .json; "
                          "name a .md file")
    cli.probe_file(report_path, "--report")
    if args.records is not None:
        ignored = cli.given(args, {"device": "--device", "cache_dir": "--cache-dir", "no_cache": "--no-cache"})
        if ignored:
            them = "they" if ignored[1:] else "it"
            raise ConfigError(f"{', '.join(ignored)} with --records: nothing is run, so {them} would be ignored; "
                              "leave it out or drop --records")
        if not args.records.is_dir():
            raise ConfigError(f"--records {args.records}: not a folder; name the records folder written by "
                              "python -m earlylin.figures (<out>/records)")
        if figures.exists() and not figures.is_dir():
            raise ConfigError(f"--figures {figures}: is a file, not a folder")
        return None
    resolve_device(args.device or "auto")
    check_memory(list(dict.fromkeys(s for n in names for s in CHECK_STUDIES[n])), "quick" if args.quick else "paper",
                 args.device or "auto")  # every run of every study fits, before the first starts
    cli.probe_dir(figures / "records", "--figures")
    return None if args.no_cache else cli.probe_dir(args.cache_dir or default_cache_dir(), "--cache-dir")


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    size = "quick" if args.quick else "paper"
    names = args.only or list(CHECKS)
    report_path = args.report or Path(f"runs/paper_checks{'-quick' if args.quick else ''}/REPORT.md")
    figures = args.figures or Path("runs/figures-quick" if args.quick else "runs/figures")
    cache_dir = check_args(args, names, report_path, figures)
    with cli.locked_dir(report_path.parent, "--report"):
        device = resolve_device(args.device or "auto")
        studies = list(dict.fromkeys(s for n in names for s in CHECK_STUDIES[n]))
        start = time.perf_counter()
        missing: list[str] = []
        if args.records is not None:
            records, missing = load_records(studies, args.records, size)
            names = [n for n in names if not set(CHECK_STUDIES[n]) & set(missing)]
            if not names:
                raise DataError(f"--records {args.records}: no record of {', '.join(missing)}; run python -m "
                                f"earlylin.figures {'--quick ' if size == 'quick' else ''}first")
        else:
            cache = Cache(cache_dir)
            records = {s: get_study(s, size, args.device or "auto", cache, progress=not args.quiet) for s in studies}
            for s, rec in records.items():  # beside the figures' records, so that --records can judge them again
                write_json_atomic(figures / "records" / f"{s}.json", rec)
        results = [CHECKS[n](records) for n in names]
        wall = time.perf_counter() - start
        env = next(iter(records.values())).get("environment") or environment(device, "float32")
        command = "python -m paper_checks " + " ".join(sys.argv[1:] if argv is None else argv)
        not_run = [n for n in (args.only or list(CHECKS)) if n not in names]
        text = render_report(results, records, size, command.strip(), env, figures, report_path, wall, tuple(not_run))
        if not_run:  # checks whose records are missing from --records: named, never silently dropped
            text += "\n## Not run\n\n" + "".join(
                f"- `{n}`: no record of {', '.join(s for s in CHECK_STUDIES[n] if s in missing)} in "
                f"`{args.records}` (make it with `python -m earlylin.figures`; paper size may need a GPU)\n"
                for n in not_run)
        write_bytes_atomic(report_path, text.encode("utf-8"))
        write_json_atomic(report_path.with_suffix(".json"), {"size": size, "claims": claim_classes(results),
                                                             "results": [r.as_dict() for r in results]})
        print(format_table(results))
        for n in not_run:
            print(f"{n:<24} {'not run':<13} no record of {', '.join(s for s in CHECK_STUDIES[n] if s in missing)}")
        print(f"report: {report_path}")
        return 0


if __name__ == "__main__":
    cli.exit(main())
