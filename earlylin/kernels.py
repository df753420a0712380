"""Infinite-width NNGP/NTK of deep nets at initialisation and their linearisation (THEORY §5 "Deep nets").

Everything is float64 numpy with earlylin's own Gaussian quadrature: no JAX at run time.
neural-tangents' analytic ``kernel_fn`` is only the test oracle (tests/test_kernels_nt.py).

Architectures (NTK parameterisation: every weight N(0, 1), the forward pass divides by √fan_in, no
biases; φ from :func:`earlylin.activations.get_activation`):

- **FC**:  h¹ = W¹x/√d,  h^{l+1} = W^{l+1} φ(h^l)/√N_l (l = 1…L),  f(x) = h^{L+1} (a linear readout
  after L hidden layers). neural-tangents: ``stax.serial(*[Dense(N, W_std=1, b_std=None), φ] * L,
  Dense(1, W_std=1, b_std=None))``.
- **CNN**: L convolutions (k×k, stride 1, 'SAME' zero padding, fan-in C_in·k²) each followed by φ,
  then flatten and a dense readout. Inputs are C×H×W; pixel p = h·W + w (row-major).

**FC recursion** (Neal; Lee et al.; Jacot et al.). For a pair x, x′ write q = ‖x‖²/d, q′ = ‖x′‖²/d,
ρ = xᵀx′/d and, for (u, u′) ~ N(0, [[s, c], [c, s′]]),

    F(s, s′, c) = E[φ(u) φ(u′)],   G(s, s′, c) = E[φ′(u) φ′(u′)],   V(s) = F(s, s, s)     (K1)

    Σ¹ = ρ,  s¹ = q,  s′¹ = q′,  Θ¹ = Σ¹
    Σ^{l+1} = F(s^l, s′^l, Σ^l),  Σ̇^{l+1} = G(s^l, s′^l, Σ^l),  s^{l+1} = V(s^l)             (K2)
    Θ^{l+1} = Σ^{l+1} + Θ^l · Σ̇^{l+1}                                                        (K3)

The output NNGP is Σ^{(L+1)} and the output NTK Θ^{(L+1)}.

**CNN recursion** (Novak et al. 2019; Arora et al. 2019). With flatten (no pooling) readout the
output only ever needs covariances of *equal* positions p = p′ (the k×k patches of p and p′ are then
shifted by equal offsets), so the kernel depends on the pair only through the per-pixel products
a⁰_p = x_pᵀx′_p/C and norms n_p = ‖x_p‖²/C. With the patch-averaging operator T (P×P,
``same_patch_operator``): (T a)_p = (1/k²) Σ_{δ in the k×k window, p+δ inside the image} a_{p+δ}
(zero padding: missing taps contribute 0 but still count in the 1/k²),

    s¹ = T n(x),  s′¹ = T n(x′),  Σ¹ = Θ¹ = T a⁰
    Σ^{l+1} = T F(s^l, s′^l, Σ^l),  s^{l+1} = T V(s^l),  Θ^{l+1} = T[F + Θ^l ⊙ G]  (l < L)    (K4)
    NNGP = (1/P) Σ_p F_p,   NTK = (1/P) Σ_p [F_p + Θ^L_p G_p]      (F, G at layer L's covariances)

Border pixels see fewer in-bounds taps, so even for unit per-pixel norms s¹_p = n_p^{in}/k² < 1 near
the border (4/9 in a corner, 6/9 on an edge for k = 3): the per-pixel variances differ and are
propagated exactly, pixel by pixel. FC is the special case P = 1, T = [[1]], C = d.

**Gaussian expectations.** F, G in closed form for erf (arcsin kernels, Williams 1997) and for the
piecewise-linear family φ(z) = z (z ≥ 0), a·z (z < 0) (arc-cosine kernels, Cho & Saul 2009), with
α = (1+a)/2, β = (1−a)/2, r = c/√(ss′):

    erf:   F = (2/π) arcsin(2c/√((1+2s)(1+2s′))),   G = (4/π)/√((1+2s)(1+2s′) − 4c²)
    leaky: F = α² c + β² (2/π) √(ss′) (√(1−r²) + r arcsin r),   G = α² + β² (2/π) arcsin r

and otherwise (and for every derivative below) by a conditional two-dimensional rule:
u = √s g₁, u′ = √s′ (r g₁ + √(1−r²) g₂) with g₁, g₂ iid N(0, 1), each integrated by composite
Gauss–Legendre on [−12, 12] with ⌈8√max(s, s′)⌉ (≥ 8) uniform panels of 16 nodes, the panels also
split at the kinks κ of φ: at g₁ = κ/√s (outer) and, for each outer node, at
g₂ = (κ/√s′ − r g₁)/√(1−r²) (inner), so that every panel is analytic. (A tensor Gauss–Hermite rule
is only O(N^{−3/2})-accurate at a kink, and for smooth φ it loses digits when r → 1 and s ≳ 2,
where the g₁-integrand is a product of two factors of width 1/√s: 1e-6 at s = 2.3, r = 0.9995
with 96 nodes. The panel rule is ≲ 1e-13 there; measured for erf, tanh, GELU up to s = 10.)

**Derivatives** of F, G with respect to s, s′, c move onto the Gaussian density (heat equation /
Price's theorem: ∂_s E f = ½E[∂₁²f], ∂_c E f = E[∂₁∂₂f]) and then onto Hermite weights
h_α = ∂^α N/N (N the bivariate density, P = [[s, c], [c, s′]]⁻¹, w = P(u, u′)ᵀ):

    h₁₁ = w₁² − P₁₁,   h₁₂ = w₁w₂ − P₁₂,   h₁₁₁₁ = w₁⁴ − 6P₁₁w₁² + 3P₁₁²,
    h₁₁₁₂ = w₁³w₂ − 3P₁₁w₁w₂ − 3P₁₂w₁² + 3P₁₁P₁₂,
    h₁₁₂₂ = w₁²w₂² − P₁₁w₂² − P₂₂w₁² − 4P₁₂w₁w₂ + P₁₁P₂₂ + 2P₁₂²                         (K5)

    F_s = ½E[φφ h₁₁]   F_c = G   F_ss = ¼E[φφ h₁₁₁₁]   F_sc = G_s   F_cc = G_c   F_ss′ = ¼G_c
    G_s = ½E[φ′φ′ h₁₁]   G_c = E[φ′φ′ h₁₂]   G_ss = ¼E[φ′φ′ h₁₁₁₁]   G_sc = ½E[φ′φ′ h₁₁₁₂]
    G_cc = E[φ′φ′ h₁₁₂₂]   G_ss′ = ¼G_cc
    V′(s) = E[φ(u)² He₂(g)]/(2s),   V″(s) = E[φ(u)² He₄(g)]/(4s²)    (u = √s g)           (K6)

so only φ and φ′ are evaluated (ReLU needs no delta functions). At ρ = 0 and one layer these reduce to
the THEORY §2 constants, e.g. G = ζ², G_c = (E[gφ′(g)])², F = ϑ₀².

**Linearisation** (THEORY §5). Expand the output kernel K (NTK by default, or NNGP) around the
orthogonal pair with typical norms: a⁰ = 0 (ρ = 0), ε = 0, ε′ = 0 where ε_p = n_p − n̄_p is the
deviation of the per-pixel squared norm from its expectation n̄_p (FC: ε = ‖x‖²/d − 1). To second
order, keeping the terms whose kernel matrices have spectral norm of the order of the linear term:

    K ≈ A₀ + Σ_p K_{a,p} a⁰_p + ½ Σ_{pp′} H_{pp′} a⁰_p a⁰_{p′} + c·(ε + ε′) + ½(εᵀDε + ε′ᵀDε′) + εᵀEε′

The ρ² term is replaced by its mean over pairs, E[a⁰_p a⁰_{p′}] = τ_{pp′} = Tr(Σ_{pp′}Σ_{p′p})/C²
(FC: τ = Tr(Σ²)/d², = 1/d for isotropic inputs), which gives the curvature constant
A_curv = ½ Σ H_{pp′} τ_{pp′}: the deep analogue of ν²/d (for L = 1 FC, A_curv = (3/2)ν²/d exactly).
Its fluctuation and the ρ·ε cross terms are dropped (spectral norm O(n/d^{3/2})). So

    FC:   K^lin = A + B ρ + C(ε + ε′) + ½D(ε² + ε′²) + E εε′,  A = A₀ + ½ Θ″(0) τ,  B = ∂_ρ K   (L1)
    CNN:  K^lin = A + xᵀ(M ⊗ I_C)x′/d + (norm terms as above), M = diag(m), m_p = P·∂K/∂a⁰_p  (L2)

M is diagonal because the flatten-readout kernel contains no products x_pᵀx′_{p′} with p ≠ p′ (a
pooled readout would make M dense). With circular padding m_p = B of the FC net of the same depth.
All coefficients are propagated analytically through (K2)–(K4) with the chain rule (see
:func:`_propagate`, whose docstring lists every update), from the partials (K5)–(K6) evaluated at the
expansion point of each layer. Note that for φ with E[φ(g)] ≠ 0 the deeper layers' expansion points
have Σ^l ≠ 0 even at ρ = 0 (e.g. ReLU: Σ² = 1/(2π) at ρ = 0), so these are genuinely bivariate
expectations, not products of one-dimensional ones; for odd φ (erf) they factorise and all norm
coefficients vanish. For positively homogeneous φ (ReLU) the norm terms do *not* vanish: they are
those of K(q, q′, 0) = A₀√(qq′).

**Features.** The kernel (L1)/(L2) is realised, up to third-order terms in ε, by

    ψ(x) = [ √m_p x_p/√d  (all pixels; FC: √B x/√d) ;  g(x) ;  S ε ],
    g(x) = √A + cᵀε/√A + εᵀDε/(2√A),   S Sᵀ = E − c cᵀ/A                                     (L3)

(the positive part of E − ccᵀ/A; E − ccᵀ/A ⪰ 0 holds exactly for the true kernel because K restricted
to mutually orthogonal inputs is a PSD kernel in the norms). For L = 1 FC: B = 2ζ², A₀ = ϑ₀²,
c = ϑ₀ϑ₁/2, D = ϑ₀(ϑ₂/2 − ϑ₁/4), E = ϑ₁²/4, i.e. THEORY §3's both-layer kernel 2ζ²ρ + 3ν²/(2d) + q(x)q(x′)
re-expanded in ε = ‖x‖²/d − 1 instead of ‖x‖/√d − 1.

Validity: inputs nearly orthogonal with squared norms near their expectations; for the CNN this is
needed of the first-layer patch statistics s¹_p = (T n)_p and Σ¹_p = (T a⁰)_p, averages over k²C
numbers, so the expansion is good when k²C ≫ 1 (27 for 3×3 RGB patches: fair, not asymptotic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch

from earlylin.activations import Activation, get_activation
from earlylin.errors import ConfigError

__all__ = [
    "CNNLinearCoeffs",
    "FCLinearCoeffs",
    "cnn_features",
    "cnn_kernel",
    "cnn_linear_coeffs",
    "deep_features",
    "fc_kernel",
    "fc_kernel_qr",
    "fc_linear_coeffs",
    "fit_linear_coeffs",
    "gaussian_pair_expectations",
    "same_patch_operator",
]

_CUTOFF = 12.0  # Gaussian tail beyond ±12 is < 1e-32
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_PANEL_NODES = 16  # Gauss–Legendre nodes per panel
_MIN_PANELS = 8  # uniform panels on [−12, 12] for variances ≤ 1; ⌈8√s⌉ beyond (see _panel_count)
_CHUNK = 2_000_000  # quadrature points per vectorised block
_PAIR_BLOCK = 1_000_000  # input pairs per block of fc_kernel

KERNELS = ("ntk", "nngp")


# ---------------------------------------------------------------------------------------------
# quadrature
# ---------------------------------------------------------------------------------------------


def _act(activation: str | Activation) -> Activation:
    return get_activation(activation) if isinstance(activation, str) else activation


def _leaky_slope(act: Activation) -> float | None:
    """Slope a of the piecewise-linear family (ReLU a = 0), or None for any other activation."""
    if act.name == "relu":
        return 0.0
    if act.name.startswith("leaky_relu:"):
        return float(act.name.partition(":")[2])
    return None


def _np(fn, x: np.ndarray) -> np.ndarray:
    return fn(torch.from_numpy(np.require(x, np.float64, ["C", "W"]))).numpy()


@cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _panel_count(s_max: float) -> int:
    """Uniform panels on [−12, 12]: φ(√s g) varies on the scale 1/√s in g, and when r → 1 the
    integrand in g₁ is a product of two such factors, so the panel width must shrink like 1/√s.
    With 16 nodes per panel the rule is accurate to ≲ 1e-13 for s ≤ 10 (erf, tanh, gelu; measured)."""
    return max(_MIN_PANELS, math.ceil(8.0 * math.sqrt(max(s_max, 0.0))))


def _panels(edges: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss–Legendre nodes and N(0,1)-density weights on the panels between ``edges``.

    edges: (..., k+1), nondecreasing. Returns nodes and weights of shape (..., k·n)."""
    x, w = _legendre(n)
    a, b = edges[..., :-1, None], edges[..., 1:, None]
    g = 0.5 * (b - a) * x + 0.5 * (a + b)
    wt = 0.5 * (b - a) * w * np.exp(-0.5 * g * g) * _INV_SQRT_2PI
    shape = (*edges.shape[:-1], -1)
    return g.reshape(shape), wt.reshape(shape)


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


# the terms (K6) needs; phi_h12, phi_h1112, phi_h1122 equal G, G_s·2, G_c (Price) and serve as checks
_LAYER_TERMS = ("F", "G", "phi_h11", "phi_h1111", "dphi_h11", "dphi_h12", "dphi_h1111", "dphi_h1112", "dphi_h1122")


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
    activation: str | Activation,
    s: np.ndarray | float,
    sp: np.ndarray | float,
    c: np.ndarray | float,
    terms: Sequence[str] = ("F", "G"),
    closed_form: bool = True,
    panels: int | None = None,
    nodes_per_panel: int = _PANEL_NODES,
) -> dict[str, np.ndarray]:
    """Bivariate Gaussian expectations of (K1)/(K5), elementwise over broadcast s, s′, c.

    terms: any of "F" = E[φ(u)φ(u′)], "G" = E[φ′(u)φ′(u′)], and "phi_hXX"/"dphi_hXX" = E[φφ h_XX] /
    E[φ′φ′ h_XX] with the Hermite weights h11, h12, h1111, h1112, h1122 of (K5) (which need
    s s′ > c²). closed_form: F and G from the closed forms of erf (arcsin kernels) and of the
    piecewise-linear family (arc-cosine kernels) instead of quadrature. panels: uniform panels on
    [−12, 12] per dimension (default ⌈8√max(s, s′)⌉, at least 8), each also split at φ's kinks.
    """
    act = _act(activation)
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


def _diag_expectations(act: Activation, s: np.ndarray, nodes_per_panel: int = 24) -> dict[str, np.ndarray]:
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


# ---------------------------------------------------------------------------------------------
# exact kernels
# ---------------------------------------------------------------------------------------------


def _check_depth(depth: int) -> None:
    if not isinstance(depth, int | np.integer) or depth < 1:
        raise ConfigError(f"depth (number of hidden/conv layers) must be an integer ≥ 1, got {depth!r}")


def _recursion(
    act: Activation,
    depth: int,
    sa: np.ndarray,
    sb: np.ndarray,
    c: np.ndarray,
    ia: np.ndarray,
    ib: np.ndarray,
    T: np.ndarray | None = None,
    same: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(K2)–(K4) for a list of pairs: variances sa (n_a, P), sb (n_b, P) of the inputs (propagated once
    per input, not per pair), first-layer covariances c (pairs, P) of the pairs (ia[k], ib[k]).
    T: the patch operator (None: FC, P = 1). same: pairs of an input with itself, whose covariance
    is set to the propagated variance at every layer (bitwise c = s, so r = 1 exactly: the ReLU kernel
    has a √(1−r²) singularity there that would turn round-off in c into 1e-8 errors).
    Returns the output (NNGP, NTK), each (pairs,)."""
    theta = c.copy()
    for layer in range(depth):
        if same is not None:
            c[same] = sa[ia[same]]
        pair = gaussian_pair_expectations(act, sa[ia], sb[ib], c)
        theta = pair["F"] + theta * pair["G"]
        c = pair["F"]
        if layer < depth - 1:
            sa, sb = _diag_expectations(act, sa)["V"], _diag_expectations(act, sb)["V"]
            if T is not None:
                c, theta, sa, sb = c @ T.T, theta @ T.T, sa @ T.T, sb @ T.T
    return c.mean(-1), theta.mean(-1)


def _pair_indices(n1: int, n2: int, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n1) if symmetric else tuple(g.ravel() for g in np.indices((n1, n2)))


def _fill(values: np.ndarray, ia: np.ndarray, ib: np.ndarray, n1: int, n2: int, symmetric: bool) -> np.ndarray:
    out = np.empty((n1, n2))
    out[ia, ib] = values
    if symmetric:
        out[ib, ia] = values
    return out


def fc_kernel_qr(
    q: np.ndarray | float,
    qp: np.ndarray | float,
    rho: np.ndarray | float,
    activation: str | Activation,
    depth: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact output (NNGP Σ^{(L+1)}, NTK Θ^{(L+1)}) of the FC net with ``depth`` = L hidden layers, by
    (K1)–(K3), elementwise for q = ‖x‖²/d, q′ = ‖x′‖²/d, ρ = xᵀx′/d (broadcast)."""
    _check_depth(depth)
    q, qp, rho = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(q, qp, rho))
    idx = np.arange(q.size)
    nngp, ntk = _recursion(_act(activation), depth, q.reshape(-1, 1), qp.reshape(-1, 1), rho.reshape(-1, 1), idx, idx)
    return nngp.reshape(q.shape), ntk.reshape(q.shape)


def _as_2d(X) -> np.ndarray:
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    return X.reshape(X.shape[0], -1).astype(np.float64)


def fc_kernel(X, X2=None, *, activation: str | Activation, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact (NNGP, NTK) matrices (n, n₂) of the FC net between the rows of X (n, d) and X2 (n₂, d)
    (X2 = None: X with itself, computing each unordered pair once)."""
    _check_depth(depth)
    sym = X2 is None
    X1 = _as_2d(X)
    X2 = X1 if sym else _as_2d(X2)
    d = X1.shape[1]
    ia, ib = _pair_indices(len(X1), len(X2), sym)
    gram = X1 @ X2.T / d
    qa = (X1 * X1).sum(1, keepdims=True) / d
    qb = (X2 * X2).sum(1, keepdims=True) / d
    act = _act(activation)
    nngp, ntk = np.empty(len(ia)), np.empty(len(ia))
    for k in range(0, len(ia), _PAIR_BLOCK):  # bounded memory: the 10k × 10k CIFAR kernel has 5e7 pairs
        a, b = ia[k : k + _PAIR_BLOCK], ib[k : k + _PAIR_BLOCK]
        nngp[k : k + len(a)], ntk[k : k + len(a)] = _recursion(
            act, depth, qa, qb, gram[a, b].reshape(-1, 1), a, b, same=(a == b) if sym else None)
    return _fill(nngp, ia, ib, len(X1), len(X2), sym), _fill(ntk, ia, ib, len(X1), len(X2), sym)


def same_patch_operator(height: int, width: int, kernel_size: int = 3) -> np.ndarray:
    """T of (K4): (P×P), (T a)_p = (1/k²) Σ over the in-bounds taps of p's k×k 'SAME' window.

    For even k the window extends (k−1)//2 pixels before and k//2 after p, as in lax 'SAME'."""
    k = kernel_size
    before = (k - 1) // 2
    P = height * width
    T = np.zeros((P, P))
    for h in range(height):
        for w in range(width):
            for dh in range(-before, k - before):
                for dw in range(-before, k - before):
                    hh, ww = h + dh, w + dw
                    if 0 <= hh < height and 0 <= ww < width:
                        T[h * width + w, hh * width + ww] += 1.0 / (k * k)
    return T


def _pixels(X) -> tuple[np.ndarray, tuple[int, int]]:
    """(n, C, H, W) → pixel vectors (n, P, C) and (H, W)."""
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X, dtype=np.float64)
    if X.ndim != 4:
        raise ConfigError(f"CNN inputs must have shape (n, C, H, W), got {X.shape}")
    n, C, H, W = X.shape
    return X.astype(np.float64).reshape(n, C, H * W).transpose(0, 2, 1), (H, W)


def cnn_kernel(
    X, X2=None, *, activation: str | Activation, depth: int, kernel_size: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (NNGP, NTK) matrices of the 'SAME'-padded CNN with flatten readout, by (K4).

    X: (n, C, H, W), X2: (n₂, C, H, W) or None (X with itself, each unordered pair once). Cost:
    pairs × H·W × depth bivariate expectations (closed forms for erf and ReLU; for other φ a
    ≥ 128×128-node rule each, i.e. seconds per few hundred pair-pixels)."""
    _check_depth(depth)
    sym = X2 is None
    X1, (H, W) = _pixels(X)
    X2 = X1 if sym else _pixels(X2)[0]
    C = X1.shape[2]
    T = same_patch_operator(H, W, kernel_size)
    ia, ib = _pair_indices(len(X1), len(X2), sym)
    c = ((X1[ia] * X2[ib]).sum(-1) / C) @ T.T  # Σ¹ = T a⁰, (pairs, P)
    sa = ((X1 * X1).sum(-1) / C) @ T.T
    sb = ((X2 * X2).sum(-1) / C) @ T.T
    nngp, ntk = _recursion(_act(activation), depth, sa, sb, c, ia, ib, T, same=(ia == ib) if sym else None)
    return _fill(nngp, ia, ib, len(X1), len(X2), sym), _fill(ntk, ia, ib, len(X1), len(X2), sym)


# ---------------------------------------------------------------------------------------------
# linearisation: second-order jets propagated through the recursion
# ---------------------------------------------------------------------------------------------


@dataclass
class _Jet:
    """Value and derivatives of a per-pixel quantity y_p(a⁰, ε, ε′) at the expansion point.

    v (P,): value; a (P, P): ∂y_p/∂a⁰_i; aa (P, P, P): ∂²y_p/∂a⁰_i∂a⁰_j; e (P, P): ∂y_p/∂ε_i;
    ee (P, P, P): ∂²y_p/∂ε_i∂ε_j; x (P, P, P): ∂²y_p/∂ε_i∂ε′_j. Symmetric in x ↔ x′, so ∂/∂ε′ = ∂/∂ε."""

    v: np.ndarray
    a: np.ndarray
    aa: np.ndarray
    e: np.ndarray
    ee: np.ndarray
    x: np.ndarray

    def map(self, T: np.ndarray) -> _Jet:
        """Apply a linear operator over the pixel axis (T of (K4), or the readout mean)."""
        return _Jet(*(np.tensordot(T, f, axes=(1, 0)) for f in (self.v, self.a, self.aa, self.e, self.ee, self.x)))

    def __add__(self, other: _Jet) -> _Jet:
        return _Jet(*(f + g for f, g in zip(self.fields(), other.fields(), strict=True)))

    def fields(self) -> tuple[np.ndarray, ...]:
        return (self.v, self.a, self.aa, self.e, self.ee, self.x)

    def times(self, other: _Jet) -> _Jet:
        """Leibniz rule for the product y·z of two jets (per pixel)."""
        y, z = self, other
        outer = lambda f, g: f[:, :, None] * g[:, None, :]  # noqa: E731
        vy, vz = y.v[:, None], z.v[:, None]
        return _Jet(
            v=y.v * z.v,
            a=y.a * vz + vy * z.a,
            aa=y.aa * vz[..., None] + outer(y.a, z.a) + outer(z.a, y.a) + vy[..., None] * z.aa,
            e=y.e * vz + vy * z.e,
            ee=y.ee * vz[..., None] + outer(y.e, z.e) + outer(z.e, y.e) + vy[..., None] * z.ee,
            x=y.x * vz[..., None] + outer(y.e, z.e) + outer(z.e, y.e) + vy[..., None] * z.x,
        )


@dataclass
class _Partials:
    """Φ and its partials in (s, s′, c) at a symmetric point s = s′ (per pixel), Φ ∈ {F, G}."""

    v: np.ndarray
    s: np.ndarray
    c: np.ndarray
    ss: np.ndarray
    ssp: np.ndarray
    sc: np.ndarray
    cc: np.ndarray

    def compose(self, S1: np.ndarray, S2: np.ndarray, cj: _Jet) -> _Jet:
        """Jet of Φ(s(ε), s′(ε′), c(a⁰, ε, ε′)) by the chain rule (see :func:`_propagate`)."""
        outer = lambda f, g: f[:, :, None] * g[:, None, :]  # noqa: E731
        col = lambda v: v[:, None]  # noqa: E731
        sq = lambda v: v[:, None, None]  # noqa: E731
        cross = outer(S1, cj.e) + outer(cj.e, S1)
        return _Jet(
            v=self.v,
            a=col(self.c) * cj.a,
            aa=sq(self.cc) * outer(cj.a, cj.a) + sq(self.c) * cj.aa,
            e=col(self.s) * S1 + col(self.c) * cj.e,
            ee=sq(self.ss) * outer(S1, S1)
            + sq(self.sc) * cross
            + sq(self.cc) * outer(cj.e, cj.e)
            + sq(self.s) * S2
            + sq(self.c) * cj.ee,
            x=sq(self.ssp) * outer(S1, S1) + sq(self.sc) * cross + sq(self.cc) * outer(cj.e, cj.e) + sq(self.c) * cj.x,
        )


def _layer_partials(act: Activation, s: np.ndarray, c: np.ndarray) -> tuple[_Partials, _Partials]:
    """(F, G) partials of (K6) at (s, s, c), per pixel."""
    E = gaussian_pair_expectations(act, s, s, c, terms=_LAYER_TERMS)
    G = _Partials(
        v=E["G"],
        s=0.5 * E["dphi_h11"],
        c=E["dphi_h12"],
        ss=0.25 * E["dphi_h1111"],
        ssp=0.25 * E["dphi_h1122"],
        sc=0.5 * E["dphi_h1112"],
        cc=E["dphi_h1122"],
    )
    F = _Partials(
        v=E["F"],
        s=0.5 * E["phi_h11"],
        c=G.v,
        ss=0.25 * E["phi_h1111"],
        ssp=0.25 * G.c,
        sc=G.s,
        cc=G.c,
    )
    return F, G


def _propagate(act: Activation, T: np.ndarray, readout: np.ndarray, s1: np.ndarray, depth: int) -> tuple[_Jet, _Jet]:
    """Second-order jets of the output NNGP and NTK in (a⁰, ε, ε′) through (K2)–(K4).

    Layer 1: s̄ = s1 = T n̄, ∂s/∂ε = T, ∂²s/∂ε² = 0; Σ¹ = Θ¹ = T a⁰ (so ∂/∂a⁰ = T, all else 0).
    Per layer, with partials of F, G at (s̄_p, s̄_p, Σ̄_p) and S1 = ∂s/∂ε, S2 = ∂²s/∂ε², c = Σ^l:

        Φ_a   = Φ_c c_a                          Φ_aa = Φ_cc c_a⊗c_a + Φ_c c_aa
        Φ_e   = Φ_s S1 + Φ_c c_e
        Φ_ee  = Φ_ss S1⊗S1 + Φ_sc (S1⊗c_e + c_e⊗S1) + Φ_cc c_e⊗c_e + Φ_s S2 + Φ_c c_ee
        Φ_ee′ = Φ_ss′ S1⊗S1 + Φ_sc (S1⊗c_e + c_e⊗S1) + Φ_cc c_e⊗c_e + Φ_c c_ee′
        (ΘG)  by the Leibniz rule, e.g. (ΘG)_aa = Θ_aa G + Θ_a⊗G_a + G_a⊗Θ_a + Θ G_aa
        s⁺ = V(s̄):  S1⁺ = V′ S1,  S2⁺ = V″ S1⊗S1 + V′ S2

    then Σ^{l+1} = T F, Θ^{l+1} = T(F + ΘG), s^{l+1} = T V (the readout mean after layer L).
    Returns the output (NNGP, NTK) jets (pixel axis contracted).
    """
    P = T.shape[0]
    z2, z3 = np.zeros((P, P)), np.zeros((P, P, P))
    s_bar, S1, S2 = s1.copy(), T.copy(), z3.copy()
    c = _Jet(np.zeros(P), T.copy(), z3.copy(), z2.copy(), z3.copy(), z3.copy())
    theta = _Jet(*(f.copy() for f in c.fields()))
    for layer in range(depth):
        Fp, Gp = _layer_partials(act, s_bar, c.v)
        Fj = Fp.compose(S1, S2, c)
        Gj = Gp.compose(S1, S2, c)
        theta = Fj + theta.times(Gj)
        c = Fj
        dg = _diag_expectations(act, s_bar)
        S2 = dg["Vss"][:, None, None] * S1[:, :, None] * S1[:, None, :] + dg["Vs"][:, None, None] * S2
        S1 = dg["Vs"][:, None] * S1
        s_bar = dg["V"]
        op = T if layer < depth - 1 else readout
        c, theta = c.map(op), theta.map(op)
        s_bar, S1, S2 = op @ s_bar, np.tensordot(op, S1, axes=(1, 0)), np.tensordot(op, S2, axes=(1, 0))
    return c, theta


# ---------------------------------------------------------------------------------------------
# coefficient containers and features
# ---------------------------------------------------------------------------------------------


def _norm_block(A: float, c: np.ndarray, D: np.ndarray, E: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(c/√A, D/(2√A), S) for (L3), SSᵀ = (E − ccᵀ/A)₊: negative eigenvalues are clipped to 0 (they
    are round-off for analytic coefficients, but can be real noise for fitted ones)."""
    if A <= 0.0:
        lin, quad, M = np.zeros_like(c), np.zeros_like(D), E
    else:
        lin, quad, M = c / math.sqrt(A), D / (2.0 * math.sqrt(A)), E - np.outer(c, c) / A
    lam, U = np.linalg.eigh(0.5 * (M + M.T))
    return lin, quad, U * np.sqrt(np.clip(lam, 0.0, None))


@dataclass(frozen=True)
class FCLinearCoeffs:
    """Linearised FC kernel (L1): K^lin = A + Bρ + C(ε+ε′) + ½D(ε²+ε′²) + Eεε′, ε = ‖x‖²/d − 1.

    A = A0 + ½·curvature·tau (curvature = ∂²K/∂ρ² = Θ″(0), tau = Tr(Σ²)/d²). Fitted coefficients
    (:func:`fit_linear_coeffs`) have A0 = curvature = nan: only the total A is identifiable."""

    A: float
    B: float
    C: float = 0.0
    D: float = 0.0
    E: float = 0.0
    A0: float = math.nan
    curvature: float = math.nan
    tau: float = math.nan
    kernel: str = "ntk"
    activation: str = ""
    depth: int = 0

    def taylor(self, q: np.ndarray, qp: np.ndarray, rho: np.ndarray) -> np.ndarray:
        """The polynomial (L1) itself, elementwise."""
        e, ep = np.asarray(q) - 1.0, np.asarray(qp) - 1.0
        return self.A + self.B * rho + self.C * (e + ep) + 0.5 * self.D * (e * e + ep * ep) + self.E * e * ep

    def as_dict(self) -> dict[str, float | str | int]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _eps_fc(X: torch.Tensor) -> torch.Tensor:
    d = X.shape[-1]
    return (X * X).sum(-1, keepdim=True) / d - 1.0


def deep_features(X: torch.Tensor, coeffs: FCLinearCoeffs) -> torch.Tensor:
    """Ψ (..., n, d+2) of (L3) for FC coefficients: [√B·x/√d ; g(x) ; s·ε], ε = ‖x‖²/d − 1.

    g(x) = √A + (C/√A)ε + (D/(2√A))ε², s = √max(E − C²/A, 0) (and √max(B, 0), for fitted B).
    ΨΨᵀ equals (L1) up to O(ε³) terms
    (C·D/(2A)·(εε′² + ε²ε′) and D²/(4A)·ε²ε′²); :meth:`LinearTrajectory.fit` trains it as it is."""
    d = X.shape[-1]
    eps = _eps_fc(X)
    lin, quad, S = _norm_block(coeffs.A, np.array([coeffs.C]), np.array([[coeffs.D]]), np.array([[coeffs.E]]))
    g = math.sqrt(max(coeffs.A, 0.0)) + float(lin[0]) * eps + float(quad[0, 0]) * eps * eps
    return torch.cat([math.sqrt(max(coeffs.B, 0.0)) * X / math.sqrt(d), g, float(S[0, 0]) * eps], dim=-1)


def fc_linear_coeffs(
    activation: str | Activation, depth: int, d: int, tr_sigma2_over_d: float = 1.0, kernel: str = "ntk"
) -> FCLinearCoeffs:
    """Coefficients (L1) of the FC net's output NTK (or NNGP) with ``depth`` = L hidden layers.

    Args:
        d: input dimension; tau = Tr(Σ²)/d² = tr_sigma2_over_d/d (THEORY §2's Tr(Σ²)/d, 1 if isotropic).
        kernel: "ntk" or "nngp".
    """
    if kernel not in KERNELS:
        raise ConfigError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    _check_depth(depth)
    act = _act(activation)
    nngp, ntk = _propagate(act, np.ones((1, 1)), np.ones((1, 1)), np.ones(1), depth)
    j = ntk if kernel == "ntk" else nngp
    tau = tr_sigma2_over_d / d
    curvature = float(j.aa[0, 0, 0])
    return FCLinearCoeffs(
        A=float(j.v[0]) + 0.5 * curvature * tau,
        B=float(j.a[0, 0]),
        C=float(j.e[0, 0]),
        D=float(j.ee[0, 0, 0]),
        E=float(j.x[0, 0, 0]),
        A0=float(j.v[0]),
        curvature=curvature,
        tau=tau,
        kernel=kernel,
        activation=act.name,
        depth=depth,
    )


@dataclass(frozen=True, eq=False)
class CNNLinearCoeffs:
    """Linearised CNN kernel (L2), pixels p = h·W + w, ε_p = ‖x_p‖²/C − n̄_p:

        K^lin = A + Σ_p m_p x_pᵀx′_p/d + cᵀ(ε+ε′) + ½(εᵀDε + ε′ᵀDε′) + εᵀEε′,   d = C·H·W

    m = P·∂K/∂a⁰ (M = diag(m)), H = ∂²K/∂a⁰² (P×P), A = A0 + ½ Σ H∘tau, tau = E[a⁰a⁰ᵀ]."""

    A: float
    m: np.ndarray
    c: np.ndarray
    D: np.ndarray
    E: np.ndarray
    A0: float
    H: np.ndarray
    tau: np.ndarray
    image_shape: tuple[int, int, int]
    kernel_size: int
    depth: int
    kernel: str = "ntk"
    activation: str = ""
    pixel_norms: np.ndarray = field(default_factory=lambda: np.ones(1))

    @property
    def M(self) -> np.ndarray:
        """The P×P matrix of (L2) (diagonal: see the module docstring)."""
        return np.diag(self.m)


def cnn_linear_coeffs(
    activation: str | Activation,
    depth: int,
    image_shape: tuple[int, int, int] = (3, 8, 8),
    kernel_size: int = 3,
    input_cov: np.ndarray | None = None,
    kernel: str = "ntk",
) -> CNNLinearCoeffs:
    """Coefficients (L2) of the CNN's output NTK (or NNGP).

    Args:
        image_shape: (C, H, W).
        input_cov: covariance Σ (d×d) of the flattened C×H×W inputs; sets n̄_p = Tr(Σ_pp)/C and
            tau_pp′ = Tr(Σ_pp′Σ_p′p)/C². None: isotropic, n̄ = 1, tau = I/C.
    """
    if kernel not in KERNELS:
        raise ConfigError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    _check_depth(depth)
    act = _act(activation)
    C, H, W = image_shape
    P = H * W
    if input_cov is None:
        nbar, tau = np.ones(P), np.eye(P) / C
    else:
        S = np.asarray(input_cov, dtype=np.float64).reshape(C, P, C, P).transpose(1, 0, 3, 2)  # [p, c, p′, c′]
        nbar = np.einsum("pcpc->p", S) / C
        tau = np.einsum("pcqe,qepc->pq", S, S) / C**2
    T = same_patch_operator(H, W, kernel_size)
    nngp, ntk = _propagate(act, T, np.full((1, P), 1.0 / P), T @ nbar, depth)
    j = ntk if kernel == "ntk" else nngp
    Hess = j.aa[0]
    return CNNLinearCoeffs(
        A=float(j.v[0]) + 0.5 * float((Hess * tau).sum()),
        m=P * j.a[0],
        c=j.e[0],
        D=j.ee[0],
        E=j.x[0],
        A0=float(j.v[0]),
        H=Hess,
        tau=tau,
        image_shape=(C, H, W),
        kernel_size=kernel_size,
        depth=depth,
        kernel=kernel,
        activation=act.name,
        pixel_norms=nbar,
    )


def cnn_features(X: torch.Tensor, coeffs: CNNLinearCoeffs) -> torch.Tensor:
    """Ψ (..., n, d+1+P) of (L3) for CNN coefficients, X (..., n, C, H, W):
    [√m_p x_p/√d (flattened C×H×W order) ; g(x) ; Sε]."""
    C, H, W = coeffs.image_shape
    d, P = C * H * W, H * W
    pix = X.reshape(*X.shape[:-3], C, P)
    scale = torch.as_tensor(np.sqrt(np.clip(coeffs.m, 0.0, None)) / math.sqrt(d), dtype=X.dtype, device=X.device)
    xpart = (pix * scale).reshape(*X.shape[:-3], d)
    eps = (pix * pix).sum(-2) / C - torch.as_tensor(coeffs.pixel_norms, dtype=X.dtype, device=X.device)
    lin, quad, S = _norm_block(coeffs.A, coeffs.c, coeffs.D, coeffs.E)
    lin_t, quad_t, S_t = (torch.as_tensor(a, dtype=X.dtype, device=X.device) for a in (lin, quad, S))
    g = math.sqrt(max(coeffs.A, 0.0)) + eps @ lin_t + ((eps @ quad_t) * eps).sum(-1)
    return torch.cat([xpart, g.unsqueeze(-1), eps @ S_t], dim=-1)


def fit_linear_coeffs(K, X, norm_terms: bool = True) -> FCLinearCoeffs:
    """Least-squares fit of (L1) to the off-diagonal entries of a kernel matrix K (n×n).

    Regressors for i < j: 1, ρ_ij = x_iᵀx_j/d, ε_i+ε_j, (ε_i²+ε_j²)/2, ε_iε_j with ε = ‖x‖²/d − 1
    (X of any shape (n, ...), flattened). norm_terms=False fits A + Bρ only. A0 and curvature are not
    separately identifiable and are returned as nan."""
    K = K.detach().cpu().numpy() if isinstance(K, torch.Tensor) else np.asarray(K, dtype=np.float64)
    X2 = _as_2d(X)
    n, d = X2.shape
    if K.shape != (n, n):
        raise ConfigError(f"K must be {n}×{n} to match X, got {K.shape}")
    iu, ju = np.triu_indices(n, 1)
    rho = (X2 @ X2.T / d)[iu, ju]
    eps = (X2 * X2).sum(1) / d - 1.0
    cols = [np.ones_like(rho), rho]
    if norm_terms:
        ei, ej = eps[iu], eps[ju]
        cols += [ei + ej, 0.5 * (ei * ei + ej * ej), ei * ej]
    coef, *_ = np.linalg.lstsq(np.stack(cols, axis=1), K[iu, ju], rcond=None)
    coef = np.concatenate([coef, np.zeros(5 - coef.size)])
    A, B, C, D, E = (float(v) for v in coef)
    return FCLinearCoeffs(A=A, B=B, C=C, D=D, E=E, tau=1.0 / d)
