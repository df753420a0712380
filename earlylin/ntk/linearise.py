"""Linearisation of the deep-net NNGP/NTK around orthogonal inputs, and its features (docs/theory.md §5).

The one concern here is the second-order expansion (L1)/(L2) of the output kernel of
:mod:`earlylin.ntk.exact` and the features (L3) that realise it; the Gaussian expectations come from
:mod:`earlylin.quadrature`.

**Partials** of F, G (K1) with respect to s, s′, c at a symmetric point s = s′, from the
Hermite-weighted expectations (K5) of :func:`earlylin.quadrature.gaussian_pair_expectations`
(heat equation / Price's theorem: ∂_s E f = ½E[∂₁²f], ∂_c E f = E[∂₁∂₂f]):

    F_s = ½E[φφ h₁₁]   F_c = G   F_ss = ¼E[φφ h₁₁₁₁]   F_sc = G_s   F_cc = G_c   F_ss′ = ¼G_c
    G_s = ½E[φ′φ′ h₁₁]   G_c = E[φ′φ′ h₁₂]   G_ss = ¼E[φ′φ′ h₁₁₁₁]   G_sc = ½E[φ′φ′ h₁₁₁₂]
    G_cc = E[φ′φ′ h₁₁₂₂]   G_ss′ = ¼G_cc
    V′(s) = E[φ(u)² He₂(g)]/(2s),   V″(s) = E[φ(u)² He₄(g)]/(4s²)    (u = √s g)           (K6)

At ρ = 0 and one layer these reduce to the docs/theory.md §2 constants, e.g. G = ζ²,
G_c = (E[gφ′(g)])², F = ϑ₀².

**Linearisation** (docs/theory.md §5). Expand the output kernel K (NTK by default, or NNGP) around the
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
All coefficients are propagated analytically through (K2)–(K4) of :mod:`earlylin.ntk.exact` with the
chain rule (see :func:`_propagate`, whose docstring lists every update), from the partials (K6)
evaluated at the expansion point of each layer. Note that for φ with E[φ(g)] ≠ 0 the deeper layers'
expansion points have Σ^l ≠ 0 even at ρ = 0 (e.g. ReLU: Σ² = 1/(2π) at ρ = 0), so these are genuinely
bivariate expectations, not products of one-dimensional ones; for odd φ (erf) they factorise and all
norm coefficients vanish. For positively homogeneous φ (ReLU) the norm terms do *not* vanish: they are
those of K(q, q′, 0) = A₀√(qq′).

**Features.** The kernel (L1)/(L2) is realised, up to third-order terms in ε, by

    ψ(x) = [ √m_p x_p/√d  (all pixels; FC: √B x/√d) ;  g(x) ;  S ε ],
    g(x) = √A + cᵀε/√A + εᵀDε/(2√A),   S Sᵀ = E − c cᵀ/A                                     (L3)

(the positive part of E − ccᵀ/A; E − ccᵀ/A ⪰ 0 holds exactly for the true kernel because K restricted
to mutually orthogonal inputs is a PSD kernel in the norms). For L = 1 FC: B = 2ζ², A₀ = ϑ₀²,
c = ϑ₀ϑ₁/2, D = ϑ₀(ϑ₂/2 − ϑ₁/4), E = ϑ₁²/4, i.e. docs/theory.md §3's both-layer kernel
2ζ²ρ + 3ν²/(2d) + q(x)q(x′) re-expanded in ε = ‖x‖²/d − 1 instead of ‖x‖/√d − 1.

Validity: inputs nearly orthogonal with squared norms near their expectations; for the CNN this is
needed of the first-layer patch statistics s¹_p = (T n)_p and Σ¹_p = (T a⁰)_p, averages over k²C
numbers, so the expansion is good when k²C ≫ 1 (27 for 3×3 RGB patches: fair, not asymptotic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from earlylin.activations import Activation, get_activation
from earlylin.errors import ConfigError
from earlylin.ntk.exact import as_rows, check_depth, same_patch_operator
from earlylin.quadrature import diag_expectations, gaussian_pair_expectations

__all__ = [
    "KERNELS",
    "CNNLinearCoeffs",
    "FCLinearCoeffs",
    "cnn_features",
    "cnn_linear_coeffs",
    "deep_features",
    "fc_linear_coeffs",
    "fit_linear_coeffs",
]

KERNELS = ("ntk", "nngp")

# the terms (K6) needs; phi_h12, phi_h1112, phi_h1122 equal G, G_s·2, G_c (Price) and serve as checks
_LAYER_TERMS = ("F", "G", "phi_h11", "phi_h1111", "dphi_h11", "dphi_h12", "dphi_h1111", "dphi_h1112", "dphi_h1122")


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
        dg = diag_expectations(act, s_bar)
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
        d: input dimension; tau = Tr(Σ²)/d² = tr_sigma2_over_d/d (docs/theory.md §2's Tr(Σ²)/d, 1 if isotropic).
        kernel: "ntk" or "nngp".
    """
    if kernel not in KERNELS:
        raise ConfigError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    check_depth(depth)
    act = get_activation(activation)
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
    check_depth(depth)
    act = get_activation(activation)
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
    X2 = as_rows(X)
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
