"""Train a two-layer network and its predicted linear model side by side and report how close they stay.

Usage:
    python -m earlylin.verify --layers both --d 50            # the paper's Fig 1 setting
    python -m earlylin.verify --layers both --d 50 --quick    # a smoke run in seconds
    python -m earlylin.verify --d 25 50 100 200 --seeds 0 1 2 # closeness vs d, with the log-log slope
    python -m earlylin.verify --dataset cifar --arch fc       # CIFAR-10 cats vs horses, deep FC (Fig 3)
    python -m earlylin.verify --dataset cifar --arch cnn --quick

Writes ``<out>/record.json`` (config, environment, metrics per recorded step and seed, summary) and
``<out>/verify.png`` (loss curves, MSE between net and linear model, and MSE vs d), and prints a
compact table. Exit status: 0 success, 2 invalid input, 3 some seeds diverged (their steps are named;
the record is still written), 4 every seed diverged.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from earlylin import deep, figures
from earlylin.activations import ACTIVATION_NAMES
from earlylin.cifar_experiment import CIFAR_NORMS, LINEAR_KINDS, CifarConfig, run_cifar
from earlylin.cifar_experiment import QUICK as CIFAR_QUICK
from earlylin.cifar_experiment import QUICK_WIDTH as CIFAR_QUICK_WIDTH
from earlylin.cnn1d import Cnn1dConfig, run_cnn1d
from earlylin.config import DEVICES, DTYPES, QUICK, Sweep, TwoLayerConfig, resolve_device
from earlylin.data.synthetic import INPUT_NAMES, SIGMA_NAMES, TARGET_NAMES
from earlylin.errors import ConfigError, EarlylinError, report
from earlylin.experiment import run_two_layer
from earlylin.linear import LAYERS
from earlylin.records import SCHEMA, Cache, default_cache_dir, environment, write_json_atomic

DEFAULT = TwoLayerConfig()
TABLE_KEYS = (
    ("train_loss_net", "train loss net"),
    ("test_loss_net", "test loss net"),
    ("test_loss_lin", "test loss lin"),
    ("test_mse", "MSE(net,lin)"),
    ("test_rel_mse", "rel MSE"),
    ("test_mse_stripped", "MSE(net,strip)"),
)
SPLIT_KEYS = (("test_res_perp_net", "V⊥ resid net"), ("test_res_perp_lin", "V⊥ resid lin"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m earlylin.verify",
        description="Check that early GD on a two-layer net follows its linear model (Hu et al. 2020).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    a = p.add_argument
    a("--layers", choices=LAYERS, default=DEFAULT.layers, help="which layer(s) GD trains (η₁, η₂ of THEORY §1)")
    a("--d", type=int, nargs="+", default=None,
      help=f"input dimension(s); several give the closeness-vs-d table [default {DEFAULT.d}; CIFAR: 192]")
    a("--activation", default=None,
      help=f"φ: one of {', '.join(ACTIVATION_NAMES)} [default {DEFAULT.activation}; CIFAR: relu or erf, "
      f"default {CifarConfig.activation}]")
    a("--width", type=int, default=None, help=f"hidden width m, even [default {DEFAULT.width}; CIFAR "
      f"{CifarConfig.width}, --quick {CIFAR_QUICK_WIDTH}]")
    a("--n", type=int, default=None, help=f"training points [default {DEFAULT.n}; --quick {QUICK['n']}; "
      f"CIFAR {CifarConfig.n}, --quick {CIFAR_QUICK['n']}]")
    a("--n-test", type=int, default=None, help=f"test points [default {DEFAULT.n_test}; --quick {QUICK['n_test']}; "
      f"CIFAR {CifarConfig.n_test}, --quick {CIFAR_QUICK['n_test']}]")
    a("--teacher-width", type=int, default=DEFAULT.teacher_width, help="width of the erf teacher")
    a("--target", choices=TARGET_NAMES, default=DEFAULT.target,
      help="teacher: y = sign(f*(x)); norm: ½ sign(f*) + ½ tanh(standardised ‖x‖²) (Fig 2)")
    a("--sigma", choices=SIGMA_NAMES, default=DEFAULT.sigma, help="input covariance spectrum, Tr Σ = d")
    a("--inputs", choices=INPUT_NAMES, default=DEFAULT.inputs, help="distribution of the entries of x̄")
    a("--lr", type=float, default=DEFAULT.lr, help="learning rate η (η₁ and/or η₂)")
    a("--steps", type=int, default=None, help=f"GD steps [default {DEFAULT.steps}; --quick {QUICK['steps']}; "
      f"CIFAR {CifarConfig.steps}, --quick {CIFAR_QUICK['steps']}]")
    a("--seeds", type=int, nargs="+", default=list(DEFAULT.seeds), help="seeds, trained as one batch")
    a("--scale-alpha", type=float, default=None,
      help="with several --d: grow n and width as (d/d₀)^{1+α} from the first d (unset: fixed n, width)")
    a("--ntk-lin", action="store_true",
      help="also train the θ-linearised network f₀ + ∇f₀·(θ − θ₀) and record its test MSE to the net "
      "(≈ 1.7× the training time)")
    a("--window-c", type=float, default=DEFAULT.window_c, help="early window T = c·d·log(d)/η")
    a("--escape-factor", type=float, default=DEFAULT.escape_factor,
      help="escape step: first step after T with test MSE(net, lin) > factor × its value at T")
    a("--n-log", type=int, default=DEFAULT.n_log, help="log-spaced recorded steps (plus 0, T and the last)")
    a("--device", choices=DEVICES, default=DEFAULT.device, help="auto: CUDA if available, else CPU")
    a("--dtype", choices=tuple(DTYPES), default=DEFAULT.dtype,
      help="network precision (the linear models are always float64; on CUDA fp32 runs with TF32 off)")
    g = p.add_argument_group("CIFAR-10 cats vs horses (Fig 3): --dataset cifar")
    g.add_argument("--dataset", choices=("synthetic", "cifar"), default="synthetic",
                   help="synthetic Gaussian inputs (two-layer net) or pooled CIFAR-10 (deep FC / CNN)")
    a("--arch", choices=("two_layer", "cnn1d", *deep.ARCHS), default=None,
      help="synthetic data: two_layer (default) or cnn1d (one circular conv layer, filter size --filter, "
      "--width filters, per-position readout); CIFAR: fc (default, 4 hidden layers) or cnn (4 conv layers)")
    g.add_argument("--depth", type=int, default=CifarConfig.depth, help="hidden / conv layers of the CIFAR net")
    a("--filter", type=int, default=None,
      help=f"filter size: q of the 1D CNN [default {Cnn1dConfig.filter_size}] or k of the CIFAR CNN's k×k "
      f"[default {CifarConfig.kernel_size}]")
    g.add_argument("--linear", choices=LINEAR_KINDS, default=CifarConfig.linear,
                   help="derived: linearised analytic NTK; fitted: least squares to the net's empirical NTK")
    g.add_argument("--ntk-model", action="store_true",
                   help="also run kernel GD on the exact infinite-width NTK (an n×n eigendecomposition) and record "
                   "its MSE to the net: separates the finite-width part of the gap from the linearisation's")
    g.add_argument("--cifar-norm", choices=CIFAR_NORMS, default=None,
                   help="coordinate: inputs standardised per coordinate (training statistics); sphere: then each "
                   f"image rescaled to ‖x‖ = √d, the norm concentration the theory assumes [default "
                   f"{CifarConfig.cifar_norm}]")
    g.add_argument("--n-fit", type=int, default=CifarConfig.n_fit, help="training points for --linear fitted")
    g.add_argument("--cifar-root", default=None, help="folder holding cifar-10-batches-py/ (torchvision layout)")
    g.add_argument("--npz", default=None, help="path of cifar10_cat_horse.npz (default: found in shared/data)")
    g.add_argument("--download", action="store_true", help="fetch CIFAR-10 with torchvision if no data is found")
    a("--out", type=Path, default=Path("runs/verify"), help="directory for record.json and verify.png")
    a("--quick", action="store_true", help="reduced size for a smoke run (n, n-test, steps as above)")
    a("--cache-dir", type=Path, default=default_cache_dir(), help="where per-(config, seed) results are cached")
    a("--no-cache", action="store_true", help="neither read nor write the cache")
    a("--no-plot", action="store_true", help="skip verify.png")
    a("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _sizes(args: argparse.Namespace, quick: dict[str, Any]) -> dict[str, Any]:
    """--quick preset, overridden by any size flag given explicitly."""
    preset: dict[str, Any] = dict(quick) if args.quick else {}
    for key in ("width", "n", "n_test", "steps"):
        value = getattr(args, key)
        if value is not None:
            preset[key] = value
    return preset


def cifar_config_from_args(args: argparse.Namespace) -> CifarConfig:
    args.arch = args.arch or "fc"
    if args.arch not in deep.ARCHS:
        raise ConfigError(f"--arch {args.arch} with --dataset cifar: valid are {', '.join(deep.ARCHS)}")
    if args.d not in (None, [192]):
        raise ConfigError(f"--d {args.d}: the pooled CIFAR inputs have d = 192; leave --d out with --dataset cifar")
    quick = {**CIFAR_QUICK, "width": CIFAR_QUICK_WIDTH[args.arch]}
    return CifarConfig(
        arch=args.arch, depth=args.depth, kernel_size=args.filter or CifarConfig.kernel_size,
        activation=args.activation or CifarConfig.activation,
        lr=args.lr, seeds=tuple(args.seeds), linear=args.linear, n_fit=args.n_fit, ntk_model=args.ntk_model,
        cifar_norm=args.cifar_norm or CifarConfig.cifar_norm, window_c=args.window_c,
        escape_factor=args.escape_factor, n_log=args.n_log, dtype=args.dtype, device=args.device,
        npz_path=args.npz, cifar_root=args.cifar_root, download=args.download, **_sizes(args, quick),
    ).validate()


# The 1D CNN's hidden activation is n·d·m per seed (d× the two-layer net's): a smaller smoke size
CNN1D_QUICK = {"n": 500, "n_test": 200, "width": 64, "steps": 300}


def config_from_args(args: argparse.Namespace) -> Sweep:
    preset = _sizes(args, CNN1D_QUICK if args.arch == "cnn1d" else QUICK)
    ds = args.d or [DEFAULT.d]
    arch = args.arch or "two_layer"
    if arch not in ("two_layer", "cnn1d"):
        raise ConfigError(f"--arch {arch} needs --dataset cifar; synthetic data take two_layer or cnn1d")
    if args.cifar_norm is not None:
        raise ConfigError(f"--cifar-norm {args.cifar_norm} needs --dataset cifar")
    common: dict[str, Any] = dict(
        d=ds[0], layers=args.layers, activation=args.activation or DEFAULT.activation,
        teacher_width=args.teacher_width, target=args.target, sigma=args.sigma, inputs=args.inputs, lr=args.lr,
        seeds=tuple(args.seeds), window_c=args.window_c, escape_factor=args.escape_factor, n_log=args.n_log,
        dtype=args.dtype, device=args.device, ntk_lin=args.ntk_lin, **preset,
    )
    if arch == "cnn1d":
        base: TwoLayerConfig = Cnn1dConfig(filter_size=args.filter or Cnn1dConfig.filter_size, **common)
    else:
        if args.filter is not None:
            raise ConfigError(f"--filter {args.filter}: only --arch cnn1d and --dataset cifar --arch cnn take it")
        base = TwoLayerConfig(**common)
    return Sweep(base=base, ds=tuple(ds), scale_alpha=args.scale_alpha)


def loglog_slope(ds: list[int], values: np.ndarray) -> float:
    """Least-squares slope of log(value) against log(d)."""
    return float(np.polyfit(np.log(ds), np.log(values), 1)[0])


def sweep_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Top-level summary: the single run's summary, or by_d + slope (+ the largest d's keys) for several d."""
    if len(runs) == 1:
        return dict(runs[0]["summary"])
    by_d = [r["summary"] for r in runs]
    ds = [s["d"] for s in by_d]
    per_seed = np.array([s["max_rel_test_mse_early_per_seed"] for s in by_d], dtype=float)  # (D, K)
    slopes = [loglog_slope(ds, per_seed[:, k]) for k in range(per_seed.shape[1])]
    mse_mean = np.array([s["max_test_mse_early"] for s in by_d])
    out = dict(by_d[int(np.argmax(ds))])
    out.update(
        by_d=by_d,
        slope={
            "metric": "max_rel_test_mse_early",
            "mean": float(np.mean(slopes)),
            "std": float(np.std(slopes, ddof=1)) if len(slopes) > 1 else 0.0,
            "per_seed": slopes,
            "of_seed_mean": loglog_slope(ds, per_seed.mean(axis=1)),
            "test_mse_of_seed_mean": loglog_slope(ds, mse_mean),
        },
        escape=escape_study(runs),
        wall_time_s=float(sum(s["wall_time_s"] for s in by_d)),
    )
    return out


def escape_study(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Escape step t* against the theorem's time scale d·log(d)/η (THEORY §4: T = c·d·log d/η).

    Returns per d: t* (seed-mean curve; null if not reached within --steps), d·log(d)/η, their ratio
    c* = t*·η/(d log d) — constant in d if the prediction T ∝ d·log d/η holds — and the log-log slope
    of t* against d·log(d)/η over the d that escaped (1 if the prediction holds)."""
    d = [r["config"]["d"] for r in runs]
    scale = [r["config"]["d"] * math.log(r["config"]["d"]) / r["config"]["lr"] for r in runs]
    t_star = [r["summary"]["escape_step"] for r in runs]
    ratio = [None if t is None else t / sc for t, sc in zip(t_star, scale, strict=True)]
    hit = [(sc, t) for sc, t in zip(scale, t_star, strict=True) if t is not None]
    slope = loglog_slope([h[0] for h in hit], np.array([h[1] for h in hit], dtype=float)) if len(hit) >= 2 else None
    return {"d": d, "escape_step": t_star, "d_log_d_over_lr": scale, "c_star": ratio, "slope_vs_d_log_d": slope}


def format_table(runs: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The terminal report: per-step table of each run, then the closeness-vs-d table if several d."""
    lines = []
    for run in runs:
        cfg, s = run["config"], run["summary"]
        seed0 = next(iter(run["per_seed"].values()))
        steps = seed0["steps"]
        model = f"layers={cfg['layers']}" if "layers" in cfg else f"arch={cfg['arch']} depth={cfg['depth']}"
        lines.append(
            f"d={cfg['d']} width={cfg['width']} n={cfg['n']} {model} φ={cfg['activation']} "
            f"η={cfg['lr']:g} seeds={cfg['seeds']} T={s['early_window_steps']} (seed-mean values)"
        )
        keys = TABLE_KEYS + (SPLIT_KEYS if "arch" in cfg else ())
        lines.append(f"{'step':>7} " + " ".join(f"{label:>15}" for _, label in keys))
        show = sorted({steps[0], steps[-1], *(steps[i] for i in np.linspace(0, len(steps) - 1, 9).astype(int))}
                      | ({s["early_window_steps"]} & set(steps)))
        for t in show:
            i = steps.index(t)
            vals = []
            for key, _ in keys:
                col = [m[key][i] for m in run["per_seed"].values()]
                col = [np.nan if c is None else c for c in col]
                vals.append("nan" if np.all(np.isnan(col)) else f"{np.nanmean(col):.5f}")
            lines.append(f"{t:>7} " + " ".join(f"{v:>15}" for v in vals))
        lines.append(
            f"  max test MSE(net,lin) for t ≤ T: {s['max_test_mse_early']:.3g}   "
            f"max rel MSE: {s['max_rel_test_mse_early']:.3g}   "
            f"max MSE(net,stripped): {s['max_test_mse_stripped_early']:.3g}   "
            f"escape step: {s['escape_step']}   wall: {s['wall_time_s']:.1f}s"
        )
        if s["diverged_seeds"]:
            lines.append(f"  DIVERGED seeds (seed: first bad step): {s['diverged_seeds']}")
        lines.append("")
    if "by_d" in summary:
        lines.append(f"{'d':>6} {'m':>7} {'n':>8} {'T':>6} {'max MSE t≤T':>12} {'max rel MSE':>12} {'escape':>7}")
        for run in runs:
            s, c = run["summary"], run["config"]
            lines.append(
                f"{s['d']:>6} {c['width']:>7} {c['n']:>8} {s['early_window_steps']:>6} "
                f"{s['max_test_mse_early']:>12.4g} {s['max_rel_test_mse_early']:>12.4g} {s['escape_step']!s:>7}"
            )
        esc = summary["escape"]
        lines.append("escape step t* vs d·log(d)/η: " + ", ".join(
            f"d={d}: t*={t} (c*={'—' if c is None else f'{c:.2f}'})"
            for d, t, c in zip(esc["d"], esc["escape_step"], esc["c_star"], strict=True)))
        sl = summary["slope"]
        lines.append(
            f"log-log slope of max rel MSE vs d: {sl['mean']:.3f} ± {sl['std']:.3f} (over seeds; "
            f"of the seed mean: {sl['of_seed_mean']:.3f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        configs: list[Any]
        if args.dataset == "cifar":
            configs, sweep_info, kind = [cifar_config_from_args(args)], {"ds": [192]}, "cifar"
        else:
            sweep = config_from_args(args)
            configs, kind = sweep.configs(), "two_layer"
            sweep_info = {"ds": list(sweep.ds), "scale_alpha": sweep.scale_alpha, "arch": args.arch or "two_layer"}
        device = resolve_device(args.device)
        if args.device == "auto" and device.type == "cpu" and not args.quiet:
            print("note: --device auto found no CUDA device; running on CPU", file=sys.stderr)
        cache = Cache(None if args.no_cache else args.cache_dir)
        start = time.perf_counter()
        runs = []
        for cfg in configs:
            if not args.quiet:
                print(f"running d={cfg.d} (n={cfg.n}, width={cfg.width}, {cfg.steps} steps, "
                      f"{len(cfg.seeds)} seed(s)) on {device}", file=sys.stderr)
            run = run_cifar if kind == "cifar" else run_cnn1d if isinstance(cfg, Cnn1dConfig) else run_two_layer
            runs.append(run(cfg, cache, progress=not args.quiet))
        summary = sweep_summary(runs)
        record = {
            "schema": SCHEMA,
            "kind": kind,
            "argv": sys.argv[1:] if argv is None else list(argv),
            "sweep": sweep_info,
            "environment": environment(device, args.dtype),
            "runs": runs,
            "summary": summary,
            "total_wall_time_s": time.perf_counter() - start,
        }
        path = write_json_atomic(args.out / "record.json", record)
        print(format_table(runs, summary))
        print(f"record: {path}")
        if not args.no_plot:
            print(f"figure: {figures.plot_verify(record, args.out / 'verify.png')}")
    except EarlylinError as err:
        return report(err)
    if any(r["summary"]["diverged_seeds"] for r in runs):
        print("earlylin: some seeds diverged (see the table); use a smaller --lr", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
