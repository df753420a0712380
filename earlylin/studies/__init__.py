"""The named studies behind every figure and paper check: run them, or load them from the cache.

A *study* is a set of runs with fixed configs — of any experiment family, through the one pipeline
(:func:`earlylin.experiments.run`; a 1D-CNN study has ``"family": "cnn1d"`` in its spec) — or of the
kernel bound (:func:`earlylin.bound.measure.run_kernel_bound`), returned as one plain-data *study
record*::

    {"study", "size", "kind", "spec", "runs" | "kernel", "summary", "environment", "wall_time_s"}

The specs of every study at both sizes (``paper``: the paper's setting, docs/theory.md §5, or our
documented choice; ``quick``: a CPU size for smoke runs whose verdicts may be inconclusive), and the
reasons for the paper-size choices, are :data:`earlylin.studies.presets.STUDY_SPECS`. Every (config, seed)
result is cached by :class:`earlylin.runtime.records.Cache` (key: full config, device and code fingerprint), and
so is every whole study record: a killed ``figures`` or ``paper_checks`` run started again
recomputes only what is missing.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from earlylin.bound.config import KernelBoundConfig
from earlylin.bound.measure import run_kernel_bound
from earlylin.config import CifarConfig, Cnn1dConfig, Sweep, TwoLayerConfig
from earlylin.errors import ConfigError, DataError
from earlylin.experiments import experiment_for, family_of, memory, run
from earlylin.experiments.analysis import sweep_summary
from earlylin.runtime.devices import resolve_device
from earlylin.runtime.progress import say
from earlylin.runtime.records import SCHEMA, Cache, environment
from earlylin.studies.alpha import alpha_runs, alpha_summary
from earlylin.studies.presets import SIZES, STUDY_SPECS
from earlylin.sweep import run_study
from earlylin.sweep.spec import grid_configs

STUDIES = tuple(STUDY_SPECS["paper"])


def spec_of(study: str, size: str) -> dict[str, Any]:
    """The spec of one study at one size, with a clear error for unknown names."""
    if size not in SIZES:
        raise ConfigError(f"size {size!r} is unknown; valid: {', '.join(SIZES)}")
    if study not in STUDY_SPECS[size]:
        raise ConfigError(f"study {study!r} is unknown; valid: {', '.join(STUDIES)}")
    return STUDY_SPECS[size][study]


def study_configs(spec: dict[str, Any], device: str) -> list[Any]:
    """The run configs of a study spec, validated (:data:`KINDS`; none for the kernel bound)."""
    configs = KINDS[spec["kind"]].configs
    return configs(spec, device) if configs is not None else []


def _two_layer(spec: dict[str, Any], device: str) -> list[Any]:
    """Kind ``two_layer``: the base config at every d of ``"ds"`` (n, m scaled by ``"scale_alpha"``), with
    ``"family": "cnn1d"`` for the 1D CNN."""
    base = _base(spec, device)
    return Sweep(base=base.with_(d=spec["ds"][0]), ds=tuple(spec["ds"]), scale_alpha=spec.get("scale_alpha")).configs()


def _two_layer_widths(spec: dict[str, Any], device: str) -> list[Any]:
    """Kind ``two_layer_widths``: the base config at the first d and every width of ``"widths"``."""
    base = _base(spec, device)
    return [base.with_(d=spec["ds"][0], width=m) for m in spec["widths"]]


def _base(spec: dict[str, Any], device: str) -> TwoLayerConfig:
    cls = Cnn1dConfig if spec.get("family") == "cnn1d" else TwoLayerConfig
    return cls(**{**spec["base"], "seeds": tuple(spec["base"]["seeds"]), "device": device})


def _cifar(points: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> Callable[[dict[str, Any], str], list[Any]]:
    """A CIFAR kind: ``"cifar"`` (the fields every run shares) with each point's fields over it."""
    def configs(spec: dict[str, Any], device: str) -> list[Any]:
        return [CifarConfig(**{**spec["cifar"], **point, "device": device}) for point in points(spec)]
    return configs


def _widths(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"arch": arch, "width": width} for arch, widths in spec["widths"].items() for width in widths]


def _grid_at_widths(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every setting of ``"grid"`` (field → values) at every width."""
    axes = spec["grid"]
    return [{**dict(zip(axes, values, strict=True)), **point}
            for values in itertools.product(*axes.values()) for point in _widths(spec)]


def _phase(spec: dict[str, Any], device: str) -> list[Any]:
    """Kind ``phase``: the sweep's grid points (:mod:`earlylin.sweep`)."""
    return grid_configs(spec["family"], spec["grid"], {**spec["fixed"], "device": device}, spec["seeds"])


TRAINING_FIELDS = ("classes", "loss", "optimizer", "batch_size")  # how a CIFAR run trains (docs/theory.md §3.3)


def _by_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("arch", "width", "activation", "cifar_norm")
    return {"by_run": [{**{k: r["config"][k] for k in keys}, **{k: r["config"][k] for k in TRAINING_FIELDS
                                                                 if k in r["config"]}, **r["summary"]}
                       for r in runs]}


@dataclass(frozen=True)
class Kind:
    """What a study kind is: how its spec becomes run configs (None: it has none of the pipeline's), how
    their records are summarised, and how the study runs (``runs``: each config through the pipeline;
    ``phase``: the sweep's point function; ``kernel``: the kernel bound)."""

    configs: Callable[[dict[str, Any], str], list[Any]] | None
    summary: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None
    runner: str = "runs"


# every study kind of earlylin.studies.presets.STUDY_SPECS, in one place
KINDS: dict[str, Kind] = {
    "two_layer": Kind(_two_layer, sweep_summary),
    "two_layer_widths": Kind(_two_layer_widths, lambda runs: {"by_width": [r["summary"] for r in runs],
                                                              "widths": [r["config"]["width"] for r in runs]}),
    "cifar": Kind(_cifar(lambda spec: [{}]), lambda runs: runs[0]["summary"]),
    "cifar_widths": Kind(_cifar(_widths), _by_run),
    "cifar_grid": Kind(_cifar(_grid_at_widths), _by_run),
    "cifar_settings": Kind(_cifar(lambda spec: list(spec["settings"])), _by_run),
    "phase": Kind(_phase, runner="phase"),
    "alpha": Kind(None, runner="alpha"),
    "kernel_bound": Kind(None, runner="kernel"),
}


def _describe(cfg: Any) -> str:
    if isinstance(cfg, CifarConfig):
        return f"CIFAR {cfg.arch} width {cfg.width} n={cfg.n} {cfg.steps} steps"
    return f"{family_of(cfg)} d={cfg.d} n={cfg.n} m={cfg.width} layers={cfg.layers} {cfg.steps} steps"


def check_memory(studies: list[str], size: str, device: str, max_gb: float | None = None) -> None:
    """Refuse, before any work, studies with a run whose estimated memory exceeds ``max_gb`` GiB (default: what
    ``device`` has available; :mod:`earlylin.experiments.memory`). The kernel-bound study checks its own
    (``max_gb`` of its config)."""
    dev = resolve_device(device)
    for study in studies:
        spec = spec_of(study, size)
        if KINDS[spec["kind"]].configs is not None:
            memory.check_fits([c for c in study_configs(spec, device) if memory.covers(c)], dev, max_gb)


def _run(study: str, size: str, spec: dict[str, Any], device: str, cache: Cache, progress: bool,
         max_gb: float | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"schema": SCHEMA, "study": study, "size": size, "kind": spec["kind"], "spec": spec}
    kind = KINDS[spec["kind"]]
    if kind.runner == "phase":  # the sweep's point function over the grid, locally: {"table", "summary"}
        say(f"[{study}] phase diagram: {', '.join(f'{k} {v}' for k, v in spec['grid'].items())}", progress)
        record.update(run_study(spec, device, cache, progress, max_gb))
    elif kind.runner == "alpha":  # a network of its own (earlylin/studies/alpha.py), run through the pipeline
        record["runs"] = alpha_runs(spec, device, cache, progress, lambda s: say(f"[{study}] {s}", progress))
        record["summary"] = alpha_summary(record["runs"], spec)
    elif kind.runner == "kernel":
        kcfg = KernelBoundConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["kernel"].items()},
                                 device=device)
        say(f"[{study}] kernel bound d={list(kcfg.ds)}", progress)
        record["kernel"] = run_kernel_bound(kcfg, progress=(lambda s: say(s, progress)) if progress else None)
        record["summary"] = record["kernel"]["summary"]
    else:
        runs = []
        for cfg in study_configs(spec, device):
            say(f"[{study}] {_describe(cfg)}", progress)
            runs.append(run(experiment_for(cfg, data_cache_dir=cache.directory), cache, progress, max_gb=max_gb).record)
        record["runs"] = runs
        assert kind.summary is not None
        record["summary"] = kind.summary(runs)
    return record



def get_study(
    study: str, size: str, device: str = "auto", cache: Cache | None = None, progress: bool = False,
    max_gb: float | None = None,
) -> dict[str, Any]:
    """The study record of ``study`` at ``size``: from the cache if a complete one is stored, else
    run (each (config, seed) inside is cached on its own, so a re-run after a kill resumes). ``max_gb``: the
    memory limit of each run (default: what the device has available)."""
    spec = spec_of(study, size)
    dev = resolve_device(device)
    cache = cache or Cache(None)
    payload = {"study": study, "size": size, "spec": spec, "device": dev.type}
    hit = cache.load(payload)
    if hit is not None:
        return hit
    start = time.perf_counter()
    record = _run(study, size, spec, device, cache, progress, max_gb)
    record["environment"] = environment(dev, "float32")
    record["wall_time_s"] = time.perf_counter() - start
    if not _any_diverged(record):
        cache.store(payload, record)
    return record


def _any_diverged(record: dict[str, Any]) -> bool:
    return any(r["summary"].get("diverged_seeds") for r in record.get("runs", []))


def load_records(studies: list[str], folder: Path, size: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Saved study records ``<folder>/<study>.json`` (as ``figures`` writes them; each must parse and be of
    ``size``), and the studies whose record is missing. A malformed or mismatched record is a DataError."""
    out, missing = {}, []
    for study in studies:
        path = folder / f"{study}.json"
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            missing.append(study)
            continue
        except ValueError as err:
            raise DataError(f"--records {folder}: {path.name} is not valid JSON ({err})") from None
        if rec.get("study") != study or rec.get("size") != size:
            raise DataError(f"--records {folder}: {path.name} holds study {rec.get('study')!r} at size "
                            f"{rec.get('size')!r}, expected {study!r} at {size!r}")
        out[study] = rec
    return out, missing
