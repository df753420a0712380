"""The terminal report of ``python -m earlylin.verify``: the per-step table of each run, the
closeness-vs-d table of a sweep, and the one line saying what came from the cache.

A value the record holds as null (undefined: e.g. the relative MSE while the network's output is
still zero up to rounding) prints as "n/a"; an early window T past the last step is said so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from earlylin.experiments import family_of

TABLE_KEYS = (
    ("train_loss_net", "train loss net"),
    ("test_loss_net", "test loss net"),
    ("test_loss_lin", "test loss lin"),
    ("test_mse", "MSE(net,lin)"),
    ("test_rel_mse", "rel MSE"),
    ("test_mse_stripped", "MSE(net,strip)"),
)
SPLIT_KEYS = (("test_res_perp_net", "V⊥ resid net"), ("test_res_perp_lin", "V⊥ resid lin"))


def _num(value: Any, spec: str) -> str:
    """``value`` formatted with ``spec``, or "n/a" where the record holds null (undefined, e.g. the
    relative MSE while the network's output is still zero up to rounding)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def format_table(runs: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """The terminal report: per-step table of each run, then the closeness-vs-d table if several d."""
    lines = []
    for run in runs:
        cfg, s = run["config"], run["summary"]
        seed0 = next(iter(run["per_seed"].values()))
        steps = seed0["steps"]
        family = family_of(cfg)
        model = (f"arch={cfg['arch']} depth={cfg['depth']}" if family == "cifar" else
                 f"layers={cfg['layers']} q={cfg['filter_size']}" if family == "cnn1d" else f"layers={cfg['layers']}")
        lines.append(
            f"d={cfg['d']} width={cfg['width']} n={cfg['n']} {model} φ={cfg['activation']} "
            f"η={cfg['lr']:g} seeds={cfg['seeds']} T={s['early_window_steps']} (seed-mean values)"
        )
        lines.append(regime_line(s, cfg["lr"]))
        keys = TABLE_KEYS + (SPLIT_KEYS if family == "cifar" else ())
        lines.append(f"{'step':>7} " + " ".join(f"{label:>15}" for _, label in keys))
        show = sorted({steps[0], steps[-1], *(steps[i] for i in np.linspace(0, len(steps) - 1, 9).astype(int))}
                      | ({s["early_window_steps"], s.get("linear_regime_steps")} & set(steps)))
        for t in show:
            i = steps.index(t)
            vals = []
            for key, _ in keys:
                col = [m[key][i] for m in run["per_seed"].values()]
                col = [np.nan if c is None else c for c in col]
                vals.append("nan" if np.all(np.isnan(col)) else f"{np.nanmean(col):.5f}")
            lines.append(f"{t:>7} " + " ".join(f"{v:>15}" for v in vals))
        lines.append(
            f"  max test MSE(net,lin) {_over(s)}: {_num(s['max_test_mse_early'], '.3g')}   "
            f"max rel MSE: {_num(s['max_rel_test_mse_early'], '.3g')}{_where_max(s)}   "
            f"max MSE(net,stripped): {_num(s['max_test_mse_stripped_early'], '.3g')}   "
            f"escape step: {s['escape_step']}   {_wall(s, len(run['per_seed']))}"
        )
        if s["max_rel_test_mse_early"] is None:
            lines.append("  rel MSE n/a: the network's test output stayed at 0 up to rounding (mean f² ≤ 1e-12), "
                         "so MSE/mean f² is undefined; raise --lr or --steps")
        if s.get("loss_spikes"):
            lines.append(f"  LOSS SPIKES (seed: first step of each rise of the train loss above 1.5× its lowest so "
                         f"far): {s['loss_spikes']}" + ("; the maxima above include them: they measure instability, "
                                                         "not closeness" if s.get("maxima_include_spikes") else ""))
        if s["diverged_seeds"]:
            lines.append(f"  DIVERGED seeds (seed: first bad step): {s['diverged_seeds']}")
        lines.append("")
    if "by_d" in summary:
        lines.append(f"{'d':>6} {'m':>7} {'n':>8} {'T':>6} {'max MSE t≤T':>12} {'max rel MSE':>12} {'escape':>7}")
        for run in runs:
            s, c = run["summary"], run["config"]
            lines.append(
                f"{s['d']:>6} {c['width']:>7} {c['n']:>8} {s['early_window_steps']!s:>6} "
                f"{_num(s['max_test_mse_early'], '>12.4g'):>12} {_num(s['max_rel_test_mse_early'], '>12.4g'):>12} "
                f"{s['escape_step']!s:>7}"
            )
        esc = summary["escape"]
        lines.append("escape step t* vs d·log(d)/η: " + ", ".join(
            f"d={d}: t*={t} (c*={'—' if c is None else f'{c:.2f}'})"
            for d, t, c in zip(esc["d"], esc["escape_step"], esc["c_star"], strict=True)))
        sl = summary["slope"]
        lines.append(
            f"log-log slope of max rel MSE vs d: {_num(sl['mean'], '.3f')} ± {_num(sl['std'], '.3f')} (over seeds; "
            f"of the seed mean: {_num(sl['of_seed_mean'], '.3f')})"
        )
    return "\n".join(lines)


def regime_line(s: dict[str, Any], lr: float) -> str:
    """The initial mismatch, the measured linear regime and the theorem's T side by side (docs/theory.md §4.5)."""
    regime = s.get("linear_regime_steps")
    eps = s.get("regime_threshold", s.get("regime_eps"))
    shown = (f"{regime:,} steps (η·t = {regime * lr:.4g})" if regime is not None
             else "the whole run (never exceeded)")
    T = s["early_window_steps"]
    theorem = "no theorem for this network and training" if T is None else f"{T:,} steps" + (
        " (past the last step)" if s.get("run_ends_inside_window") else "")
    step = s.get("initial_mismatch_step")
    return (f"  initial mismatch (rel MSE at step {step}: the tangent kernel's mismatch at initialisation, not drift): "
            f"{_num(s.get('initial_mismatch'), '.3g')}   linear regime (rel MSE ≤ {_num(eps, '.3g')}): {shown}   "
            f"theorem's window T: {theorem}")


def _where_max(s: dict[str, Any]) -> str:
    """Where the maximum of the relative MSE sits: at the initial mismatch or later; and its value at the end."""
    at = s.get("max_rel_test_mse_early_step")
    if at is None:
        return ""
    what = ", the initial mismatch" if at == s.get("initial_mismatch_step") else ""
    end = "T" if s.get("maxima_over") == "window" else f"step {s.get('maxima_steps')}"
    return f" (at step {at}{what}; at {end}: {_num(s.get('rel_test_mse_at_maxima_end'), '.3g')})"


def _over(s: dict[str, Any]) -> str:
    """What the early maxima are taken over (:func:`earlylin.experiments.result.summarise`)."""
    over = s.get("maxima_over", "window")
    if over == "window":
        return "for t ≤ T"
    if over == "linear regime":
        return f"over the linear regime (t ≤ {s['maxima_steps']:,})"
    return "over the whole run" + (" (it ends inside T)" if s.get("run_ends_inside_window") else "")


def _wall(summary: dict[str, Any], n_seeds: int) -> str:
    """``wall: 42.3s``, or for seeds from the cache how long their computation took when it ran."""
    hits = summary.get("cache_hits") or 0
    compute = summary.get("compute_wall_time_s")
    wall = f"wall: {summary['wall_time_s']:.1f}s"
    if not hits or compute is None:
        return wall
    which = "all seeds" if hits == n_seeds else f"{hits} of {n_seeds} seeds"
    return f"{wall} ({which} from the cache; computing them took {compute:.1f}s)"


def cache_line(summary: dict[str, Any], n_seeds: int, enabled: bool) -> str:
    """One line saying which seeds came from the cache, under which code fingerprint."""
    if not enabled:
        return f"cache: off (--no-cache); {n_seeds} seed(s) computed, code {summary['code_fingerprint']}"
    if summary.get("not_cached"):
        return f"cache: not used: {summary['not_cached']}"
    return (f"cache: {summary['cache_hits']} of {n_seeds} seed(s) from the cache, "
            f"{n_seeds - summary['cache_hits']} computed (code {summary['code_fingerprint']})")
