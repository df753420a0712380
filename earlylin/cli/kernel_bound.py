"""Measure the kernel bound of docs/theory.md §4 at initialisation: ‖Θ(0) − Θ^lin‖_op vs ‖Θ^lin‖_op, over d, n, m.

For the two-layer net at its symmetric initialisation and each block (first: Θ₁ vs Ψ₁Ψ₁ᵀ, second:
Θ₂ vs Ψ₂Ψ₂ᵀ, both: Θ₁ + Θ₂ vs ΨΨᵀ), the proof bounds ‖Θ(0) − Θ^lin‖ ≲ n/d^{1+α} while ‖Θ^lin‖ ≍ n/d,
so ratio = ‖Θ − Θ^lin‖/‖Θ^lin‖ should fall like d^{−α}. Spectral norms come from matrix-free Lanczos
(:mod:`earlylin.bound`: no n×n matrix, so n = 20,000 fits), float64 throughout.

Usage:
    python -m earlylin.kernel --quick                                  # smoke run, seconds
    python -m earlylin.kernel --d 25 50 100 200 --n-scale 2 --alpha 0.5 --seeds 0 1
    python -m earlylin.kernel --d 50 --n 20000 --width 256             # the paper's Fig 1 size
    python -m earlylin.kernel --d 12 24 48 --n-scale 1 --alpha 0.5 --width-scale 16 --width-alpha 1

n is ``--n`` (one or more values) or n = c·d^{1+a} (``--n-scale c --alpha a``); m is ``--width``
(one or more even values) or m = c·d^{1+a} rounded to even (``--width-scale``, ``--width-alpha``,
which defaults to ``--alpha``). Defaults: d ∈ {25, 50, 100}, n = m = 2·d^{1.5}; ``--quick``:
d ∈ {16, 32, 64}, tolerance 1e-5 (explicit flags win).

Prints one line per (d, n, m, block) — seed means of ‖Θ−Θlin‖, ‖Θlin‖, their ratio, the off-diagonal
ratio ‖offdiag(Θ−Θlin)‖/‖Θlin‖, max |diag(Θ−Θlin)|, Lanczos steps and the worst relative residual —
then the fitted log-log exponent of the ratio vs d per block (mean ± std over seeds). Writes
``<out>/record.json`` (schema, kind "kernel_bound", config, environment, one row per (d, n, m, seed,
block), summary with ``slope_by_block``). Exit status: 0 success, 2 invalid input (nothing is
computed or written), 1 other earlylin errors, 3 some spectral norm did not reach ``--tol`` (the
record is still written, ``converged`` false in its rows), 130 Ctrl-C, 143 SIGTERM. ``--out`` must
be a writable directory (checked before any work).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from earlylin import cli
from earlylin.activations import ACTIVATION_NAMES
from earlylin.bound.config import DEFAULT_ALPHA, DEFAULT_N_SCALE, DEFAULT_WIDTH_SCALE, KernelBoundConfig
from earlylin.bound.lanczos import METHODS
from earlylin.bound.measure import run_kernel_bound
from earlylin.bound.operator import BLOCKS
from earlylin.data.synthetic import INPUT_NAMES, SIGMA_NAMES
from earlylin.runtime import progress
from earlylin.runtime.devices import DEVICES, resolve_device
from earlylin.runtime.records import write_json_atomic
from earlylin.studies.presets import KERNEL_QUICK

DEFAULT = KernelBoundConfig()
QUICK = KERNEL_QUICK


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m earlylin.kernel",
        description="Spectral norm of Θ(0) − Θ^lin against ‖Θ^lin‖ for the two-layer net (docs/theory.md §4).",
    )
    a = p.add_argument
    a("--d", type=int, nargs="+", default=None,
      help=f"input dimensions [default {' '.join(map(str, DEFAULT.ds))}; --quick {' '.join(map(str, QUICK['ds']))}]")
    a("--n", type=int, nargs="+", default=None, help="fixed sample size(s) n (exclusive with --n-scale)")
    a("--n-scale", type=float, default=None, help=f"n = c·d^(1+alpha): the c [default {DEFAULT_N_SCALE:g}]")
    a("--alpha", type=float, default=None,
      help=f"exponent α of n = c·d^(1+α) (and of m unless --width-alpha), in [0, 2] [default {DEFAULT_ALPHA:g}]")
    a("--width", type=int, nargs="+", default=None, help="fixed even width(s) m (exclusive with --width-scale)")
    a("--width-scale", type=float, default=None,
      help=f"m = c·d^(1+width_alpha), rounded to even: the c [default {DEFAULT_WIDTH_SCALE:g}]")
    a("--width-alpha", type=float, default=None, help="exponent of the width rule [default: --alpha]")
    a("--activation", default=DEFAULT.activation,
      help=f"φ: one of {', '.join(ACTIVATION_NAMES)} [default {DEFAULT.activation}]")
    a("--sigma", default=DEFAULT.sigma,
      help=f"input covariance spectrum: one of {', '.join(SIGMA_NAMES)} [default {DEFAULT.sigma}]")
    a("--inputs", default=DEFAULT.inputs,
      help=f"entries of x̄: one of {', '.join(INPUT_NAMES)} [default {DEFAULT.inputs}]")
    a("--blocks", nargs="+", default=list(DEFAULT.blocks),
      help=f"kernel blocks, from {', '.join(BLOCKS)} [default: all]")
    a("--seeds", type=int, nargs="+", default=list(DEFAULT.seeds),
      help="seeds (data and init), batched [default 0 1]")
    a("--method", default=DEFAULT.method,
      help=f"spectral-norm solver: {', '.join(METHODS)} (lanczos: batched torch Lanczos; eigsh: scipy "
      f"ARPACK, one problem at a time) [default {DEFAULT.method}]")
    a("--tol", type=float, default=None,
      help=f"relative Lanczos residual abs(β_k s_k)/abs(θ) to stop at [default {DEFAULT.tol:g}; "
      f"--quick {QUICK['tol']:g}]")
    a("--max-iter", type=int, default=DEFAULT.max_iter,
      help=f"most Lanczos steps per spectral norm [default {DEFAULT.max_iter}]")
    a("--chunk", type=int, default=None, help="neurons per chunk of the matvec [default: auto, ≈ 64 MB buffers]")
    a("--max-gb", type=float, default=DEFAULT.max_gb,
      help=f"refuse grid points whose estimated memory (GB) exceeds this [default {DEFAULT.max_gb:g}]")
    a("--device", default=DEFAULT.device,
      help=f"one of {', '.join(DEVICES)} (auto: CUDA if available) [default {DEFAULT.device}]")
    a("--out", type=Path, default=Path("runs/kernel"), help="directory for record.json [default runs/kernel]")
    a("--quick", action="store_true", help="small default grid and looser tolerance (≤ 30 s on 2 CPU cores)")
    a("--quiet", action="store_true", help="no progress bar or lines on stderr")
    return p


def config_from_args(args: argparse.Namespace) -> KernelBoundConfig:
    preset: dict[str, Any] = dict(QUICK) if args.quick else {}
    given = cli.config_fields(args, KernelBoundConfig, {"ds": "d", "ns": "n", "widths": "width"})
    return KernelBoundConfig(**{**preset, **given})


def _fmt(x: float | None, spec: str = ".4g") -> str:
    return "n/a" if x is None or not np.isfinite(x) else format(x, spec)


def format_table(record: dict[str, Any]) -> str:
    """Seed-mean table per (d, n, m, block), then the fitted exponents of the ratio vs d."""
    rows, cfg = record["rows"], record["config"]
    head = (f"{'d':>6} {'n':>7} {'m':>7} {'block':>6} {'‖Θ−Θlin‖':>11} {'‖Θlin‖':>11} {'ratio':>9} "
            f"{'offdiag':>9} {'max|diag|':>9} {'steps':>5} {'residual':>9}")
    lines = [
        f"φ={cfg['activation']} Σ={cfg['sigma']} seeds={cfg['seeds']} solver={cfg['method']} tol={cfg['tol']:g} "
        f"(seed means; offdiag = ‖offdiag(Θ−Θlin)‖/‖Θlin‖)",
        head,
    ]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["d"], r["n"], r["m"], r["block"]), []).append(r)
    for (d, n, m, block), rs in groups.items():
        def mean(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return float(np.mean([r[key] for r in rs]))

        worst = max(max(r["residual"], r["offdiag_residual"]) for r in rs)
        flag = "" if all(r["converged"] and r["offdiag_converged"] for r in rs) else " NOT CONVERGED"
        lines.append(
            f"{d:>6} {n:>7} {m:>7} {block:>6} {mean('diff_norm'):>11.4g} {mean('lin_norm'):>11.4g} "
            f"{mean('ratio'):>9.4f} {mean('offdiag_ratio'):>9.4f} {mean('diag_max_abs'):>9.4f} "
            f"{max(r['iterations'] for r in rs):>5} {worst:>9.1e}{flag}"
        )
    summary = record["summary"]
    for label, key in (("ratio", "slope_by_block"), ("offdiag ratio", "offdiag_slope_by_block")):
        for block, s in summary[key].items():
            if s["mean"] is None:
                lines.append(f"log-log exponent of the {label} vs d [{block}]: n/a (one d only)")
                continue
            held = [f"{', '.join(s['tied_to_d'])} tied to d"] if s["tied_to_d"] else []
            held += [f"{', '.join(s['fixed'])} fixed"] if s["fixed"] else []
            fit = summary["exponents_by_block"][block][s["metric"]]
            others = [f"{c} {_fmt(fit['mean'][c], '.3f')} ± {_fmt(fit['std'][c], '.3f')}"
                      for c in fit["columns"] if c != "d"]
            held += [f"fitted jointly with {', '.join(others)}"] if others else []
            lines.append(
                f"log-log exponent of the {label} vs d [{block}]: {_fmt(s['mean'], '.3f')} ± {_fmt(s['std'], '.3f')} "
                f"(over seeds; of the seed mean {_fmt(s['of_seed_mean'], '.3f')}; {'; '.join(held)})"
            )
    lines.append(f"all converged: {summary['all_converged']}  max residual: {_fmt(summary['max_residual'], '.1e')}  "
                 f"wall: {summary['wall_time_s']:.1f}s")
    return "\n".join(lines)


@cli.command(hint=None)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    resolve_device(cfg.device)
    out = cli.probe_dir(args.out, "--out")
    with cli.locked_dir(out, "--out"):
        grid = cfg.grid()
        progress.say(f"kernel bound: {len(grid)} grid point(s) × {len(cfg.seeds)} seed(s), blocks "
                     f"{', '.join(cfg.blocks)}; spectral norms by {cfg.method}…", not args.quiet)
        with progress.bar(total=len(grid), desc="grid points", unit="point", enabled=not args.quiet) as shown:

            def report_point(msg: str) -> None:
                progress.say(msg)
                shown.update(1)

            record = run_kernel_bound(cfg, progress=None if args.quiet else report_point)
        record["argv"] = sys.argv[1:] if argv is None else list(argv)
        path = write_json_atomic(out / "record.json", record)
        print(format_table(record))
        print(f"record: {path}")
        if not record["summary"]["all_converged"]:
            print("earlylin: some spectral norms did not reach --tol (raise --max-iter)", file=sys.stderr)
            return 3
        return 0
