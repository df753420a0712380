"""The result of one run: a plain-data record with a small Python surface, and its summary.

A run record is the dict ``{"config", "device", ..., "per_seed", "summary"}`` that ``record.json``
holds under ``runs``; :class:`Result` wraps one and adds arrays, a tidy table and save/load.
:func:`summarise` computes the stable summary keys (docs/theory.md §4: early-window maxima, escape
step; plus the cache provenance).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch

from earlylin.config import REGIME_EPS, paper_training, theorem_window
from earlylin.errors import ConfigError, DataError
from earlylin.experiments.analysis import sweep_summary
from earlylin.experiments.comparison import escape_step
from earlylin.experiments.linear_model import LinearModel
from earlylin.experiments.regime import (
    escape_from_minimum,
    initial_mismatch,
    linear_regime,
)
from earlylin.runtime import records
from earlylin.runtime.records import SCHEMA, to_jsonable, write_json_atomic, write_npz_atomic

# (steps, 5) and (steps, p) per seed: in per_seed, not in the tidy table
PER_STEP_EXCLUDED = ("logits_net", "logits_lin", "linear_coef")
OUTPUTS_FILE = "outputs.npz"  # a run's full outputs (keep_outputs), beside its record.json


class Summary(TypedDict, total=False):
    """The keys of ``Result.summary`` (and of each run's ``summary`` in ``record.json``), docs/theory.md §4.5.
    "Early" maxima are seed means of per-seed maxima over the range that ``maxima_over`` names."""

    d: int
    early_window_steps: int | None  #: T = c·d·log(d)/η where a theorem gives it (two-layer, 1D CNN), else None
    max_test_mse_early: float  #: max MSE(net, lin) on the test set over the early range
    max_rel_test_mse_early: float | None  #: the same, relative to mean f_net²
    max_test_mse_early_per_seed: list[float]
    max_rel_test_mse_early_per_seed: list[float | None]
    max_rel_test_mse_early_step: int | None  #: where the seed-mean relative MSE is largest in that range
    rel_test_mse_at_maxima_end: float | None  #: the seed-mean relative MSE at the end of that range
    max_test_mse_stripped_early: float
    max_test_mse_fw_early: float | None
    max_test_mse_ntk_lin_early: float | None
    max_rel_test_mse_ntk_inf_early: float | None
    maxima_over: str  #: "window" (t ≤ T), "linear regime" (t ≤ linear_regime_steps) or "whole run"
    maxima_steps: int  #: the last step of that range
    run_ends_inside_window: bool  #: T is past the last step
    escape_step: int | None  #: after T (MSE > escape_factor × its value at T); without T the observed escape
    escape_step_per_seed: list[int | None]
    escape_step_observed: int | None  #: r > escape_factor × its minimum so far, wherever it happens
    escape_step_observed_per_seed: list[int | None]
    initial_mismatch: float | None  #: r at the first recorded step after 0: the kernel's mismatch at init
    initial_mismatch_step: int | None
    initial_mismatch_per_seed: list[float | None]
    regime_eps: float  #: ε
    regime_threshold: float  #: max(ε, escape_factor × initial mismatch)
    linear_regime_steps: int | None  #: first recorded step with r > threshold; None: never
    linear_regime_time: float | None  #: the same in η·t
    linear_regime_steps_per_seed: list[int | None]
    loss_spikes: dict[str, list[int]]  #: seed → first step of each loss spike (seeds without any left out)
    maxima_include_spikes: bool  #: a spike lies in the early range: its maxima measure instability
    loss_spikes_checked: bool  #: False for mini-batch runs: batch losses rise and fall, spikes are not looked for
    test_label_agreement: float | None  #: classification (cross-entropy or K outputs): net and f^lin labels agree
    test_loss_net: float  #: at the last step, seed mean
    test_loss_lin: float
    test_loss_stripped: float
    constants: dict[str, Any] | None  #: every constant of the derived linear model (docs/theory.md §2)
    diverged_seeds: dict[str, int]
    wall_time_s: float
    compute_wall_time_s: float
    cache_hits: int
    code_fingerprint: str | None
    not_cached: str | None


def seed_curves(record: dict[str, Any], key: str) -> np.ndarray:
    """(K, R) array of one metric over seeds (null → NaN)."""
    rows = [record["per_seed"][s][key] for s in record["per_seed"]]
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def summarise(
    record: dict[str, Any], wall_time_s: float, cache_hits: int = 0, code_fingerprint: str | None = None,
    not_cached: str | None = None,
) -> Summary:
    """The stable summary of one run: a :class:`Summary` (docs/theory.md §4.5).

    The maxima ``max_*_early`` are over the theorem's window t ≤ T where a theorem gives T (two-layer net,
    1D CNN; ``maxima_over`` says "window", or "whole run" when the run ends inside T), else over the
    measured linear regime t ≤ ``linear_regime_steps`` ("linear regime", or "whole run" when the relative
    distance never exceeds ε). :mod:`earlylin.experiments.regime` measures the regime, the initial mismatch
    and the observed escape; :class:`earlylin.experiments.train.LossWatch` the loss spikes.
    """
    cfg = record["config"]
    first = next(iter(record["per_seed"].values()))
    steps = np.asarray(first["steps"])
    family = cfg.get("family", "two_layer")
    one_output = np.ndim(first.get("logits_y", [0.0])) == 1  # K outputs: no theorem covers them
    window = theorem_window(family, cfg["d"], cfg["lr"], cfg["window_c"], paper_training(cfg) and one_output)
    eps = float(cfg.get("regime_eps", REGIME_EPS))
    factor = cfg["escape_factor"]
    rel = seed_curves(record, "test_rel_mse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN steps (step 0)
        rel_mean = np.nanmean(rel, axis=0)
    mismatch_step = initial_mismatch(steps, rel_mean)[0]
    mismatch, threshold, regime = linear_regime(steps, rel_mean, eps, factor)
    mismatch_seed = [initial_mismatch(steps, row)[1] for row in rel]
    observed, observed_seed = escape_from_minimum(steps, rel_mean, factor), [
        escape_from_minimum(steps, row, factor) for row in rel]
    if window is not None:
        end, over = window, "whole run" if window >= steps[-1] else "window"
    else:
        end, over = (regime, "linear regime") if regime is not None else (int(steps[-1]), "whole run")
    early = steps <= end
    spikes = {s: m.get("loss_spikes", []) for s, m in record["per_seed"].items()}
    checked = all(v is not None for v in spikes.values())
    spikes = {s: v for s, v in spikes.items() if v}

    def early_max(key: str) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmax(seed_curves(record, key)[:, early], axis=1)

    def mean_early(key: str) -> float | None:
        return float(np.mean(early_max(key))) if key in first else None

    def mean_last(key: str) -> float:
        return float(np.mean(seed_curves(record, key)[:, -1]))

    def after_window(curve: np.ndarray) -> int | None:  # the theorem's escape: after T
        assert window is not None
        return escape_step(steps.tolist(), curve.tolist(), window, factor)

    mse_seed, rel_seed = early_max("test_mse"), early_max("test_rel_mse")
    test_mse = seed_curves(record, "test_mse")
    return to_jsonable({
        "d": cfg["d"],
        "early_window_steps": window,
        "max_test_mse_early": float(np.mean(mse_seed)),
        "max_rel_test_mse_early": float(np.mean(rel_seed)),
        "max_test_mse_early_per_seed": mse_seed,
        "max_rel_test_mse_early_per_seed": rel_seed,
        "max_test_mse_stripped_early": float(np.mean(early_max("test_mse_stripped"))),
        "max_test_mse_fw_early": mean_early("test_mse_fw"),
        "max_test_mse_ntk_lin_early": mean_early("test_mse_ntk_lin"),
        "max_rel_test_mse_ntk_inf_early": mean_early("test_rel_mse_ntk_inf"),
        "max_rel_test_mse_early_step": _argmax_step(steps, rel_mean, early),
        "rel_test_mse_at_maxima_end": _value_at(steps, rel_mean, end),
        "maxima_over": over,
        "maxima_steps": int(end),
        "run_ends_inside_window": window is not None and window >= steps[-1],
        # after T where a theorem gives T, else the observed escape
        "escape_step": observed if window is None else after_window(np.mean(test_mse, axis=0)),
        "escape_step_per_seed": observed_seed if window is None else [after_window(row) for row in test_mse],
        "escape_step_observed": observed,
        "escape_step_observed_per_seed": observed_seed,
        "initial_mismatch": mismatch,
        "initial_mismatch_step": mismatch_step,
        "initial_mismatch_per_seed": mismatch_seed,
        "regime_eps": eps,
        "linear_regime_steps": regime,
        "linear_regime_time": None if regime is None else regime * cfg["lr"],
        "regime_threshold": threshold,
        "linear_regime_steps_per_seed": [linear_regime(steps, row, eps, factor)[2] for row in rel],
        "loss_spikes": spikes,
        "maxima_include_spikes": any(0 < t <= end for v in spikes.values() for t in v),
        "loss_spikes_checked": checked,
        "test_label_agreement": (mean_last("test_label_agreement")
                                 if "test_label_agreement" in next(iter(record["per_seed"].values())) else None),
        "test_loss_net": mean_last("test_loss_net"),
        "test_loss_lin": mean_last("test_loss_lin"),
        "test_loss_stripped": mean_last("test_loss_stripped"),
        "constants": record.get("constants"),
        "diverged_seeds": {s: m["diverged_at"] for s, m in record["per_seed"].items() if m["diverged_at"] is not None},
        "wall_time_s": wall_time_s,
        "compute_wall_time_s": float(sum(m.get("wall_time_s") or 0.0 for m in record["per_seed"].values())),
        "cache_hits": int(cache_hits),
        "code_fingerprint": code_fingerprint,
        "not_cached": not_cached,
    })


def _argmax_step(steps: np.ndarray, curve: np.ndarray, mask: np.ndarray) -> int | None:
    """The recorded step (within ``mask``) where the curve is largest, None if it is undefined there."""
    values = np.where(mask & np.isfinite(curve), curve, -np.inf)
    return int(steps[int(np.argmax(values))]) if np.isfinite(values).any() else None


def _value_at(steps: np.ndarray, curve: np.ndarray, step: int) -> float | None:
    """The curve at the last recorded step ≤ ``step`` (None if undefined there)."""
    i = int(np.searchsorted(steps, step, side="right")) - 1
    return float(curve[i]) if i >= 0 and np.isfinite(curve[i]) else None


class Result:
    """One run: ``summary``, ``config``, per-seed metrics and per-step curves (what :func:`earlylin.run` and
    :func:`earlylin.run_network` return). ``record`` is the plain-data run record of ``record.json``'s
    ``runs`` (every key: docs/reference.md).

    Attributes:
        record: the run record: ``config``, ``device``, ``constants``, ``per_seed``, ``summary``.

    Example::

        import numpy as np, earlylin
        r = earlylin.run(earlylin.TwoLayerConfig(d=10, n=200, n_test=100, width=64, steps=50, seeds=(0, 1)))
        r.summary["max_test_mse_early"]   # seed mean of the early-window maximum of MSE(net, f^lin)
        r.curve("test_mse").shape         # (seeds, recorded steps)
        r.table()["step"][:3]             # tidy columns: seed, step, one column per metric
        r.save("runs/example/record.json")
        r.plot("runs/example/verify.png")
        r.linear_model.predict(np.zeros((3, 10)))  # f^lin at the last step on new inputs, (seeds, 3)
        again = earlylin.Result.load("runs/example/record.json")
        kept = earlylin.run(earlylin.TwoLayerConfig(d=10, n=200, n_test=100, width=64, steps=50), keep_outputs=True)
        kept.outputs()["test_lin"].shape  # (seeds, recorded steps, n_test): every output, every recorded step
    """

    def __init__(self, record: dict[str, Any], outputs: dict[str, np.ndarray] | None = None,
                 directory: str | os.PathLike[str] | None = None) -> None:
        """``outputs``: the run's full outputs where it kept them (``keep_outputs``); ``directory``: where the
        record was read from, so that its ``outputs_file`` is found beside it."""
        self.record = record
        self._outputs = outputs
        self._directory = None if directory is None else Path(directory)

    @property
    def summary(self) -> Summary:
        """The run's :class:`Summary` (plain data, as in ``record.json``)."""
        return self.record["summary"]

    @property
    def config(self) -> dict[str, Any]:
        return self.record["config"]

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.record["per_seed"]]

    @property
    def per_seed(self) -> dict[int, dict[str, Any]]:
        """{seed: {metric: list over recorded steps, or a scalar}} (seed keys as integers)."""
        return {int(s): m for s, m in self.record["per_seed"].items()}

    @property
    def steps(self) -> np.ndarray:
        return np.asarray(next(iter(self.record["per_seed"].values()))["steps"])

    @property
    def metrics(self) -> list[str]:
        """Names of the per-step metrics (those :meth:`curve` and :meth:`table` give)."""
        first = next(iter(self.record["per_seed"].values()))
        n = len(first["steps"])
        return [k for k, v in first.items() if isinstance(v, list) and len(v) == n and k != "steps"
                and k not in PER_STEP_EXCLUDED]

    def curve(self, key: str) -> np.ndarray:
        """(seeds, recorded steps) array of one metric (NaN where undefined)."""
        return seed_curves(self.record, key)

    def table(self) -> dict[str, np.ndarray]:
        """Tidy table: one row per (seed, recorded step), columns ``seed``, ``step`` and every metric."""
        steps = self.steps
        out: dict[str, np.ndarray] = {
            "seed": np.repeat(np.array(self.seeds), steps.size),
            "step": np.tile(steps, len(self.seeds)),
        }
        for key in self.metrics:
            out[key] = self.curve(key).reshape(-1)
        return out

    def save(self, path: str | os.PathLike[str], environment: dict[str, Any] | None = None) -> Path:
        """Write a ``record.json`` (the schema ``python -m earlylin.verify`` writes) holding this run, with
        the environment (versions, device, precision, code fingerprint) of this process unless given."""
        device = torch.device(self.record["device"])
        env = environment or records.environment(device, self.config.get("dtype", "float32"))
        if self._outputs is not None or "outputs_file" in self.record:  # the outputs file first, then the record
            write_outputs(Path(path).parent / OUTPUTS_FILE, self.outputs())
            self.record["outputs_file"], self._directory = OUTPUTS_FILE, Path(path).parent
        record = {"schema": SCHEMA, "kind": self.config.get("family", "two_layer"), "argv": None,
                  "sweep": {"ds": [self.config["d"]]}, "environment": env,
                  "runs": [self.record], "summary": sweep_summary([self.record])}
        return write_json_atomic(path, record)

    def outputs(self) -> dict[str, np.ndarray]:
        """The full outputs of the run at every recorded step, kept by ``keep_outputs=True`` (``--keep-outputs``):
        from memory, or from the run's ``outputs_file`` beside the ``record.json`` it was loaded from.

        Returns:
            {name: array}: ``steps`` (R,) and ``seeds`` (K,), then float64 arrays of shape (K, R, n) on the
            training set and (K, R, n_test) on the test set: ``train_net``, ``test_net`` (the network),
            ``train_lin``, ``test_lin`` (f^lin, or the fitted affine model), ``train_stripped``, ``test_stripped``,
            and where the family has them ``test_fw`` (finite-width model), ``test_ntk_lin`` (θ-linearised net)
            and ``test_ntk_inf`` (exact NTK model). Each metric of ``per_seed`` at recorded step j is computed
            from these arrays at index j (docs/reference.md).

        Raises:
            ConfigError: the run was made without ``keep_outputs``.
            DataError: the record names an outputs file that is missing or unreadable.

        Example::

            import earlylin
            r = earlylin.run(earlylin.TwoLayerConfig(d=8, n=40, n_test=20, width=16, steps=10), keep_outputs=True)
            out = r.outputs()
            out["test_net"][:, -1] - out["test_lin"][:, -1]   # net minus f^lin on the test set at the last step
        """
        if self._outputs is not None:
            return dict(self._outputs)
        name = self.record.get("outputs_file")
        if name is None:
            raise ConfigError("outputs: this run was made without keep_outputs, so only 5 test outputs per step "
                              "are in its record (logits_net, logits_lin); rerun it with keep_outputs=True "
                              "(python -m earlylin.verify --keep-outputs)")
        if self._directory is None:
            raise ConfigError(f"outputs: the record names {name}, but not where it lies; read it with "
                              "Result.load(path), beside which the file is looked for")
        path = self._directory / name
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read the run's outputs {path}: {exc}") from None

    @property
    def linear_model(self) -> LinearModel:
        """The run's linear model on new inputs: ``linear_model.predict(x, step=None)`` (two-layer net, 1D CNN, a
        user's network; :class:`~earlylin.experiments.linear_model.LinearModel`)."""
        return LinearModel(self.record)

    def plot(self, path: str | os.PathLike[str]) -> Path:
        """Draw the verifier's figure of this run (:mod:`earlylin.experiments.figure`: losses, distances, the
        relative distance with the measured linear regime, outputs, the V_lin split) as a PNG at ``path``;
        for every family, a user's network included. Returns the path written."""
        from earlylin.experiments.figure import plot_verify  # matplotlib only when drawing

        record = {"kind": self.config.get("family", "two_layer"), "argv": None, "runs": [self.record],
                  "summary": sweep_summary([self.record])}
        return plot_verify(record, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], index: int = 0) -> Result:
        """Run ``index`` of a saved ``record.json`` (its ``outputs_file``, if any, is read beside it by
        :meth:`outputs`)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(data["runs"][index], directory=Path(path).parent)

    def __repr__(self) -> str:
        s = self.summary
        return (f"Result(family={self.config.get('family')!r}, d={s['d']}, seeds={self.seeds}, "
                f"max_test_mse_early={s['max_test_mse_early']:.4g}, cache_hits={s.get('cache_hits')})")


def outputs_name(d: int | None = None) -> str:
    """The name of a run's outputs file beside its ``record.json``: ``outputs.npz`` for a single run, and
    ``outputs_d<d>.npz`` for the run at ``d`` of a sweep over several d."""
    return OUTPUTS_FILE if d is None else f"outputs_d{d}.npz"


def write_outputs(path: str | os.PathLike[str], outputs: dict[str, np.ndarray]) -> Path:
    """Write a run's full outputs (:meth:`Result.outputs`) as one compressed ``.npz``, atomically."""
    return write_npz_atomic(path, outputs)
