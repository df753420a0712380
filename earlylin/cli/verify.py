"""Train a network and its predicted linear model side by side and report how close they stay.

Usage:
    python -m earlylin.verify --layers both --d 50            # the paper's Fig 1 setting
    python -m earlylin.verify --layers both --d 50 --quick    # a smoke run in seconds
    python -m earlylin.verify --d 25 50 100 200 --seeds 0 1 2 # closeness vs d, with the log-log slope
    python -m earlylin.verify --dataset cifar --arch fc       # CIFAR-10 cats vs horses, deep FC (Fig 3)
    python -m earlylin.verify --dataset cifar --arch cnn --quick --download

Writes ``<out>/record.json`` (config, environment, metrics per recorded step and seed, summary) and
``<out>/verify.png`` (loss curves, MSE between net and linear model, and MSE vs d), and prints a
compact table; with ``--keep-outputs`` also ``<out>/outputs.npz``, the full outputs of the network and its
linear model(s) at every recorded step (:meth:`earlylin.Result.outputs`). Every flag is checked before any
work (exit status 2, one line naming the flag): its range, flags that do not apply to the chosen data set,
that ``--out`` and ``--cache-dir`` can be written, and that ``--keep-outputs``'s arrays fit in memory. Long
runs save a checkpoint beside the cache every ``--checkpoint-every-s`` seconds; the same command resumes
there after a kill. Exit status: 0 success, 2 invalid input, 3 some seeds diverged (their steps are named;
the record is still written), 4 every seed diverged, 1 other errors, 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from earlylin import cli
from earlylin.activations import ACTIVATION_NAMES
from earlylin.cli.verify_report import cache_line, format_table
from earlylin.config import (
    ARCHS,
    CIFAR_NORMS,
    LINEAR_KINDS,
    CifarConfig,
    Cnn1dConfig,
    Sweep,
    TwoLayerConfig,
    paper_training,
    theorem_window,
)
from earlylin.data.cifar_files import DATA_DIR_ENV
from earlylin.data.synthetic import INPUT_NAMES, SIGMA_NAMES, TARGET_NAMES
from earlylin.errors import ConfigError
from earlylin.experiments import experiment_for, family_of, memory
from earlylin.experiments import run as run_experiment
from earlylin.experiments.analysis import sweep_summary
from earlylin.experiments.result import outputs_name, write_outputs
from earlylin.experiments.train import CHECKPOINT_ENV, CHECKPOINT_EVERY_S, checkpoint_interval
from earlylin.linear.features import LAYERS
from earlylin.nets.two_layer import NET_STEPS, check_step
from earlylin.runtime import progress
from earlylin.runtime.devices import DEVICES, DTYPES, resolve_device
from earlylin.runtime.records import SCHEMA, Cache, default_cache_dir, environment, locked_dir, write_json_atomic
from earlylin.studies.presets import CIFAR_QUICK_WIDTH, QUICK
from earlylin.training.losses import LOSSES
from earlylin.training.optim import OPTIMIZERS

DEFAULT = TwoLayerConfig()
# flags of one data set only (argparse dest → flag); their defaults are None so that "given" is visible
SYNTHETIC_ONLY = {"layers": "--layers", "teacher_width": "--teacher-width", "target": "--target",
                  "sigma": "--sigma", "inputs": "--inputs", "scale_alpha": "--scale-alpha", "ntk_lin": "--ntk-lin",
                  "step": "--step"}
CIFAR_ONLY = {"depth": "--depth", "linear": "--linear", "ntk_model": "--ntk-model", "cifar_norm": "--cifar-norm",
              "n_fit": "--n-fit", "cifar_root": "--cifar-root", "npz": "--npz", "download": "--download",
              "data_dir": "--data-dir", "classes": "--classes"}


def _quick(key: str) -> str:
    """The --quick value of a size flag for the two synthetic architectures (``2000, cnn1d 500``)."""
    two, cnn = QUICK["two_layer"].get(key, getattr(DEFAULT, key)), QUICK["cnn1d"].get(key, getattr(DEFAULT, key))
    return f"{two}" if two == cnn else f"{two}, cnn1d {cnn}"


def build_parser() -> argparse.ArgumentParser:
    quick_width = ", ".join(f"{arch} {w}" for arch, w in CIFAR_QUICK_WIDTH.items())
    p = cli.ArgumentParser(
        prog="python -m earlylin.verify",
        description="Check that early gradient descent on a network follows its linear model (Hu et al. 2020).",
        epilog="exit status: 0 success, 2 invalid input (nothing run), 3 some seeds diverged, 4 every seed "
        "diverged,\n1 other errors (data, I/O), 130 Ctrl-C, 143 SIGTERM\n"
        f"environment: ${DATA_DIR_ENV} (CIFAR data dir), ${CHECKPOINT_ENV} (default of --checkpoint-every-s)\n"
        "data: docs/howto.md, section Data",
    )
    a = p.add_argument
    a("--d", type=int, nargs="+", default=None,
      help=f"input dimension(s); several give the closeness-vs-d table (default: {DEFAULT.d}; CIFAR: 192, fixed)")
    a("--activation", default=None,
      help=f"φ: one of {', '.join(ACTIVATION_NAMES)} (default: {DEFAULT.activation}; CIFAR: erf or relu, "
      f"default {CifarConfig.activation})")
    a("--width", type=int, default=None, help=f"hidden width m, even (default: {DEFAULT.width}, --quick "
      f"{_quick('width')}; CIFAR {CifarConfig.width}, --quick {quick_width})")
    a("--n", type=int, default=None, help=f"training points (default: {DEFAULT.n}, --quick {_quick('n')}; "
      f"CIFAR {CifarConfig.n}, --quick {QUICK['cifar']['n']})")
    a("--n-test", type=int, default=None, help=f"test points (default: {DEFAULT.n_test}, --quick "
      f"{_quick('n_test')}; CIFAR {CifarConfig.n_test}, --quick {QUICK['cifar']['n_test']})")
    a("--lr", type=float, default=DEFAULT.lr, help="learning rate η (η₁ and/or η₂), below the linear model's "
      "stability bound 2n/λ_max")
    a("--steps", type=int, default=None, help=f"GD steps (default: {DEFAULT.steps}, --quick {_quick('steps')}; "
      f"CIFAR {CifarConfig.steps}, --quick {QUICK['cifar']['steps']})")
    a("--seeds", type=int, nargs="+", default=list(DEFAULT.seeds), help="seeds, distinct, trained as one batch")
    a("--window-c", type=float, default=DEFAULT.window_c, help="early window T = c·d·log(d)/η steps")
    a("--escape-factor", type=float, default=DEFAULT.escape_factor,
      help="escape step: first step after T with test MSE(net, lin) > factor × its value at T (CIFAR: without a "
      "theorem's T, and escape_step_observed for every run: first step with rel MSE > factor × its lowest so far); > 1")
    a("--regime-eps", type=float, default=None,
      help=f"the measured linear regime ends at the first step with rel MSE(net, lin) > this (default: "
      f"{DEFAULT.regime_eps:g})")
    a("--n-log", type=int, default=DEFAULT.n_log, help="log-spaced recorded steps (plus 0, T and the last)")
    a("--device", choices=DEVICES, default=DEFAULT.device, help="auto: CUDA if available, else CPU")
    a("--dtype", choices=tuple(DTYPES), default=DEFAULT.dtype,
      help="network precision (the linear models are always float64; on CUDA fp32 runs with TF32 off)")
    a("--quick", action="store_true", help="reduced size for a smoke run (n, n-test, steps, width as above)")
    a("--dataset", choices=("synthetic", "cifar"), default="synthetic",
      help="synthetic Gaussian inputs (two-layer net or 1D CNN) or pooled CIFAR-10 (deep FC or CNN)")
    a("--arch", choices=("two_layer", "cnn1d", *ARCHS), default=None,
      help="synthetic data: two_layer (default) or cnn1d (one circular conv layer, filter size --filter, "
      "--width filters, per-position readout); CIFAR: fc (default, --depth hidden layers) or cnn (--depth conv "
      "layers)")
    a("--filter", type=int, default=None,
      help=f"filter size: q of the 1D CNN, in [1, d] (default: {Cnn1dConfig.filter_size}), or k of the CIFAR CNN's "
      f"k×k, one of 1, 3, 5, 7 (default: {CifarConfig.kernel_size})")

    g = p.add_argument_group("synthetic data only (--dataset synthetic)").add_argument
    g("--layers", choices=LAYERS, default=None,
      help=f"which layer(s) GD trains (η₁, η₂ of docs/theory.md §1) (default: {DEFAULT.layers})")
    g("--teacher-width", type=int, default=None, help=f"width of the erf teacher (default: {DEFAULT.teacher_width})")
    g("--target", choices=TARGET_NAMES, default=None,
      help=f"teacher: y = sign(f*(x)); norm: ½ sign(f*) + ½ tanh(standardised ‖x‖²) (Fig 2) "
      f"(default: {DEFAULT.target})")
    g("--sigma", choices=SIGMA_NAMES, default=None,
      help=f"input covariance spectrum, Tr Σ = d (default: {DEFAULT.sigma})")
    g("--inputs", choices=INPUT_NAMES, default=None,
      help=f"distribution of the entries of x̄ (default: {DEFAULT.inputs})")
    g("--scale-alpha", type=float, default=None,
      help="with several --d: grow n and width as (d/d₀)^{1+α} from the first d, α in [0, 1) (default: fixed n "
      "and width)")
    g("--ntk-lin", action="store_true",
      help="also train the θ-linearised network f₀ + ∇f₀·(θ − θ₀) and record its test MSE to the net "
      "(≈ 1.7× the training time; two-layer net only)")
    g("--step", choices=NET_STEPS, default=None,
      help="the two-layer step's implementation: reference (whole n×m matrices), fast (blocks of rows, in cache), "
      "fused (Triton kernel, CUDA, 3×TF32 products); auto: fast on a CPU, reference on CUDA; equal to fp32 "
      "rounding (default: auto)")

    g = p.add_argument_group("CIFAR-10 cats vs horses only (--dataset cifar, Fig 3)").add_argument
    g("--depth", type=int, default=None,
      help=f"hidden / conv layers of the CIFAR net, in [1, 16] (default: {CifarConfig.depth})")
    g("--linear", choices=LINEAR_KINDS, default=None,
      help="derived: linearised analytic NTK; fitted: least squares to the net's empirical NTK "
      f"(default: {CifarConfig.linear})")
    g("--n-fit", type=int, default=None,
      help=f"training points for --linear fitted, in [8, n] (default: {CifarConfig.n_fit})")
    g("--ntk-model", action="store_true",
      help="also run kernel GD on the exact infinite-width NTK (an n×n eigendecomposition) and record "
      "its MSE to the net: separates the finite-width part of the gap from the linearisation's")
    g("--cifar-norm", choices=CIFAR_NORMS, default=None,
      help="coordinate: inputs standardised per coordinate (training statistics); sphere: then each "
      f"image rescaled to ‖x‖ = √d, the norm concentration the theory assumes (default: {CifarConfig.cifar_norm})")
    g("--npz", default=None, help="the file cifar10_cat_horse.npz; the only place read (default: searched, "
      "see README.md, section Data)")
    g("--cifar-root", default=None,
      help="a folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz (torchvision's layout); the only "
      "place read")
    g("--download", action="store_true",
      help="if the data are found nowhere (README.md, section Data), download the official CIFAR-10 archive (~163 MB, "
      f"md5-checked) into the data dir: --data-dir, else ${DATA_DIR_ENV}, else the per-user cache (Linux: "
      "~/.cache/earlylin)")
    g("--data-dir", type=Path, default=None,
      help=f"where the official archive is looked for and downloaded to (default: ${DATA_DIR_ENV}, else the "
      "per-user cache, Linux: ~/.cache/earlylin)")

    g = p.add_argument_group("how the net trains (docs/theory.md §3.3)").add_argument
    g("--classes", type=_classes, default=None,
      help="CIFAR-10 classes, one output each: a number K (the labels 0 … K−1; 10: all) or a list such as 3,7; "
      "their data: --npz FILE (default: the ten-class npz under shared/data, 10,000 / 2,000 images) or --cifar-root "
      "(default: cats vs horses, one output ±1)")
    g("--loss", choices=LOSSES, default=None, help="squared ((1/2n)Σ(f − y)²) or cross_entropy (softmax over the "
      "classes; binary logistic for cats vs horses) (default: squared)")
    g("--optimizer", choices=OPTIMIZERS, default=None,
      help="gd (full batch), sgd, momentum (heavy ball) or adam, for the network and its linear model alike "
      "(default: gd)")
    g("--batch-size", type=int, default=None, help="mini-batch size in [1, n] for sgd, momentum, adam (default: n)")
    g("--batch-seed", type=int, default=None, help="seed of the mini-batch order (default: 0)")
    g("--momentum", type=float, default=None, help="μ of heavy-ball momentum and Adam's β₁, in [0, 1) (default: 0.9)")
    g("--alpha", type=float, default=None,
      help="the output scale of lazy training (not --scale-alpha): the net trains as α·f on the loss / α², > 0 "
      "(default: 1)")

    g = p.add_argument_group("output, cache and checkpoints").add_argument
    g("--out", type=Path, default=Path("runs/verify"), help="directory for record.json and verify.png")
    g("--cache-dir", type=Path, default=None,
      help=f"where per-(config, seed) results, the pooled CIFAR arrays and checkpoints are kept "
      f"(default: {default_cache_dir()})")
    g("--no-cache", action="store_true",
      help="neither read nor write the cache; then no checkpoints either: a killed run starts again from step 0")
    g("--checkpoint-every-s", type=float, default=None,
      help=f"seconds of training between checkpoints (<cache-dir>/checkpoints/; deleted when the run finishes) "
      f"(default: ${CHECKPOINT_ENV}, else {CHECKPOINT_EVERY_S:g})")
    g("--max-gb", type=float, default=None,
      help="refuse a run whose estimated memory (GiB) exceeds this (default: the memory available now)")
    g("--keep-outputs", action="store_true",
      help="also store the full train and test outputs of the network and of its linear model(s) at every "
      "recorded step in <out>/outputs.npz (outputs_d<d>.npz for each d of a sweep; record key outputs_file; "
      "Result.outputs() reads it); refused before any work when seeds × recorded steps × points × 8 bytes per "
      "array would not fit in memory; reads no cache entry (every seed trains)")
    g("--no-plot", action="store_true", help="skip verify.png")
    g("--quiet", action="store_true", help="no progress bars or status lines on stderr")
    return p


# ---------------------------------------------------------------------------------------------- checks
def check_flags(args: argparse.Namespace) -> None:
    """Refuse flags that the chosen data set would ignore, and contradictory combinations."""
    if args.dataset == "cifar":
        if wrong := cli.given(args, SYNTHETIC_ONLY):
            them = "them" if len(wrong) > 1 else "it"
            raise ConfigError(f"{', '.join(wrong)}: only for --dataset synthetic; leave {them} out with "
                              "--dataset cifar")
        if args.npz is not None and args.cifar_root is not None:
            raise ConfigError("--npz and --cifar-root name two data sources; give one")
        if args.download and (args.npz is not None or args.cifar_root is not None):
            raise ConfigError(f"--download with {'--npz' if args.npz else '--cifar-root'}: that source is the only "
                              "place read and nothing is downloaded; leave --download out")
        if args.data_dir is not None and (args.npz is not None or args.cifar_root is not None):
            raise ConfigError(f"--data-dir with {'--npz' if args.npz else '--cifar-root'}: that source is the only "
                              "place read; leave --data-dir out")
        if args.n_fit is not None and args.linear != "fitted":
            raise ConfigError(f"--n-fit {args.n_fit}: only used with --linear fitted")
    else:
        if wrong := cli.given(args, CIFAR_ONLY):
            value = getattr(args, next(k for k, f in CIFAR_ONLY.items() if f == wrong[0]))
            shown = "" if value is True else f" {value}"
            raise ConfigError(f"{wrong[0]}{shown} needs --dataset cifar"
                              + (f" (also given: {', '.join(wrong[1:])})" if wrong[1:] else ""))
        if args.scale_alpha is not None and (args.d is None or len(args.d) < 2):
            raise ConfigError(f"--scale-alpha {args.scale_alpha:g}: only with several --d (n and width grow from "
                              "the first d); give two or more --d or leave it out")
    if args.no_cache and args.cache_dir is not None:
        raise ConfigError("--cache-dir with --no-cache: the cache is off; give one of them")
    if args.no_cache and args.checkpoint_every_s is not None:
        raise ConfigError("--checkpoint-every-s with --no-cache: checkpoints live in the cache dir; leave "
                          "--no-cache out to have them")
    if args.checkpoint_every_s is not None:
        checkpoint_interval(args.checkpoint_every_s)


def warn_regime(configs: list[Any], quiet: bool) -> None:
    """One line per config outside the theory's sample regime (n < d); a note when T is past the run."""
    for cfg in configs:
        if cfg.n < cfg.d:
            progress.warn(f"--n {cfg.n} < d = {cfg.d}: fewer training points than input dimensions; the theorems "
                     "assume n ≳ d^(1+α) (docs/theory.md §4), so this run is outside their regime")
        window = theorem_window(family_of(cfg), cfg.d, cfg.lr, cfg.window_c, paper_training(cfg))  # none: CIFAR, SGD, …
        if window is not None and window > cfg.steps:
            progress.say(f"note: the early window T = {window:,} steps is past the last step ({cfg.steps:,}): every "
                    "recorded step counts as early", not quiet)


# ---------------------------------------------------------------------------------------------- configs
# config field → argparse dest where the flag's name differs from the field's
CIFAR_DEST = {"kernel_size": "filter", "npz_path": "npz"}
CNN1D_DEST = {"filter_size": "filter"}


def _classes(text: str) -> tuple[int, ...]:
    """``--classes``: K (the labels 0 … K−1) or a comma-separated list of labels."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of classes or labels such as 3,7") from None
    return tuple(range(values[0])) if len(values) == 1 else tuple(values)


def _config(cls: type, args: argparse.Namespace, quick: dict[str, Any], dest: dict[str, str],
            **fixed: Any) -> Any:
    """``cls`` from the flags given, over the --quick preset, over the class's own defaults; ``fixed``: fields
    the command sets itself."""
    preset = dict(quick) if args.quick else {}
    return cls(**{**preset, **cli.config_fields(args, cls, dest), **fixed})


def cifar_config_from_args(args: argparse.Namespace) -> CifarConfig:
    args.arch = args.arch or "fc"
    if args.arch not in ARCHS:
        raise ConfigError(f"--arch {args.arch} with --dataset cifar: valid are {', '.join(ARCHS)}")
    if args.d not in (None, [192]):
        raise ConfigError(f"--d {args.d}: the pooled CIFAR inputs have d = 192; leave --d out with --dataset cifar")
    quick = {**QUICK["cifar"], "width": CIFAR_QUICK_WIDTH[args.arch]}
    return _config(CifarConfig, args, quick, CIFAR_DEST)


def config_from_args(args: argparse.Namespace) -> Sweep:
    ds = tuple(args.d or [DEFAULT.d])
    arch = args.arch or "two_layer"
    if arch not in ("two_layer", "cnn1d"):
        raise ConfigError(f"--arch {arch} needs --dataset cifar; synthetic data take two_layer or cnn1d")
    if arch == "two_layer" and args.filter is not None:
        raise ConfigError(f"--filter {args.filter}: only --arch cnn1d and --dataset cifar --arch cnn take it")
    cls, dest = (Cnn1dConfig, CNN1D_DEST) if arch == "cnn1d" else (TwoLayerConfig, {})
    base: TwoLayerConfig = _config(cls, args, QUICK[arch], dest, d=ds[0])
    return Sweep(base=base, ds=ds, scale_alpha=args.scale_alpha)


# ---------------------------------------------------------------------------------------------- main
@contextmanager
def _data_setup(download: bool, quiet: bool) -> Iterator[None]:
    """For the duration of the run, with ``--download --quiet``: the downloader's log line silenced (its errors
    still raise)."""
    logger, level = None, 0
    if download and quiet:
        import pooch

        logger = pooch.get_logger()
        level = logger.level
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        if logger is not None:
            logger.setLevel(level)


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = args.quiet
    check_flags(args)
    configs: list[Any]
    if args.dataset == "cifar":
        configs, sweep_info, kind = [cifar_config_from_args(args)], {"ds": [192]}, "cifar"
    else:
        sweep = config_from_args(args)
        configs, kind = sweep.configs(), "two_layer"
        sweep_info = {"ds": list(sweep.ds), "scale_alpha": sweep.scale_alpha, "arch": args.arch or "two_layer"}
    device = resolve_device(args.device)
    for cfg in configs if kind == "two_layer" else ():
        check_step(cfg.step, cfg.activation, device, cfg.dtype)  # --step fused where it cannot run: exit 2
    memory.check_fits(configs, device, args.max_gb)  # every d of a sweep, before the first starts
    if args.keep_outputs:  # each d's outputs in memory until written: refused before the first starts
        memory.check_outputs_fit(configs, device, args.max_gb)
    kept_bytes = sum(memory.outputs_bytes(cfg) for cfg in configs) if args.keep_outputs else 0
    out = cli.probe_dir(args.out, "--out", kept_bytes)
    cache_dir = None if args.no_cache else cli.probe_dir(args.cache_dir or default_cache_dir(), "--cache-dir")
    if args.data_dir is not None or args.download:
        from earlylin.data.cifar_files import resolve_data_dir

        cli.probe_dir(resolve_data_dir(args.data_dir), "--data-dir" if args.data_dir is not None else
                      f"--download: the data dir (${DATA_DIR_ENV} or the default)")
    every_s = None if args.no_cache else checkpoint_interval(args.checkpoint_every_s)
    warn_regime(configs, quiet)
    if args.device == "auto" and device.type == "cpu":
        progress.say("note: --device auto found no CUDA device; running on CPU", not quiet)

    with locked_dir(out, "--out"):
        return _run(args, argv, configs, kind, sweep_info, device, out, Cache(cache_dir), every_s)


def _run(args: argparse.Namespace, argv: list[str] | None, configs: list[Any], kind: str, sweep_info: dict[str, Any],
         device: Any, out: Path, cache: Cache, every_s: float | None) -> int:
    """The work of :func:`main`, once every input has been checked and ``out`` is locked."""
    quiet = args.quiet
    start = time.perf_counter()
    runs = []
    with _data_setup(args.download, quiet), progress.bar(total=len(configs), desc="d sweep", unit="d",
                                           enabled=not quiet and len(configs) > 1, leave=True) as sweep_bar:
        for cfg in configs:
            progress.say(f"running d={cfg.d} (n={cfg.n}, width={cfg.width}, {cfg.steps} steps, "
                    f"{len(cfg.seeds)} seed(s)) on {device}", not quiet)
            exp = experiment_for(cfg, data_cache_dir=cache.directory, data_dir=args.data_dir)
            if kind == "cifar":
                which = "cats vs horses" if cfg.classes is None else f"classes {list(cfg.classes)}"
                progress.say(f"loading CIFAR-10 {which} (4×4-pooled, standardised)…", not quiet)
                data = exp.data  # loaded once here (a cached property), so that the wait is announced
                progress.say(f"data: {data.source}{' (pooled arrays from the cache)' if data.from_cache else ''}",
                        not quiet)
                if (data.n_train, data.n_test) != (cfg.n, cfg.n_test):
                    raise ConfigError(f"--n {cfg.n} --n-test {cfg.n_test}: the data hold {data.n_train} training "
                                      f"and {data.n_test} test images; give --n ≤ {data.n_train} and "
                                      f"--n-test ≤ {data.n_test}")
            result = run_experiment(exp, cache, progress=not quiet, checkpoint_every_s=every_s, max_gb=args.max_gb,
                                    keep_outputs=args.keep_outputs)
            if args.keep_outputs:  # written at once (then freed), before the record that names it
                name = outputs_name(cfg.d if len(configs) > 1 else None)
                write_outputs(out / name, result.outputs())
                result.record["outputs_file"] = name
            runs.append(result.record)
            progress.say(cache_line(result.summary, len(cfg.seeds), cache.enabled), not quiet)
            sweep_bar.update(1)
    summary = sweep_summary(runs)
    record = {
        "schema": SCHEMA,
        "kind": kind,
        "argv": sys.argv[1:] if argv is None else list(argv),
        "sweep": sweep_info,
        "environment": environment(device, args.dtype, net_step=runs[0].get("net_step")),
        "runs": runs,
        "summary": summary,
        "total_wall_time_s": time.perf_counter() - start,
    }
    path = write_json_atomic(out / "record.json", record)
    print(format_table(runs, summary))
    print(f"record: {path}")
    if not args.no_plot:
        from earlylin.figures import plots  # matplotlib: only when drawing

        print(f"figure: {plots.plot_verify(record, out / 'verify.png')}")
    if any(r["summary"]["diverged_seeds"] for r in runs):
        print("earlylin: some seeds diverged (see the table); use a smaller --lr", file=sys.stderr)
        return 3
    return 0
