"""Linearisation of the deep-net NNGP/NTK around orthogonal inputs, and its features (docs/theory.md §5).

The one concern here is the second-order expansion (L1)/(L2) of the output kernel of
:mod:`earlylin.ntk.exact` and the features (L3) that realise it; the Gaussian expectations come from
:mod:`earlylin.quadrature`.

**Partials** of F, G and the second-order jets propagated through the recursion are in
:mod:`earlylin.ntk.jets`.

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
chain rule (see :func:`propagate`, whose docstring lists every update), from the partials (K6)
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
from earlylin.ntk.jets import propagate

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
    nngp, ntk = propagate(act, np.ones((1, 1)), np.ones((1, 1)), np.ones(1), depth)
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
    nngp, ntk = propagate(act, T, np.full((1, P), 1.0 / P), T @ nbar, depth)
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
