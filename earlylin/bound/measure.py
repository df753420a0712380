"""The kernel bound of docs/theory.md §4, measured: ‖Θ(0) − Θ^lin‖_op against ‖Θ^lin‖_op over d, n, m.

The proof's key step bounds ‖Θ(0) − Θ^lin‖_op ≲ n/d^{1+α} (n, m ≳ d^{1+α}), while ‖Θ^lin‖_op ≍ n/d, so
the ratio ‖Θ(0) − Θ^lin‖/‖Θ^lin‖ should fall like d^{−α}. The one concern here is the measurement and
its record: :func:`measure_blocks` takes both norms per block (operators of :mod:`earlylin.bound.operator`,
spectral norms by :mod:`earlylin.bound.lanczos`), :func:`run_kernel_bound` sweeps the grid of a
:class:`~earlylin.bound.config.KernelBoundConfig`, and :func:`fit_exponents` fits

    log y = c + a_d log d + a_n log n + a_m log m

by least squares over the grid (a column tied to the earlier ones is folded in), per seed and for the
seed mean. (Finite-width error, ≈ 2√(d/m) relative for Θ₂, shows up as the m-dependence of the fitted
exponents.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from earlylin.activations import Activation, GaussianConstants
from earlylin.bound.config import KernelBoundConfig
from earlylin.bound.lanczos import extreme_eig
from earlylin.bound.operator import BLOCKS, KernelDifference, TangentKernel, check_block, lin_norm, mirror_half
from earlylin.linear.features import features

__all__ = ["EXPONENT_COLUMNS", "METRICS", "fit_exponents", "measure_blocks", "run_kernel_bound", "summarise"]

EXPONENT_COLUMNS = ("d", "n", "m")
TIED_LOG_RMS = 0.05  # fit_exponents: a log column within this RMS of the span of earlier ones is "tied"
METRICS = ("diff_norm", "lin_norm", "ratio", "offdiag_norm", "offdiag_ratio", "diag_max_abs", "diff_over_n_per_d")


def measure_blocks(
    act: Activation,
    X: torch.Tensor,
    W: torch.Tensor,
    v: torch.Tensor,
    consts: GaussianConstants,
    nu: float,
    *,
    blocks: Sequence[str] = BLOCKS,
    method: str = "lanczos",
    tol: float = 1e-6,
    max_iter: int = 300,
    chunk: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per block, the spectral norms of Θ − ΨΨᵀ (full and off-diagonal) and of ΨΨᵀ for K networks.

    Args: X (K, n, d), W (K, m, d), v (K, m) in float64; ``nu`` = ν for the inputs' Σ (docs/theory.md §2).
    Returns: {block: {name: tensor (K,) or int}} with ``diff_norm`` ‖Θ − ΨΨᵀ‖, ``diff_eigenvalue``
    (its signed extreme eigenvalue), ``lin_norm`` ‖ΨΨᵀ‖, ``ratio``, ``offdiag_norm``, ``offdiag_ratio``,
    ``diag_max_abs`` = ‖diag(Θ − ΨΨᵀ)‖_op, ``diag_mean``, and the solver's ``iterations``,
    ``iterations_to_tol``, ``residual``, ``converged`` (prefixed ``offdiag_`` for the second run).
    """
    kernel = TangentKernel(act, X, W, v, chunk=chunk)
    out: dict[str, dict[str, Any]] = {}
    for block in blocks:
        check_block(block)
        psi = features(X, consts, nu, block)
        diff = KernelDifference(kernel, psi, block, offdiag=(False, True))
        eig = extreme_eig(diff, method=method, tol=tol, max_iter=max_iter, seed=seed)
        lin = lin_norm(psi).cpu()
        D = diff.diagonal.cpu()
        res: dict[str, Any] = {
            "lin_norm": lin,
            "diag_max_abs": D.abs().amax(-1),
            "diag_mean": D.mean(-1),
            "iterations": eig.iterations,
        }
        for s, name, prefix in ((0, "diff", ""), (1, "offdiag", "offdiag_")):
            res[f"{name}_norm"] = eig.norm[:, s]
            res[f"{name}_eigenvalue"] = eig.eigenvalue[:, s]
            res[f"{prefix}ratio"] = eig.norm[:, s] / lin
            res[f"{prefix}residual"] = eig.residual[:, s]
            res[f"{prefix}iterations_to_tol"] = eig.iterations_to_tol[:, s]
            res[f"{prefix}converged"] = eig.converged[:, s]
        out[block] = res
    return out



def fit_exponents(points: Sequence[tuple[int, int, int]], values: np.ndarray) -> dict[str, Any]:
    """Least-squares log-log exponents of ``values`` (P points × K seeds) in d, n, m.

    The design is [1, log d, log n, log m]; a column in the span of the ones before it (n or m tied
    to d by a scaling rule — up to rounding: RMS log residual ≤ :data:`TIED_LOG_RMS` — or held
    fixed) is left out, so its effect is *folded* into the earlier
    exponent (with n = c·d^{1+α} the d-exponent is the total slope along that path). Returns
    ``columns`` (fitted), ``fixed`` (constant over the grid), ``tied`` (a function of earlier
    columns), ``per_seed`` [{col: exponent}], ``mean``/``std`` over seeds
    (std with ddof 1, 0 for one seed) and ``of_seed_mean`` (the fit of the seed-mean values)."""
    logs = np.log(np.asarray(points, dtype=float)).reshape(len(points), 3)
    design = [np.ones(len(points))]
    columns: list[str] = []
    for j, name in enumerate(EXPONENT_COLUMNS):
        col = logs[:, j]
        basis = np.stack(design, axis=1)
        resid = col - basis @ np.linalg.lstsq(basis, col, rcond=None)[0]
        if np.sqrt(np.mean(resid**2)) > TIED_LOG_RMS:
            design.append(col)
            columns.append(name)
    folded = [c for c in EXPONENT_COLUMNS if c not in columns]
    fixed = [c for c in folded if np.ptp(logs[:, EXPONENT_COLUMNS.index(c)]) == 0.0]
    A = np.stack(design, axis=1)
    vals = np.asarray(values, dtype=float).reshape(len(points), -1)

    def fit(y: np.ndarray) -> dict[str, float | None]:
        ok = np.isfinite(y) & (y > 0)
        if not columns or ok.sum() < len(design):
            return dict.fromkeys(columns)
        coef = np.linalg.lstsq(A[ok], np.log(y[ok]), rcond=None)[0]
        return {c: float(coef[i + 1]) for i, c in enumerate(columns)}

    per_seed = [fit(vals[:, k]) for k in range(vals.shape[1])]
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for c in columns:
        xs = np.array([p[c] for p in per_seed if p[c] is not None], dtype=float)
        mean[c] = float(xs.mean()) if xs.size else None
        std[c] = (float(xs.std(ddof=1)) if xs.size > 1 else 0.0) if xs.size else None
    return {
        "columns": columns,
        "fixed": fixed,
        "tied": [c for c in folded if c not in fixed],
        "per_seed": per_seed,
        "mean": mean,
        "std": std,
        "of_seed_mean": fit(np.nanmean(vals, axis=1)),
    }



def _point_data(
    cfg: KernelBoundConfig, d: int, n: int, m: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """X (K, n, d), W (K, m, d), v (K, m) in float64 for the seeds of ``cfg`` (the same draws as
    :mod:`earlylin.verify` at that seed), and Tr(Σ²)/d of the inputs' Σ (for ν)."""
    from earlylin.data.synthetic import make_dataset, sigma_spectrum, tr_sigma2_over_d
    from earlylin.nets.two_layer import symmetric_init

    Xs, Ws, vs = [], [], []
    for s in cfg.seeds:
        data = make_dataset(s, d, n, 1, cfg.sigma, "teacher", inputs=cfg.inputs)
        W, v = symmetric_init(s, m, d)
        Xs.append(data.x_train)
        Ws.append(W)
        vs.append(v)

    def stack(a: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(a)).to(device=device, dtype=torch.float64)

    return stack(Xs), stack(Ws), stack(vs), tr_sigma2_over_d(sigma_spectrum(cfg.sigma, d))


def run_kernel_bound(cfg: KernelBoundConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every grid point of ``cfg`` under exact fp32 (:func:`earlylin.runtime.devices.exact_fp32`);
    return the plain-data record (``kind`` "kernel_bound").

    Keys: schema, kind, config, environment, constants (ζ, …, ν), rows (one dict per (d, n, m,
    seed, block) with every metric of :func:`measure_blocks`), points (per (d, n, m): wall time,
    mirrored, neurons summed) and summary (:func:`summarise`).
    """
    from earlylin.runtime.devices import exact_fp32

    with exact_fp32():
        return _run_kernel_bound(cfg, progress)


def _run_kernel_bound(cfg: KernelBoundConfig, progress: Callable[[str], None] | None) -> dict[str, Any]:
    import time

    from earlylin.activations import gaussian_constants, get_activation
    from earlylin.runtime.devices import resolve_device
    from earlylin.runtime.records import SCHEMA, environment

    device = resolve_device(cfg.device)
    act = get_activation(cfg.activation)
    consts = gaussian_constants(act)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    nu = consts.nu()
    for d, n, m in cfg.grid():
        t0 = time.perf_counter()
        X, W, v, tr2 = _point_data(cfg, d, n, m, device)
        nu = consts.nu(tr2)
        res = measure_blocks(act, X, W, v, consts, nu, blocks=cfg.blocks, method=cfg.method, tol=cfg.tol,
                             max_iter=cfg.max_iter, chunk=cfg.chunk)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
        points.append({"d": d, "n": n, "m": m, "mirrored": bool(mirror_half(W, v)[2]), "wall_time_s": wall})
        for k, seed in enumerate(cfg.seeds):
            for block in cfg.blocks:
                r = res[block]
                row: dict[str, Any] = {"d": d, "n": n, "m": m, "seed": seed, "block": block}
                for key, val in r.items():
                    if isinstance(val, torch.Tensor):
                        item = val[k].item()
                        row[key] = bool(item) if val.dtype == torch.bool else item
                    else:
                        row[key] = val
                row["diff_over_n_per_d"] = row["diff_norm"] * d / n
                rows.append(row)
        if progress is not None:
            its = ", ".join(f"{b} {res[b]['iterations']}" for b in cfg.blocks)
            progress(f"d={d} n={n} m={m}: {wall:.1f}s (Lanczos steps: {its})")
    return {
        "schema": SCHEMA,
        "kind": "kernel_bound",
        "config": cfg.as_dict(),
        "environment": environment(device, "float64"),
        "constants": {**consts.as_dict(), "nu": nu},
        "points": points,
        "rows": rows,
        "summary": summarise(rows, cfg, time.perf_counter() - start),
    }


def _by_point(rows: list[dict[str, Any]], block: str, seeds: Sequence[int], key: str) -> tuple[list, np.ndarray]:
    pts = sorted({(r["d"], r["n"], r["m"]) for r in rows if r["block"] == block})
    index = {(r["d"], r["n"], r["m"], r["seed"]): r for r in rows if r["block"] == block}
    vals = np.array([[index[(*p, s)][key] for s in seeds] for p in pts], dtype=float)
    return pts, vals


def summarise(rows: list[dict[str, Any]], cfg: KernelBoundConfig, wall_time_s: float) -> dict[str, Any]:
    """``slope_by_block`` / ``offdiag_slope_by_block``: the d-exponent of the ratio (and of the
    off-diagonal ratio) per block — mean ± std over seeds, per seed, and of the seed mean — with n and
    m folded in when they follow d (:func:`fit_exponents`); ``exponents_by_block``: every metric's
    exponents in d, n, m; convergence of every spectral norm."""
    seeds = list(cfg.seeds)
    slope: dict[str, Any] = {}
    off_slope: dict[str, Any] = {}
    exps: dict[str, Any] = {}
    for block in cfg.blocks:
        exps[block] = {}
        for key in METRICS:
            pts, vals = _by_point(rows, block, seeds, key)
            exps[block][key] = fit_exponents(pts, vals)
        for target, key in ((slope, "ratio"), (off_slope, "offdiag_ratio")):
            fit = exps[block][key]
            target[block] = {
                "metric": key,
                "vs": "d",
                "mean": fit["mean"].get("d"),
                "std": fit["std"].get("d"),
                "per_seed": {str(s): p.get("d") for s, p in zip(seeds, fit["per_seed"], strict=True)},
                "of_seed_mean": fit["of_seed_mean"].get("d"),
                "fixed": fit["fixed"],
                "tied_to_d": fit["tied"] if "d" in fit["columns"] else [],
            }
    residuals = [r[k] for r in rows for k in ("residual", "offdiag_residual")]
    return {
        "slope_by_block": slope,
        "offdiag_slope_by_block": off_slope,
        "exponents_by_block": exps,
        "all_converged": all(r["converged"] and r["offdiag_converged"] for r in rows),
        "max_residual": float(np.nanmax(residuals)) if residuals else None,
        "max_iterations": max((r["iterations"] for r in rows), default=0),
        "wall_time_s": wall_time_s,
    }
