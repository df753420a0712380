"""Gaussian quadrature: one- and two-dimensional expectations E[f(g)], E[f(u, u′)] of an activation.

The only concern here is integrating against a Gaussian density in float64 numpy (no JAX, no
autodiff); what is integrated is decided by the callers (:mod:`earlylin.activations` for the constants
of docs/theory.md §2, :mod:`earlylin.ntk` for the deep-net kernels of docs/theory.md §5). Activations
are used only through their fields ``phi``, ``dphi``, ``kinks`` and ``name`` (this module does not
import :mod:`earlylin.activations`, which imports it).

**One dimension** (:func:`gaussian_expectation`, g ~ N(0, 1)):

- smooth f: Gauss–Hermite (probabilists' weight e^{−g²/2}, :func:`numpy.polynomial.hermite_e.hermegauss`),
  exact for polynomials up to degree 2N − 1 and spectrally accurate for analytic integrands;
- f with kinks: composite Gauss–Legendre on [−14, k₁], …, [k_j, 14], so that every piece is analytic
  (the tail beyond ±14 is below 1e-40).

**Two dimensions.** For (u, u′) ~ N(0, [[s, c], [c, s′]]) and the activation φ,

    F(s, s′, c) = E[φ(u) φ(u′)],   G(s, s′, c) = E[φ′(u) φ′(u′)],   V(s) = F(s, s, s)     (K1)

in closed form for erf (arcsin kernels, Williams 1997) and for the piecewise-linear family
φ(z) = z (z ≥ 0), a·z (z < 0) (arc-cosine kernels, Cho & Saul 2009), with α = (1+a)/2, β = (1−a)/2,
r = c/√(ss′):

    erf:   F = (2/π) arcsin(2c/√((1+2s)(1+2s′))),   G = (4/π)/√((1+2s)(1+2s′) − 4c²)
    leaky: F = α² c + β² (2/π) √(ss′) (√(1−r²) + r arcsin r),   G = α² + β² (2/π) arcsin r

and otherwise (and for every Hermite-weighted term below) by a conditional two-dimensional rule:
u = √s g₁, u′ = √s′ (r g₁ + √(1−r²) g₂) with g₁, g₂ iid N(0, 1), each integrated by composite
Gauss–Legendre on [−12, 12] with ⌈8√max(s, s′)⌉ (≥ 8) uniform panels of 16 nodes, the panels also
split at the kinks κ of φ: at g₁ = κ/√s (outer) and, for each outer node, at
g₂ = (κ/√s′ − r g₁)/√(1−r²) (inner), so that every panel is analytic. (A tensor Gauss–Hermite rule
is only O(N^{−3/2})-accurate at a kink, and for smooth φ it loses digits when r → 1 and s ≳ 2,
where the g₁-integrand is a product of two factors of width 1/√s: 1e-6 at s = 2.3, r = 0.9995
with 96 nodes. The panel rule is ≲ 1e-13 there; measured for erf, tanh, GELU up to s = 10.)

**Hermite weights.** Derivatives of F, G with respect to s, s′, c move onto the Gaussian density
(heat equation / Price's theorem) and then onto h_α = ∂^α N/N (N the bivariate density,
P = [[s, c], [c, s′]]⁻¹, w = P(u, u′)ᵀ):

    h₁₁ = w₁² − P₁₁,   h₁₂ = w₁w₂ − P₁₂,   h₁₁₁₁ = w₁⁴ − 6P₁₁w₁² + 3P₁₁²,
    h₁₁₁₂ = w₁³w₂ − 3P₁₁w₁w₂ − 3P₁₂w₁² + 3P₁₁P₁₂,
    h₁₁₂₂ = w₁²w₂² − P₁₁w₂² − P₂₂w₁² − 4P₁₂w₁w₂ + P₁₁P₂₂ + 2P₁₂²                         (K5)

and :func:`gaussian_pair_expectations` returns E[φφ h_α] and E[φ′φ′ h_α] (the partials of F, G built
from them, (K6), are in :mod:`earlylin.ntk.linearise`); on the diagonal, :func:`diag_expectations`
returns V, V̇(s) = E[φ′(u)²] and the diagonal part of (K6),

    V′(s) = E[φ(u)² He₂(g)]/(2s),   V″(s) = E[φ(u)² He₄(g)]/(4s²)    (u = √s g),

so only φ and φ′ are ever evaluated (ReLU needs no delta functions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
import torch

# activations imports this module, so it never imports activations: an activation here is any object
# with the attributes of earlylin.activations.Activation (name, phi, dphi, kinks), typed structurally.
Fn = Callable[[torch.Tensor], torch.Tensor]
Activation = Any

__all__ = ["diag_expectations", "gaussian_expectation", "gaussian_pair_expectations"]

_CUTOFF = 12.0  # Gaussian tail beyond ±12 is < 1e-32
_CUTOFF_1D = 14.0  # gaussian_expectation's panels: tail beyond ±14 is < 1e-40
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_PANEL_NODES = 16  # Gauss–Legendre nodes per panel
_MIN_PANELS = 8  # uniform panels on [−12, 12] for variances ≤ 1; ⌈8√s⌉ beyond (see _panel_count)
_CHUNK = 2_000_000  # quadrature points per vectorised block


# ---------------------------------------------------------------------------------------------
# one-dimensional rules
# ---------------------------------------------------------------------------------------------


@cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _panels(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre nodes and N(0,1)-density weights on the panels between ``edges``.

    edges: (..., k+1), nondecreasing. Returns nodes and weights of shape (..., k·n)."""
    x, w = _legendre(n)
    a, b = edges[..., :-1, None], edges[..., 1:, None]
    g = 0.5 * (b - a) * x + 0.5 * (a + b)
    wt = 0.5 * (b - a) * w * np.exp(-0.5 * g * g) * _INV_SQRT_2PI
    shape = (*edges.shape[:-1], -1)
    return g.reshape(shape), wt.reshape(shape)


@cache
def _hermite_rule(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    return nodes, weights / math.sqrt(2.0 * math.pi)


@cache
def _piecewise_rule(kinks: tuple[float, ...], n_nodes: int, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre on [−cutoff, k₁], …, [k_j, cutoff] with N(0,1)-density weights."""
    return _panels(np.array([-cutoff, *sorted(kinks), cutoff], dtype=np.float64), n_nodes)


def gaussian_expectation(f: Fn, kinks: tuple[float, ...] = (), n_nodes: int = 160) -> float:
    """E[f(g)] for g ~ N(0, 1) by quadrature (Gauss–Hermite, or composite Gauss–Legendre at kinks).

    Args:
        f: elementwise torch function, evaluated in float64.
        kinks: points where f (or its derivative) is not analytic; each becomes a panel edge.
        n_nodes: nodes of the Hermite rule, or per Legendre panel.
    """
    nodes, weights = _piecewise_rule(kinks, n_nodes, _CUTOFF_1D) if kinks else _hermite_rule(n_nodes)
    values = f(torch.from_numpy(nodes)).numpy()
    half = len(nodes) // 2
    if np.array_equal(nodes, -nodes[::-1]) and np.array_equal(weights, weights[::-1]):
        # a symmetric rule: f(x) + f(−x) first, so that an odd f (E[gφ′] for an odd φ) gives exactly 0 on every
        # machine, whatever order the BLAS adds in (a plain dot gave 6.7e-18 on one CPU, 0.0 on another)
        middle = weights[half] * values[half] if len(nodes) % 2 else 0.0
        return float(np.dot(weights[:half], values[:half] + values[::-1][:half]) + middle)
    return float(np.dot(weights, values))


# ---------------------------------------------------------------------------------------------
# the panel rules of the deep-net kernels
# ---------------------------------------------------------------------------------------------


def _leaky_slope(act: Activation) -> float | None:
    """Slope a of the piecewise-linear family (ReLU a = 0), or None for any other activation
    (:attr:`earlylin.activations.Activation.slope`)."""
    return getattr(act, "slope", None)


def _np(fn: Fn, x: np.ndarray) -> np.ndarray:
    return fn(torch.from_numpy(np.require(x, np.float64, ["C", "W"]))).numpy()


def _panel_count(s_max: float) -> int:
    """Uniform panels on [−12, 12]: φ(√s g) varies on the scale 1/√s in g, and when r → 1 the
    integrand in g₁ is a product of two such factors, so the panel width must shrink like 1/√s.
    With 16 nodes per panel the rule is accurate to ≲ 1e-13 for s ≤ 10 (erf, tanh, gelu; measured)."""
    return max(_MIN_PANELS, math.ceil(8.0 * math.sqrt(max(s_max, 0.0))))


def _edges(kink_pos: np.ndarray, n_pan: int) -> np.ndarray:
    """Uniform panel edges on [−12, 12] merged with per-element kink positions (..., k), sorted."""
    uniform = np.linspace(-_CUTOFF, _CUTOFF, n_pan + 1)
    uniform = np.broadcast_to(uniform, (*kink_pos.shape[:-1], n_pan + 1))
    return np.sort(np.concatenate([uniform, np.clip(kink_pos, -_CUTOFF, _CUTOFF)], axis=-1), axis=-1)


def _rule_1d(act: Activation, s: np.ndarray, n_pan: int, n_node: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes g (B, N) and weights for E[f(√s g)]: uniform panels, also split at the kinks κ/√s of φ."""
    kinks = np.asarray(sorted(act.kinks), dtype=np.float64)
    return _panels(_edges(kinks[None, :] / np.sqrt(s)[:, None], n_pan), n_node)


def _pair_grid(
    act: Activation, s: np.ndarray, sp: np.ndarray, c: np.ndarray, n_pan: int, n_node: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u, u′ and weights W, all (B, N₁, N₂), with Σ W·f(u, u′) ≈ E[f(u, u′)], (u,u′) ~ N(0, [[s,c],[c,s′]]).

    u = √s g₁, u′ = √s′ (r g₁ + √(1−r²) g₂); panels split where u or u′ crosses a kink of φ."""
    r = np.clip(c / np.sqrt(s * sp), -1.0, 1.0)
    rb = np.sqrt(1.0 - r * r)
    g1, w1 = _rule_1d(act, s, n_pan, n_node)  # (B, N1)
    kink = np.asarray(sorted(act.kinks), dtype=np.float64)
    # inner kink positions for every outer node: (B, N1, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = (kink[None, None, :] / np.sqrt(sp)[:, None, None] - r[:, None, None] * g1[..., None]) / rb[:, None, None]
    pos = np.nan_to_num(pos, nan=0.0, posinf=_CUTOFF, neginf=-_CUTOFF)  # rb = 0: u′ does not depend on g₂
    g2, w2 = _panels(_edges(pos, n_pan), n_node)  # (B, N1, N2)
    W = w1[..., None] * w2
    u = np.broadcast_to(np.sqrt(s)[:, None, None] * g1[..., None], W.shape)
    up = np.sqrt(sp)[:, None, None] * (r[:, None, None] * g1[..., None] + rb[:, None, None] * g2)
    return u, np.broadcast_to(up, W.shape), W


# names of the weighted pair expectations (K5): (which function, which Hermite weight)
_PAIR_TERMS = {
    "F": ("phi", None),
    "G": ("dphi", None),
    "phi_h11": ("phi", "h11"),
    "phi_h12": ("phi", "h12"),
    "phi_h1111": ("phi", "h1111"),
    "phi_h1112": ("phi", "h1112"),
    "phi_h1122": ("phi", "h1122"),
    "dphi_h11": ("dphi", "h11"),
    "dphi_h12": ("dphi", "h12"),
    "dphi_h1111": ("dphi", "h1111"),
    "dphi_h1112": ("dphi", "h1112"),
    "dphi_h1122": ("dphi", "h1122"),
}


def _hermite_weight(name: str, u: np.ndarray, up: np.ndarray, s, sp, c) -> np.ndarray:
    """h_α = ∂^α N / N of (K5) for the bivariate normal density N with covariance [[s, c], [c, s′]]."""
    det = s * sp - c * c
    p11, p22, p12 = sp / det, s / det, -c / det
    w1 = p11 * u + p12 * up
    w2 = p12 * u + p22 * up
    if name == "h11":
        return w1 * w1 - p11
    if name == "h12":
        return w1 * w2 - p12
    if name == "h1111":
        return w1**4 - 6.0 * p11 * w1**2 + 3.0 * p11**2
    if name == "h1112":
        return w1**3 * w2 - 3.0 * p11 * w1 * w2 - 3.0 * p12 * w1**2 + 3.0 * p11 * p12
    if name == "h1122":
        return w1**2 * w2**2 - p11 * w2**2 - p22 * w1**2 - 4.0 * p12 * w1 * w2 + p11 * p22 + 2.0 * p12**2
    raise ValueError(name)


def gaussian_pair_expectations(
    act: Activation,
    s: np.ndarray | float,
    sp: np.ndarray | float,
    c: np.ndarray | float,
    terms: Sequence[str] = ("F", "G"),
    closed_form: bool = True,
    panels: int | None = None,
    nodes_per_panel: int = _PANEL_NODES,
) -> dict[str, np.ndarray]:
    """Bivariate Gaussian expectations of (K1)/(K5), elementwise over broadcast s, s′, c.

    act: an :class:`~earlylin.activations.Activation` (a name must first go through
    :func:`~earlylin.activations.get_activation`). terms: any of "F" = E[φ(u)φ(u′)],
    "G" = E[φ′(u)φ′(u′)], and "phi_hXX"/"dphi_hXX" = E[φφ h_XX] / E[φ′φ′ h_XX] with the Hermite weights
    h11, h12, h1111, h1112, h1122 of (K5) (which need s s′ > c²). closed_form: F and G from the closed
    forms of erf (arcsin kernels) and of the piecewise-linear family (arc-cosine kernels) instead of
    quadrature. panels: uniform panels on [−12, 12] per dimension (default ⌈8√max(s, s′)⌉, at least 8),
    each also split at φ's kinks.
    """
    if isinstance(act, str):
        raise TypeError(f"gaussian_pair_expectations takes an Activation, got the name {act!r}: "
                        "pass earlylin.activations.get_activation(name)")
    s, sp, c = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(s, sp, c))
    shape = s.shape
    s, sp, c = s.ravel(), sp.ravel(), c.ravel()
    out = {t: np.empty(s.size) for t in terms}
    closed = _closed_pair(act, s, sp, c) if closed_form else {}
    out.update({t: v for t, v in closed.items() if t in out})
    quad_terms = [t for t in terms if t not in closed]
    if quad_terms and s.size:
        n_pan = panels or _panel_count(float(np.max(np.maximum(s, sp))))
        per = ((n_pan + len(act.kinks)) * nodes_per_panel) ** 2
        step = max(1, _CHUNK // per)
        for lo in range(0, s.size, step):
            sl = slice(lo, lo + step)
            u, up, W = _pair_grid(act, s[sl], sp[sl], c[sl], n_pan, nodes_per_panel)
            vals = {}
            if any(_PAIR_TERMS[t][0] == "phi" for t in quad_terms):
                vals["phi"] = _np(act.phi, u) * _np(act.phi, up)
            if any(_PAIR_TERMS[t][0] == "dphi" for t in quad_terms):
                vals["dphi"] = _np(act.dphi, u) * _np(act.dphi, up)
            b = (slice(None), None, None)
            for t in quad_terms:
                fn, h = _PAIR_TERMS[t]
                integrand = vals[fn] * W
                if h is not None:
                    integrand = integrand * _hermite_weight(h, u, up, s[sl][b], sp[sl][b], c[sl][b])
                out[t][sl] = integrand.sum(axis=(1, 2))
    return {t: v.reshape(shape) for t, v in out.items()}


def _closed_pair(act: Activation, s: np.ndarray, sp: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    """F, G in closed form where known (else {}):

    erf:          F = (2/π) arcsin(2c/√((1+2s)(1+2s′))),   G = (4/π)/√((1+2s)(1+2s′) − 4c²)
    leaky (a):    F = α²c + β²(2/π)√(ss′)(√(1−r²) + r arcsin r),  G = α² + β²(2/π) arcsin r,
                  α = (1+a)/2, β = (1−a)/2, r = c/√(ss′)."""
    if act.name == "erf":
        prod = (1.0 + 2.0 * s) * (1.0 + 2.0 * sp)
        return {
            "F": (2.0 / math.pi) * np.arcsin(np.clip(2.0 * c / np.sqrt(prod), -1.0, 1.0)),
            "G": (4.0 / math.pi) / np.sqrt(prod - 4.0 * c * c),
        }
    slope = _leaky_slope(act)
    if slope is None:
        return {}
    # √(ss′)·√(1−r²) = √det and arcsin r = π/2 − θ with θ = atan2(√det, c): exact (det = 0) for a
    # pair of identical inputs, where c/√(ss′) = 1 − 1 ulp would cost 8 digits through √(1−r²)
    alpha2, beta2 = ((1 + slope) / 2) ** 2, ((1 - slope) / 2) ** 2
    root_det = np.sqrt(np.maximum(s * sp - c * c, 0.0))
    asin = 0.5 * math.pi - np.arctan2(root_det, c)
    return {
        "F": alpha2 * c + beta2 * (2.0 / math.pi) * (root_det + c * asin),
        "G": alpha2 + beta2 * (2.0 / math.pi) * asin,
    }


def diag_expectations(act: Activation, s: np.ndarray, nodes_per_panel: int = 24) -> dict[str, np.ndarray]:
    """V(s) = E[φ(√s g)²], V̇(s) = E[φ′(√s g)²] and V′(s), V″(s) of (K6), elementwise in s.

    Closed forms: erf V = (2/π) arcsin(2s/(1+2s)), V̇ = (4/π)/√(1+4s), V′ = (4/π)/((1+2s)√(1+4s)),
    V″ = −(8/π)[(1+2s)^{−2}(1+4s)^{−1/2} + (1+2s)^{−1}(1+4s)^{−3/2}]; leaky V = s(1+a²)/2."""
    s = np.asarray(s, dtype=np.float64)
    shape = s.shape
    s = s.ravel()
    slope = _leaky_slope(act)
    if act.name == "erf":
        a, b = 1.0 + 2.0 * s, 1.0 + 4.0 * s
        V = (2.0 / math.pi) * np.arcsin(2.0 * s / a)
        Vdot = (4.0 / math.pi) / np.sqrt(b)
        Vs = (4.0 / math.pi) / (a * np.sqrt(b))
        Vss = -(8.0 / math.pi) * (1.0 / (a * a * np.sqrt(b)) + 1.0 / (a * b * np.sqrt(b)))
    elif slope is not None:
        V = s * (1.0 + slope**2) / 2.0
        Vdot = Vs = np.full_like(s, (1.0 + slope**2) / 2.0)
        Vss = np.zeros_like(s)
    else:
        n_pan = 2 * _panel_count(float(s.max())) if s.size else 1
        g, w = _rule_1d(act, s, n_pan, nodes_per_panel)
        u = np.sqrt(s)[:, None] * g
        phi2 = _np(act.phi, u) ** 2
        V = (w * phi2).sum(-1)
        Vdot = (w * _np(act.dphi, u) ** 2).sum(-1)
        Vs = (w * phi2 * (g * g - 1.0)).sum(-1) / (2.0 * s)
        Vss = (w * phi2 * (g**4 - 6.0 * g * g + 3.0)).sum(-1) / (4.0 * s * s)
    return {k: v.reshape(shape) for k, v in {"V": V, "Vdot": Vdot, "Vs": Vs, "Vss": Vss}.items()}
