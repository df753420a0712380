"""One two-layer run: data → network and linear models → batched GD → metrics per step and seed.

:func:`run_two_layer` is the Python API behind ``python -m earlylin.verify``. It returns plain data
(see :func:`summarise` for the summary keys) and caches each seed's metrics under its full config.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from earlylin import compare, linearized, nets
from earlylin.activations import gaussian_constants, get_activation
from earlylin.config import DTYPES, TwoLayerConfig, resolve_device, set_exact_fp32
from earlylin.data.synthetic import make_dataset, tr_sigma2_over_d
from earlylin.errors import ConfigError
from earlylin.finite_width import finite_width_features
from earlylin.linear import features
from earlylin.records import Cache, to_jsonable
from earlylin.train import record_schedule, run_gd

STABILITY_WARN = 0.9  # warn when η exceeds this fraction of the linear model's bound 2n/λ_max


def _stack(arrays: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).to(device=device, dtype=dtype)


def _cache_payload(cfg: TwoLayerConfig, seed: int, device: torch.device) -> dict[str, Any]:
    payload = cfg.as_dict()
    payload.update(seeds=None, seed=seed, device=device.type)
    return payload


def train_seeds(cfg: TwoLayerConfig, seeds: list[int], device: torch.device, progress: bool) -> dict[int, dict]:
    """Train ``seeds`` of ``cfg`` as one batch; return {seed: metrics} (lists over recorded steps)."""
    dtype = DTYPES[cfg.dtype]
    act = get_activation(cfg.activation)
    data = [
        make_dataset(s, cfg.d, cfg.n, cfg.n_test, cfg.sigma, cfg.target, cfg.teacher_width, cfg.inputs)
        for s in seeds
    ]
    consts = gaussian_constants(act)
    nu = consts.nu(tr_sigma2_over_d(data[0].spectrum))
    f64 = torch.float64
    X64, Xt64 = _stack([b.x_train for b in data], device, f64), _stack([b.x_test for b in data], device, f64)
    y64, yt64 = _stack([b.y_train for b in data], device, f64), _stack([b.y_test for b in data], device, f64)

    psi, psi_t = features(X64, consts, nu, cfg.layers), features(Xt64, consts, nu, cfg.layers)
    psi_s, psi_st = (features(A, consts, nu, cfg.layers, stripped=True) for A in (X64, Xt64))
    inits = [nets.symmetric_init(s, cfg.width, cfg.d) for s in seeds]
    W64 = _stack([w for w, _ in inits], device, f64)
    v64 = _stack([v for _, v in inits], device, f64)
    psi_fw = tuple(finite_width_features(A, W64, v64, consts, nu, cfg.layers) for A in (X64, Xt64))
    comparison = compare.LinearComparison((psi, psi_t), (psi_s, psi_st), y64, yt64, cfg.lr, psi_fw=psi_fw)
    check_lr(cfg.lr, comparison.bound, f"d={cfg.d}, layers={cfg.layers}")

    X, Xt, y = X64.to(dtype), Xt64.to(dtype), y64.to(dtype)
    W, v = W64.to(dtype), v64.to(dtype)
    train_W = cfg.layers in ("first", "both")
    train_v = cfg.layers in ("second", "both")
    H_fixed = act.phi(X @ W.transpose(-1, -2) / math.sqrt(cfg.d)) if not train_W else None

    net_step = nets.TwoLayerStep(act, X, y, train_W, train_v)
    # the θ-linearised network (Lee et al. 2019) trains its own copy of θ alongside; the network's
    # loss alone drives the divergence checks. For the second layer alone it equals the network.
    ntk_step = linearized.LinearizedStep(act, W, v, X, y, train_W, train_v) if cfg.ntk_lin else None

    def step_fn(params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list]:
        loss, f, grads = net_step_fn(params[:2])
        if ntk_step is not None:
            grads = [*grads, *ntk_step(params[2:])[2]]
        return loss, f, grads

    def net_step_fn(params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list]:
        Wp, vp = params
        if H_fixed is None:
            loss, f, gW, gv = net_step(Wp, vp)
            return loss, f, [gW, gv]
        # second layer only: the hidden features never change, so reuse them
        f = nets.readout(H_fixed, vp) / math.sqrt(cfg.width)
        r = f - y
        gv = nets.backprop_readout(H_fixed, r) / (cfg.n * math.sqrt(cfg.width))
        return 0.5 * torch.mean(r * r, -1), f, [None, gv]

    window = compare.early_window(cfg.d, cfg.lr, cfg.window_c)
    steps = record_schedule(cfg.steps, cfg.n_log, extra=[window])
    rows: list[dict[str, torch.Tensor]] = []

    def on_record(t: int, f_train: torch.Tensor, params: list[torch.Tensor]) -> None:
        ft_net = nets.forward(act, params[0], params[1], Xt)
        row = comparison.row(t, f_train, ft_net)
        if ntk_step is not None:
            row["test_mse_ntk_lin"] = compare.mse(ft_net.double(), ntk_step.forward(params[2], params[3], Xt).double())
        rows.append(row)

    start = time.perf_counter()
    lrs = [cfg.lr if train_W else 0.0, cfg.lr if train_v else 0.0]
    params = [W, v, *ntk_step.init_params()] if ntk_step is not None else [W, v]
    diverged = run_gd(step_fn, params, lrs * (len(params) // 2), cfg.steps, steps, on_record, seeds, progress)
    wall = time.perf_counter() - start

    return comparison.per_seed(rows, steps, seeds, diverged, wall)


def check_lr(lr: float, bound: torch.Tensor, context: str) -> None:
    """Refuse η at or past the linear model's stability bound 2n/λ_max(ΨᵀΨ); warn within 10% of it."""
    limit = float(bound.min())
    if lr >= limit:
        raise ConfigError(
            f"--lr {lr:g} is past the linear model's stability bound 2n/λ_max(ΨᵀΨ) = {limit:.4g} "
            f"({context}); use --lr below {limit:.4g}"
        )
    if lr > STABILITY_WARN * limit:
        warnings.warn(f"--lr {lr:g} is within 10% of the stability bound {limit:.4g}", stacklevel=3)


def run_two_layer(cfg: TwoLayerConfig, cache: Cache | None = None, progress: bool = False) -> dict[str, Any]:
    """Run (or load from ``cache``) every seed of ``cfg``; return config, per-seed metrics and summary."""
    return run_seeds(cfg, train_seeds, cache, progress)


TrainFn = Callable[[Any, list[int], torch.device, bool], dict[int, dict]]


def run_seeds(
    cfg: TwoLayerConfig, train: TrainFn, cache: Cache | None = None, progress: bool = False, model: str | None = None
) -> dict[str, Any]:
    """Load the cached seeds of ``cfg``, train the missing ones as one batch with ``train``, summarise.

    ``model`` (e.g. "cnn1d") enters the cache key and the result's config, so that runs of different
    models with equal fields never share a cache entry."""
    cfg.validate()
    device = resolve_device(cfg.device)
    set_exact_fp32()
    cache = cache or Cache(None)

    def payload(seed: int) -> dict[str, Any]:
        return {**_cache_payload(cfg, seed, device), **({"model": model} if model else {})}

    per_seed: dict[int, dict] = {}
    for s in cfg.seeds:
        hit = cache.load(payload(s))
        if hit is not None:
            per_seed[s] = {**hit, "cached": True}
    missing = [s for s in cfg.seeds if s not in per_seed]
    start = time.perf_counter()
    if missing:
        for s, metrics in train(cfg, missing, device, progress).items():
            if metrics["diverged_at"] is None:
                cache.store(payload(s), metrics)
            per_seed[s] = {**metrics, "cached": False}
    wall = time.perf_counter() - start
    result = {
        "config": {**cfg.as_dict(), **({"model": model} if model else {})},
        "device": str(device),
        "constants": gaussian_constants(get_activation(cfg.activation)).as_dict(),
        "per_seed": {str(s): per_seed[s] for s in cfg.seeds},
    }
    result["summary"] = summarise(result, wall)
    return result


def _seed_curves(result: dict[str, Any], key: str) -> np.ndarray:
    """(K, R) array of one metric over seeds (null → NaN)."""
    rows = [result["per_seed"][s][key] for s in result["per_seed"]]
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def summarise(result: dict[str, Any], wall_time_s: float) -> dict[str, Any]:
    """The stable summary of one d: early-window maxima, escape step and last-step losses.

    Keys: early_window_steps, max_test_mse_early, max_rel_test_mse_early (and their per-seed lists),
    max_test_mse_stripped_early, max_test_mse_fw_early (finite-width model), max_test_mse_ntk_lin_early
    (with --ntk-lin), max_rel_test_mse_ntk_inf_early (CIFAR with --ntk-model),
    escape_step (on the seed-mean test MSE curve; null if not reached),
    escape_step_per_seed, test_loss_net, test_loss_lin, test_loss_stripped (last step, seed mean),
    diverged_seeds, wall_time_s.
    """
    cfg = result["config"]
    first = next(iter(result["per_seed"].values()))
    steps = first["steps"]
    window = compare.early_window(cfg["d"], cfg["lr"], cfg["window_c"])
    early = np.array(steps) <= window

    def early_max(key: str) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmax(_seed_curves(result, key)[:, early], axis=1)

    def mean_last(key: str) -> float:
        return float(np.mean(_seed_curves(result, key)[:, -1]))

    mse_seed, rel_seed = early_max("test_mse"), early_max("test_rel_mse")
    test_mse = _seed_curves(result, "test_mse")
    escape = compare.escape_step(steps, np.mean(test_mse, axis=0).tolist(), window, cfg["escape_factor"])
    return to_jsonable({
        "d": cfg["d"],
        "early_window_steps": window,
        "max_test_mse_early": float(np.mean(mse_seed)),
        "max_rel_test_mse_early": float(np.mean(rel_seed)),
        "max_test_mse_early_per_seed": mse_seed,
        "max_rel_test_mse_early_per_seed": rel_seed,
        "max_test_mse_stripped_early": float(np.mean(early_max("test_mse_stripped"))),
        "max_test_mse_fw_early": float(np.mean(early_max("test_mse_fw"))) if "test_mse_fw" in first else None,
        "max_test_mse_ntk_lin_early": float(np.mean(early_max("test_mse_ntk_lin"))) if "test_mse_ntk_lin" in first
        else None,
        "max_rel_test_mse_ntk_inf_early": float(np.mean(early_max("test_rel_mse_ntk_inf")))
        if "test_rel_mse_ntk_inf" in first else None,
        "escape_step": escape,
        "escape_step_per_seed": [
            compare.escape_step(steps, row.tolist(), window, cfg["escape_factor"]) for row in test_mse
        ],
        "test_loss_net": mean_last("test_loss_net"),
        "test_loss_lin": mean_last("test_loss_lin"),
        "test_loss_stripped": mean_last("test_loss_stripped"),
        "diverged_seeds": {s: m["diverged_at"] for s, m in result["per_seed"].items() if m["diverged_at"] is not None},
        "wall_time_s": wall_time_s,
    })
