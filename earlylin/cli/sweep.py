"""``python -m earlylin.sweep``: the sweep command's flags, its table and its exit status.

The grid, its points and the backends are :mod:`earlylin.sweep`; this module parses the command line
into a call of :func:`earlylin.sweep.sweep` and prints the per-point table. Exit status: 0 success,
2 invalid input (before any work), 3 some rows failed, 4 every row failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from earlylin import cli
from earlylin.errors import ConfigError, EarlylinError, report
from earlylin.runtime.records import default_cache_dir
from earlylin.sweep import MAX_POINTS, SweepResult, sweep
from earlylin.sweep.backends import BACKENDS
from earlylin.sweep.spec import SWEEP_FAMILIES, parse_assignments


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m earlylin.sweep", description="Run a grid of configs, locally or "
                                "on a Ray cluster; one row per point and seed.")
    a = p.add_argument
    a("--family", choices=SWEEP_FAMILIES, default="two_layer", help="experiment family [two_layer]")
    a("--grid", nargs="+", required=True, metavar="FIELD=V1,V2", help="axes of the grid: any config field, or "
      "m_over_d (width = m/d·d), n_exponent / n_scale, steps_per_window (steps = ⌈k·T⌉)")
    a("--set", nargs="+", default=[], dest="fixed", metavar="FIELD=VALUE", help="fields fixed at every point")
    a("--n-exponent", type=float, default=None, help="n = round(n_scale·d^exponent) at every point")
    a("--n-scale", type=float, default=None, help="the scale of --n-exponent [1]")
    a("--seeds", type=int, nargs="+", default=[0], help="seeds of every point, trained as one batch")
    a("--backend", choices=BACKENDS, default="local", help="local: in this process; ray: one Ray task per point")
    a("--ray-address", default=None, help="a running Ray cluster (e.g. auto); unset: start a local Ray")
    a("--max-retries", type=int, default=2, help="Ray: retries of a task whose worker process died")
    a("--max-points", type=int, default=MAX_POINTS, help="refuse a grid of more points than this")
    a("--max-gb", type=float, default=None, help="refuse a grid with a point whose estimated memory (GiB) exceeds "
      "this (default: the memory available now; with --backend ray only a limit given is checked)")
    a("--out", type=Path, default=Path("runs/sweep"), help="folder for sweep.csv and sweep.json")
    a("--cache-dir", type=Path, default=default_cache_dir(), help="per-(config, seed) cache (shared by verify)")
    a("--no-cache", action="store_true", help="neither read nor write the cache")
    a("--quiet", action="store_true", help="no progress bar")
    return p


def format_table(result: SweepResult) -> str:
    """Per point: its grid values, seed-mean early maxima, escape steps, cache hits and error."""
    t, axes = result.table, list(result.record["grid"])
    lines = [" ".join(f"{a:>10}" for a in axes) + f" {'max MSE t≤T':>12} {'max rel MSE':>12} {'escape':>12} cached"]
    for i in sorted(set(t["point"])):
        idx = [j for j, p in enumerate(t["point"]) if p == i]
        ok = [j for j in idx if t["error"][j] is None]
        head = " ".join(f"{t[a][idx[0]]!s:>10}" for a in axes)
        if not ok:
            lines.append(f"{head}  error: {t['error'][idx[0]]}")
            continue
        mse, rel = (sum(t[k][j] for j in ok) / len(ok) for k in ("max_mse_early", "max_rel_mse_early"))
        esc = ",".join(str(t["escape_step"][j]) for j in ok)
        lines.append(f"{head} {mse:>12.4g} {rel:>12.4g} {esc:>12} {sum(bool(t['cached'][j]) for j in idx)}/{len(idx)}"
                     + (f"  ({len(idx) - len(ok)} seed(s) failed)" if len(ok) < len(idx) else ""))
    return "\n".join(lines)


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        grid = parse_assignments(args.grid, args.family, "--grid", many=True)
        fixed = parse_assignments(args.fixed, args.family, "--set", many=False)
        for name, value in (("n_exponent", args.n_exponent), ("n_scale", args.n_scale)):
            if value is not None:
                if name in fixed or name in grid:
                    raise ConfigError(f"--{name.replace('_', '-')}: {name} is also given in --grid/--set")
                fixed[name] = value
        cli.probe_dir(args.out, "--out")  # before any work: outputs that cannot be written are refused
        if not args.no_cache:
            cli.probe_dir(args.cache_dir, "--cache-dir")
        result = sweep(grid, family=args.family, fixed=fixed, seeds=args.seeds, backend=args.backend,
                       ray_address=args.ray_address, out=args.out, cache_dir=None if args.no_cache else args.cache_dir,
                       progress=not args.quiet, max_retries=args.max_retries, max_points=args.max_points,
                       max_gb=args.max_gb,
                       argv=sys.argv[1:] if argv is None else list(argv))
    except EarlylinError as err:
        return report(err)
    s = result.summary
    print(format_table(result))
    print(f"{s['points']} point(s) × {len(result.record['seeds'])} seed(s): {s['cache_hits']} row(s) from the "
          f"cache, {s['computed']} computed, {s['error_rows']} failed; {s['wall_time_s']:.1f}s wall ({args.backend})")
    print(f"table: {args.out / 'sweep.csv'}\nrecord: {args.out / 'sweep.json'}")
    if s["other_code"]:
        print(f"earlylin: note: some rows were computed by other code ({', '.join(s['other_code'])})", file=sys.stderr)
    if s["error_rows"]:
        print("earlylin: some points failed (see the error column)", file=sys.stderr)
        return 4 if s["error_rows"] == s["rows"] else 3
    return 0
