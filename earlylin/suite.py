"""The named studies behind every figure and paper check, at two sizes, cached by their config.

A *study* is a set of runs of the existing runners (:func:`earlylin.experiment.run_two_layer`,
:func:`earlylin.cifar_experiment.run_cifar`, :func:`earlylin.kernel_bound.run_kernel_bound`) with
fixed configs, returned as one plain-data *study record*::

    {"study", "size", "kind", "spec", "runs" | "kernel", "summary", "environment", "wall_time_s"}

Sizes: ``paper`` is the paper's setting (THEORY §5) where it is known and our documented choice
where it is not; ``quick`` is a CPU size for smoke runs whose verdicts may be inconclusive. Every
(config, seed) result is cached by :class:`earlylin.records.Cache` (key: full config, device, package
version), and so is every whole study record: a killed ``figures`` or ``paper_checks`` run started
again recomputes only what is missing.

Paper-size choices where the paper is silent (THEORY §5):

- Fig 1: η = 1 for 8,000 steps (escape near step 5,200 at d = 50), seeds 0–2.
- Fig 1c: d ∈ {25, 50, 100, 200} at the paper's fixed m = 256, n = 20,000 (5,400 steps > T at
  d = 200); and with n, m ∝ d^{1+α}, α = 1/2, through the paper point (d = 50: n = 20,000, m = 256),
  d ∈ {25, 50, 100} (2,400 steps > T at d = 100; d = 200 would need n = 160k, m = 2,048).
- Fig 2: ReLU, target ½ sign(f*) + ½ tanh(standardised ‖x‖²), d = 50, m = 256, 8,000 steps.
- Fig 3: the 10k/2k pooled CIFAR set, η = 1; FC width 256 (4 hidden layers), CNN 32 channels
  (4 layers of 3×3), sized so that the whole set stays within minutes on one H100. ``fig3_fc`` /
  ``fig3_cnn`` use ReLU on per-coordinate standardised inputs (the first setting tried, where the
  claim fails); ``fig3_fc_sphere`` uses erf on inputs rescaled to ‖x‖ = √d (the CLI default: the
  theory's norm concentration, and an odd φ whose deep kernel has no ρ² term), 4,000 steps, with
  kernel GD on the exact infinite-width NTK beside it (``ntk_model``).
- Fig 3, fitted: the FC run again against the affine model least-squares-fitted to the net's
  empirical NTK (``linear="fitted"``), to tell wrong derived constants from a non-linear net.
- CIFAR width sweep: FC widths 256–2,048 and CNN 8–32 channels, 2,000 steps each, to tell
  the finite-width part of the Fig 3 gap from the rest.
- Kernel bound: d ∈ {25, 50, 100, 200}, n = m = 2·d^{3/2}, two seeds.
- Width split: d = 50, n = 20,000, m ∈ {256, 1024, 4096}, 1,000 steps (T = 978).
- Escape: d ∈ {25, 50, 100}, m = 256, n = 20,000, 16,000 steps (t* ≈ 26·d·log d at d = 50).
- First-layer theorem: first layer only, n, m ∝ d^{3/2} as for Fig 1c scaled.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from earlylin.cifar_experiment import CifarConfig, run_cifar
from earlylin.config import Sweep, TwoLayerConfig, resolve_device
from earlylin.errors import ConfigError
from earlylin.experiment import run_two_layer
from earlylin.kernel_bound import KernelBoundConfig, run_kernel_bound
from earlylin.records import SCHEMA, Cache, environment

SIZES = ("quick", "paper")
SEEDS = (0, 1, 2)
# The first Fig 3 setting: ReLU on per-coordinate standardised inputs, where the claim does not hold
RELU_COORD = {"activation": "relu", "cifar_norm": "coordinate"}

# size → study → spec. A spec is plain data: the configs' fields, so that it can key the cache.
SPECS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "fig1": {"kind": "two_layer", "ds": [50], "base": {"steps": 8000, "seeds": SEEDS}},
        "fig1c_fixed": {"kind": "two_layer", "ds": [25, 50, 100, 200], "base": {"steps": 5400, "seeds": SEEDS}},
        "fig1c_scaled": {"kind": "two_layer", "ds": [25, 50, 100], "scale_alpha": 0.5,
                         "base": {"n": 7071, "width": 90, "steps": 2400, "seeds": SEEDS}},
        "fig2": {"kind": "two_layer", "ds": [50],
                 "base": {"activation": "relu", "target": "norm", "steps": 8000, "seeds": SEEDS}},
        "fig3_fc": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "fc", "width": 256, "steps": 8000}},
        "fig3_cnn": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "cnn", "width": 32, "steps": 3000}},
        "fig3_fc_sphere": {"kind": "cifar", "cifar": {"arch": "fc", "width": 256, "steps": 4000, "ntk_model": True}},
        "fig3_fc_fitted": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "fc", "width": 256, "steps": 8000,
                                                      "linear": "fitted"}},
        "cifar_width": {"kind": "cifar_widths", "cifar": {**RELU_COORD, "steps": 2000},
                        "widths": {"fc": [256, 512, 1024, 2048], "cnn": [8, 16, 32]}},
        "kernel": {"kind": "kernel_bound", "kernel": {"ds": [25, 50, 100, 200], "seeds": [0, 1]}},
        "width": {"kind": "two_layer_widths", "ds": [50], "widths": [256, 1024, 4096],
                  "base": {"steps": 1000, "seeds": SEEDS}},
        "escape": {"kind": "two_layer", "ds": [25, 50, 100], "base": {"steps": 16000, "seeds": SEEDS}},
        "first_layer": {"kind": "two_layer", "ds": [25, 50, 100], "scale_alpha": 0.5,
                        "base": {"layers": "first", "n": 7071, "width": 90, "steps": 2400, "seeds": SEEDS}},
    },
    "quick": {
        "fig1": {"kind": "two_layer", "ds": [50], "base": {"n": 2000, "n_test": 500, "steps": 2000, "seeds": SEEDS}},
        "fig1c_fixed": {"kind": "two_layer", "ds": [10, 20, 40],
                        "base": {"n": 2000, "n_test": 500, "steps": 800, "seeds": SEEDS}},
        "fig1c_scaled": {"kind": "two_layer", "ds": [10, 20, 40], "scale_alpha": 0.5,
                         "base": {"n": 500, "n_test": 500, "width": 64, "steps": 800, "seeds": SEEDS}},
        "fig2": {"kind": "two_layer", "ds": [50], "base": {"activation": "relu", "target": "norm", "n": 2000,
                                                            "n_test": 500, "steps": 2000, "seeds": SEEDS}},
        "fig3_fc": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "fc", "width": 64, "n": 500, "n_test": 500,
                                               "steps": 300}},
        "fig3_cnn": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "cnn", "width": 16, "n": 500, "n_test": 500,
                                                "steps": 300}},
        "fig3_fc_sphere": {"kind": "cifar", "cifar": {"arch": "fc", "width": 64, "n": 500, "n_test": 500, "steps": 300,
                                                      "ntk_model": True}},
        "fig3_fc_fitted": {"kind": "cifar", "cifar": {**RELU_COORD, "arch": "fc", "width": 64, "n": 500, "n_test": 500,
                                                      "steps": 300, "linear": "fitted"}},
        "cifar_width": {"kind": "cifar_widths", "cifar": {**RELU_COORD, "n": 300, "n_test": 300, "steps": 100},
                        "widths": {"fc": [16, 32, 64], "cnn": [4, 8]}},
        "kernel": {"kind": "kernel_bound", "kernel": {"ds": [16, 32, 64], "seeds": [0, 1], "tol": 1e-5}},
        "width": {"kind": "two_layer_widths", "ds": [20], "widths": [64, 256, 1024],
                  "base": {"n": 2000, "n_test": 500, "steps": 300, "seeds": SEEDS}},
        "escape": {"kind": "two_layer", "ds": [10, 20, 40], "base": {"n": 1000, "n_test": 500, "steps": 5000,
                                                                     "seeds": (0,)}},
        "first_layer": {"kind": "two_layer", "ds": [10, 20, 40], "scale_alpha": 0.5,
                        "base": {"layers": "first", "n": 500, "n_test": 500, "width": 64, "steps": 800,
                                 "seeds": SEEDS}},
    },
}
STUDIES = tuple(SPECS["paper"])


def spec_of(study: str, size: str) -> dict[str, Any]:
    """The spec of one study at one size, with a clear error for unknown names."""
    if size not in SIZES:
        raise ConfigError(f"size {size!r} is unknown; valid: {', '.join(SIZES)}")
    if study not in SPECS[size]:
        raise ConfigError(f"study {study!r} is unknown; valid: {', '.join(STUDIES)}")
    return SPECS[size][study]


def _two_layer_configs(spec: dict[str, Any], device: str) -> list[TwoLayerConfig]:
    base = TwoLayerConfig(**{**spec["base"], "seeds": tuple(spec["base"]["seeds"]), "device": device})
    if spec["kind"] == "two_layer_widths":
        return [base.with_(d=spec["ds"][0], width=m).validate() for m in spec["widths"]]
    return Sweep(base=base.with_(d=spec["ds"][0]), ds=tuple(spec["ds"]), scale_alpha=spec.get("scale_alpha")).configs()


def _run(study: str, size: str, spec: dict[str, Any], device: str, cache: Cache, progress: bool) -> dict[str, Any]:
    from earlylin.verify import sweep_summary

    record: dict[str, Any] = {"schema": SCHEMA, "study": study, "size": size, "kind": spec["kind"], "spec": spec}
    if spec["kind"] in ("two_layer", "two_layer_widths"):
        runs = []
        for cfg in _two_layer_configs(spec, device):
            _say(progress, f"[{study}] d={cfg.d} n={cfg.n} m={cfg.width} layers={cfg.layers} {cfg.steps} steps")
            runs.append(run_two_layer(cfg, cache, progress=progress))
        record["runs"] = runs
        record["summary"] = sweep_summary(runs) if spec["kind"] == "two_layer" else {
            "by_width": [r["summary"] for r in runs], "widths": [r["config"]["width"] for r in runs]}
    elif spec["kind"] in ("cifar", "cifar_widths"):
        grid = [{}] if spec["kind"] == "cifar" else [
            {"arch": arch, "width": width} for arch, widths in spec["widths"].items() for width in widths]
        runs = []
        for point in grid:
            cfg = CifarConfig(**{**spec["cifar"], **point, "device": device}).validate()
            _say(progress, f"[{study}] CIFAR {cfg.arch} width {cfg.width} n={cfg.n} {cfg.steps} steps")
            runs.append(run_cifar(cfg, cache, progress=progress))
        record["runs"] = runs
        record["summary"] = runs[0]["summary"] if spec["kind"] == "cifar" else {
            "by_run": [{"arch": r["config"]["arch"], "width": r["config"]["width"], **r["summary"]} for r in runs]}
    else:
        kcfg = KernelBoundConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["kernel"].items()},
                                 device=device)
        _say(progress, f"[{study}] kernel bound d={list(kcfg.ds)}")
        record["kernel"] = run_kernel_bound(kcfg, progress=(lambda s: _say(progress, s)) if progress else None)
        record["summary"] = record["kernel"]["summary"]
    return record


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def get_study(
    study: str, size: str, device: str = "auto", cache: Cache | None = None, progress: bool = False,
) -> dict[str, Any]:
    """The study record of ``study`` at ``size``: from the cache if a complete one is stored, else
    run (each (config, seed) inside is cached on its own, so a re-run after a kill resumes)."""
    spec = spec_of(study, size)
    dev = resolve_device(device)
    cache = cache or Cache(None)
    payload = {"study": study, "size": size, "spec": spec, "device": dev.type}
    hit = cache.load(payload)
    if hit is not None:
        return hit
    start = time.perf_counter()
    record = _run(study, size, spec, device, cache, progress)
    record["environment"] = environment(dev, "float32")
    record["wall_time_s"] = time.perf_counter() - start
    if not _any_diverged(record):
        cache.store(payload, record)
    return record


def _any_diverged(record: dict[str, Any]) -> bool:
    return any(r["summary"].get("diverged_seeds") for r in record.get("runs", []))
