"""Figures drawn from saved records and tables only, and the command that regenerates them all.

Usage:
    python -m earlylin.figures --quick                  # every figure at CPU size (minutes)
    python -m earlylin.figures --device cuda            # paper size, into figures/ (one GPU)
    python -m earlylin.figures --only fig1a fig1c       # some figures
    python -m earlylin.figures --replot                 # redraw from the saved CSV tables, run nothing

For each figure id of :data:`earlylin.paper_figures.FIGURES`: the studies it needs
(:mod:`earlylin.suite`, cached per (config, seed) and per study) are loaded or run and saved as
``<out>/records/<study>.json``; its table is written as ``<out>/<id>.csv``, read back from disk and
drawn into ``<out>/<id>.png``, so a figure shows only what its table holds. ``<out>/index.json``
lists the figures, the size, the device and the wall time of each study. Exit status: 0 success,
2 invalid input, 3 a study had diverged seeds (figures still drawn), 1 other errors.

:func:`plot_verify` draws the verifier's figure from a ``record.json`` dict: (a) train/test loss of
the net, f^lin and the stripped model over steps (log axis, Fig 1a); (b) test MSE between net and
f^lin (and the stripped model) with the early window T and the escape step; (c) with several d,
the early-window maximum of the relative MSE against d (Fig 1c) — with one d, the outputs of five
test points, net against f^lin (Fig 1b); (d) the test residual split onto V_lin and V_lin⊥ (Fig 3a).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from earlylin.records import write_bytes_atomic


def seed_mean(run: dict[str, Any], key: str) -> np.ndarray:
    """Seed-mean curve of one metric of one run (null → NaN, ignored in the mean)."""
    rows = [[np.nan if v is None else v for v in m[key]] for m in run["per_seed"].values()]
    arr = np.array(rows, dtype=float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps (relative MSE at step 0)
        return np.nanmean(arr, axis=0) if np.isfinite(arr).any() else arr[0]


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """PNG written atomically, figure closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buf.getvalue())


def plot_verify(record: dict[str, Any], path: str | Path) -> Path:
    runs = record["runs"]
    run = max(runs, key=lambda r: r["config"]["d"]) if len(runs) > 1 else runs[0]
    seed0 = next(iter(run["per_seed"].values()))
    steps = np.array(seed0["steps"], dtype=float)
    x = np.maximum(steps, 0.5)  # step 0 drawn at 0.5 on the log axis
    s = run["summary"]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.2))

    ax = axes[0]
    for key, label, style in (
        ("train_loss_net", "net (train)", "C0-"),
        ("test_loss_net", "net (test)", "C0--"),
        ("train_loss_lin", "f_lin (train)", "C1-"),
        ("test_loss_lin", "f_lin (test)", "C1--"),
        ("test_loss_stripped", "stripped (test)", "C2:"),
    ):
        ax.plot(x, seed_mean(run, key), style, label=label)
    ax.set(xscale="log", xlabel="step", ylabel="loss (1/2n)Σ(f−y)²", title=f"(a) loss, d={run['config']['d']}")
    ax.axvline(s["early_window_steps"], color="gray", lw=0.8)
    ax.legend(fontsize=8)

    ax = axes[1]
    later = steps >= 1  # the MSE at step 0 is rounding noise; keep it off the log axis
    ax.plot(x[later], seed_mean(run, "test_mse")[later], "C3-", label="MSE(net, f_lin) test")
    ax.plot(x[later], seed_mean(run, "test_mse_stripped")[later], "C2:", label="MSE(net, stripped) test")
    ax.axvline(s["early_window_steps"], color="gray", lw=0.8, label=f"T = {s['early_window_steps']}")
    if s["escape_step"] is not None:
        ax.axvline(s["escape_step"], color="C3", lw=0.8, ls="--", label=f"escape {s['escape_step']}")
    ax.set(xscale="log", yscale="log", xlabel="step", ylabel="MSE", title="(b) net vs linear model")
    ax.legend(fontsize=8)

    ax = axes[2]
    if "by_d" in record["summary"]:
        by_d = record["summary"]["by_d"]
        ds = np.array([b["d"] for b in by_d], dtype=float)
        per_seed = np.array([b["max_rel_test_mse_early_per_seed"] for b in by_d], dtype=float)
        ax.plot(ds, per_seed, "o", color="C0", alpha=0.35, ms=4)
        ax.plot(ds, per_seed.mean(axis=1), "C0-o", label="seed mean")
        sl = record["summary"]["slope"]
        ax.set(xscale="log", yscale="log", xlabel="d", ylabel="max rel MSE, t ≤ T",
               title=f"(c) closeness vs d, slope {sl['mean']:.2f} ± {sl['std']:.2f}")
        ax.legend(fontsize=8)
    else:
        net, lin = np.array(seed0["logits_net"], float), np.array(seed0["logits_lin"], float)
        for j in range(net.shape[1]):
            ax.plot(x, net[:, j], f"C{j}-", lw=1.2)
            ax.plot(x, lin[:, j], f"C{j}--", lw=1.2)
        ax.set(xscale="log", xlabel="step", ylabel="output", title="(b′) 5 test points: net — , f_lin --")
    ax = axes[3]
    for who, style in (("net", "C0-"), ("lin", "C1--")):
        ax.plot(x, seed_mean(run, f"test_res_perp_{who}"), style, label=f"{who}: V_lin⊥ part")
        ax.plot(x, seed_mean(run, f"test_res_par_{who}"), style[:2] + ":", label=f"{who}: V_lin part")
    ax.set(xscale="log", xlabel="step", ylabel="‖P(f−y)‖²/n, ‖(I−P)(f−y)‖²/n", title="(d) test residual split")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def build_parser() -> argparse.ArgumentParser:
    from earlylin.config import DEVICES
    from earlylin.paper_figures import FIGURES
    from earlylin.records import default_cache_dir

    p = argparse.ArgumentParser(prog="python -m earlylin.figures",
                                description="Regenerate every figure (PNG + CSV table) from cached runs.")
    p.add_argument("--quick", action="store_true", help="CPU size (verdicts of paper_checks may be inconclusive)")
    p.add_argument("--only", nargs="+", default=None, metavar="ID", help=f"figure ids: {', '.join(FIGURES)}")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto: CUDA if available, else CPU")
    p.add_argument("--out", type=Path, default=None, help="output folder [default: figures/, --quick: "
                   "runs/figures-quick/]")
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="cache of runs and studies")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    p.add_argument("--replot", action="store_true", help="draw from the CSV tables in --out only; run nothing")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def regenerate(
    ids: list[str], size: str, device: str, out: Path, cache_dir: Path | None, replot: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Load or run the studies of ``ids``, write records and tables, draw every PNG from its CSV."""
    from earlylin import suite
    from earlylin.config import resolve_device
    from earlylin.errors import ConfigError
    from earlylin.paper_figures import FIGURES
    from earlylin.records import Cache, device_label, environment, read_csv, write_csv_atomic, write_json_atomic

    bad = [i for i in ids if i not in FIGURES]
    if bad:
        raise ConfigError(f"--only {' '.join(bad)}: unknown figure id(s); valid: {', '.join(FIGURES)}")
    dev = resolve_device(device)
    start = time.perf_counter()
    records: dict[str, dict[str, Any]] = {}
    study_walls: dict[str, float] = {}
    if not replot:
        cache = Cache(cache_dir)
        for study in dict.fromkeys(s for i in ids for s in FIGURES[i].studies):
            t0 = time.perf_counter()
            records[study] = suite.get_study(study, size, device, cache, progress=progress)
            study_walls[study] = time.perf_counter() - t0
            write_json_atomic(out / "records" / f"{study}.json", records[study])
            if progress:
                print(f"[{study}] done in {study_walls[study]:.1f}s", file=sys.stderr, flush=True)
    drawn = []
    for fid in ids:
        csv_path = out / f"{fid}.csv"
        if not replot:
            write_csv_atomic(csv_path, FIGURES[fid].table(records))
        elif not csv_path.is_file():
            raise ConfigError(f"--replot: {csv_path} does not exist; run without --replot first")
        drawn.append(str(save_figure(FIGURES[fid].plot(read_csv(csv_path)), out / f"{fid}.png")))
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


def main(argv: list[str] | None = None) -> int:
    from earlylin.errors import EarlylinError, report
    from earlylin.paper_figures import FIGURES

    args = build_parser().parse_args(argv)
    size = "quick" if args.quick else "paper"
    out = args.out or (Path("runs/figures-quick") if args.quick else Path("figures"))
    ids = args.only or list(FIGURES)
    try:
        index = regenerate(ids, size, args.device, out,
                           None if args.no_cache else args.cache_dir, args.replot, progress=not args.quiet)
    except EarlylinError as err:
        return report(err)
    for fid in ids:
        print(out / f"{fid}.png")
    listed = "" if args.replot else f"; {out / 'index.json'} lists {len(index['pngs'])}"
    print(f"{len(ids)} figure(s) drawn ({size} size) in {index['total_wall_time_s']:.1f}s wall{listed}")
    if any(index["diverged"].values()):
        print(f"earlylin: some seeds diverged: {index['diverged']}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
