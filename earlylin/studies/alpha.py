"""The output scale α of lazy training (Chizat & Bach 2019; docs/theory.md §3.3): how long a network stays with its
θ-linearisation as α grows, at fixed η·t.

One network — a tanh MLP d → width → 1 in the standard torch initialisation, on the synthetic two-layer data (the
``teacher`` target, labels ±1) — trained as f_α = α(g(θ_A) − g(θ_B))/√2 on the squared loss / α² by full-batch GD,
with its θ-linearisation alongside (``ntk_lin``), for each α of the spec. The function-space dynamics do not depend
on α while θ moves 1/α as far, so the relative MSE of the net to its linearisation at fixed η·t falls at least like
α⁻² (the distance is O(1/α)), and the linear regime (that relative MSE ≤ ``threshold``) lasts longer.

:func:`alpha_runs` runs the study through the pipeline (each run cached like any other); :func:`alpha_summary`
reads, per α, the relative MSE at η·t = ``at_lr_t`` and the regime's end, and fits the log-log slope in α.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from earlylin.config import NetworkConfig, TwoLayerConfig
from earlylin.data.arrays import Arrays
from earlylin.data.synthetic import make_dataset
from earlylin.experiments import Network, run
from earlylin.experiments.analysis import loglog_fit, seed_mean
from earlylin.runtime.records import Cache


def _data(spec: dict[str, Any]) -> Arrays:
    """The two-layer net's synthetic data (isotropic Gaussian inputs, the ``teacher`` labels ±1) of seed 0."""
    base = TwoLayerConfig()
    s = make_dataset(spec.get("data_seed", 0), spec["d"], spec["n"], spec["n_test"], base.sigma, base.target,
                     base.teacher_width, base.inputs)
    return Arrays(s.x_train, s.y_train, s.x_test, s.y_test)


def _net(spec: dict[str, Any]) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.get("net_seed", 0))
        return torch.nn.Sequential(torch.nn.Linear(spec["d"], spec["width"]), torch.nn.Tanh(),
                                   torch.nn.Linear(spec["width"], 1))


def alpha_configs(spec: dict[str, Any], device: str) -> list[NetworkConfig]:
    """The run config of each α (validated at construction)."""
    return [NetworkConfig(lr=spec["lr"], steps=spec["steps"], n_fit=spec["n_fit"], alpha=float(alpha), ntk_lin=True,
                          dtype="float64", device=device, name="custom:tanh_mlp") for alpha in spec["alphas"]]


def alpha_runs(spec: dict[str, Any], device: str, cache: Cache, progress: bool, say: Any) -> list[dict[str, Any]]:
    data, runs = _data(spec), []
    for cfg in alpha_configs(spec, device):
        say(f"α = {cfg.alpha:g}")
        runs.append(run(Network(_net(spec), data, cfg), cache, progress).record)
    return runs


def alpha_summary(runs: list[dict[str, Any]], spec: dict[str, Any]) -> dict[str, Any]:
    """Per α: the relative MSE(net, θ-linearisation) at the recorded step nearest η·t = ``at_lr_t``, the first step
    where it exceeds ``threshold`` (None: never), and the log-log slope of the former in α."""
    alphas, at, ends = [], [], []
    for r in runs:
        steps = np.array(next(iter(r["per_seed"].values()))["steps"])
        rel = seed_mean(r, "test_rel_mse_ntk_lin")
        i = int(np.argmin(np.abs(steps * r["config"]["lr"] - spec["at_lr_t"])))
        over = np.flatnonzero((steps > 0) & (rel > spec["threshold"]))
        alphas.append(float(r["config"]["alpha"]))
        at.append(float(rel[i]))
        ends.append(int(steps[over[0]]) if over.size else None)
    slope = loglog_fit(np.array(alphas), np.array(at))
    return {"alphas": alphas, "rel_mse_ntk_lin_at": at, "at_lr_t": spec["at_lr_t"], "threshold": spec["threshold"],
            "regime_end_steps": ends, "slope": slope}
