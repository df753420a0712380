"""Second-order jets of the deep-net NNGP/NTK recursion around orthogonal inputs (docs/theory.md §5.4).

**Partials** of F, G (K1) with respect to s, s′, c at a symmetric point s = s′, from the
Hermite-weighted expectations (K5) of :func:`earlylin.quadrature.gaussian_pair_expectations`
(heat equation / Price's theorem: ∂_s E f = ½E[∂₁²f], ∂_c E f = E[∂₁∂₂f]):

    F_s = ½E[φφ h₁₁]   F_c = G   F_ss = ¼E[φφ h₁₁₁₁]   F_sc = G_s   F_cc = G_c   F_ss′ = ¼G_c
    G_s = ½E[φ′φ′ h₁₁]   G_c = E[φ′φ′ h₁₂]   G_ss = ¼E[φ′φ′ h₁₁₁₁]   G_sc = ½E[φ′φ′ h₁₁₁₂]
    G_cc = E[φ′φ′ h₁₁₂₂]   G_ss′ = ¼G_cc
    V′(s) = E[φ(u)² He₂(g)]/(2s),   V″(s) = E[φ(u)² He₄(g)]/(4s²)    (u = √s g)           (K6)

At ρ = 0 and one layer these reduce to the docs/theory.md §2 constants, e.g. G = ζ²,
G_c = (E[gφ′(g)])², F = ϑ₀².

:func:`propagate` carries the value and the first and second derivatives (in the per-pixel ρ and
norms) of every layer's kernels through (K2)–(K4) of :mod:`earlylin.ntk.exact` by the chain rule;
:mod:`earlylin.ntk.linearise` turns them into the linear model's coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from earlylin.activations import Activation
from earlylin.quadrature import diag_expectations, gaussian_pair_expectations

# the terms (K6) needs; phi_h12, phi_h1112, phi_h1122 equal G, G_s·2, G_c (Price) and serve as checks
LAYER_TERMS = ("F", "G", "phi_h11", "phi_h1111", "dphi_h11", "dphi_h12", "dphi_h1111", "dphi_h1112", "dphi_h1122")


@dataclass
class Jet:
    """Value and derivatives of a per-pixel quantity y_p(a⁰, ε, ε′) at the expansion point.

    v (P,): value; a (P, P): ∂y_p/∂a⁰_i; aa (P, P, P): ∂²y_p/∂a⁰_i∂a⁰_j; e (P, P): ∂y_p/∂ε_i;
    ee (P, P, P): ∂²y_p/∂ε_i∂ε_j; x (P, P, P): ∂²y_p/∂ε_i∂ε′_j. Symmetric in x ↔ x′, so ∂/∂ε′ = ∂/∂ε."""

    v: np.ndarray
    a: np.ndarray
    aa: np.ndarray
    e: np.ndarray
    ee: np.ndarray
    x: np.ndarray

    def map(self, T: np.ndarray) -> Jet:
        """Apply a linear operator over the pixel axis (T of (K4), or the readout mean)."""
        return Jet(*(np.tensordot(T, f, axes=(1, 0)) for f in (self.v, self.a, self.aa, self.e, self.ee, self.x)))

    def __add__(self, other: Jet) -> Jet:
        return Jet(*(f + g for f, g in zip(self.fields(), other.fields(), strict=True)))

    def fields(self) -> tuple[np.ndarray, ...]:
        return (self.v, self.a, self.aa, self.e, self.ee, self.x)

    def times(self, other: Jet) -> Jet:
        """Leibniz rule for the product y·z of two jets (per pixel)."""
        y, z = self, other
        outer = lambda f, g: f[:, :, None] * g[:, None, :]  # noqa: E731
        vy, vz = y.v[:, None], z.v[:, None]
        return Jet(
            v=y.v * z.v,
            a=y.a * vz + vy * z.a,
            aa=y.aa * vz[..., None] + outer(y.a, z.a) + outer(z.a, y.a) + vy[..., None] * z.aa,
            e=y.e * vz + vy * z.e,
            ee=y.ee * vz[..., None] + outer(y.e, z.e) + outer(z.e, y.e) + vy[..., None] * z.ee,
            x=y.x * vz[..., None] + outer(y.e, z.e) + outer(z.e, y.e) + vy[..., None] * z.x,
        )


@dataclass
class Partials:
    """Φ and its partials in (s, s′, c) at a symmetric point s = s′ (per pixel), Φ ∈ {F, G}."""

    v: np.ndarray
    s: np.ndarray
    c: np.ndarray
    ss: np.ndarray
    ssp: np.ndarray
    sc: np.ndarray
    cc: np.ndarray

    def compose(self, S1: np.ndarray, S2: np.ndarray, cj: Jet) -> Jet:
        """Jet of Φ(s(ε), s′(ε′), c(a⁰, ε, ε′)) by the chain rule (see :func:`propagate`)."""
        outer = lambda f, g: f[:, :, None] * g[:, None, :]  # noqa: E731
        col = lambda v: v[:, None]  # noqa: E731
        sq = lambda v: v[:, None, None]  # noqa: E731
        cross = outer(S1, cj.e) + outer(cj.e, S1)
        return Jet(
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


def layer_partials(act: Activation, s: np.ndarray, c: np.ndarray) -> tuple[Partials, Partials]:
    """(F, G) partials of (K6) at (s, s, c), per pixel."""
    E = gaussian_pair_expectations(act, s, s, c, terms=LAYER_TERMS)
    G = Partials(
        v=E["G"],
        s=0.5 * E["dphi_h11"],
        c=E["dphi_h12"],
        ss=0.25 * E["dphi_h1111"],
        ssp=0.25 * E["dphi_h1122"],
        sc=0.5 * E["dphi_h1112"],
        cc=E["dphi_h1122"],
    )
    F = Partials(
        v=E["F"],
        s=0.5 * E["phi_h11"],
        c=G.v,
        ss=0.25 * E["phi_h1111"],
        ssp=0.25 * G.c,
        sc=G.s,
        cc=G.c,
    )
    return F, G


def propagate(act: Activation, T: np.ndarray, readout: np.ndarray, s1: np.ndarray, depth: int) -> tuple[Jet, Jet]:
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
    c = Jet(np.zeros(P), T.copy(), z3.copy(), z2.copy(), z3.copy(), z3.copy())
    theta = Jet(*(f.copy() for f in c.fields()))
    for layer in range(depth):
        Fp, Gp = layer_partials(act, s_bar, c.v)
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
