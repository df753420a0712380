"""The 1D CNN's linear model (docs/theory.md §5.5): features ψ₁, ψ₂ from the patch-level Hermite expansion.

The network (:mod:`earlylin.nets.cnn1d`) has tangent kernels at initialisation
(ρ_p = x_[p]ᵀx′_[p]/q, ρ_{pp′} = x_[p]ᵀx′_[p′]/q):

    Θ₁(x, x′) = (1/(m d)) Σ_r Σ_{p,p′} v_{r,p} v_{r,p′} φ′(Z_{p,r}) φ′(Z′_{p′,r}) ρ_{pp′}
    Θ₂(x, x′) = (1/(m d)) Σ_r Σ_p φ(Z_{p,r}) φ(Z′_{p,r})

Linear model — derived exactly as docs/theory.md §3, position by position. As m → ∞ the v_{r,p} are
independent across p, so the p ≠ p′ terms of Θ₁ vanish, and both kernels become averages over
positions of the fully connected kernels *in dimension q* evaluated on the patch pair (x_[p], x′_[p]):

    Θ₁ → (1/d) Σ_p ρ_p E[φ′(u_p) φ′(u′_p)],     Θ₂ → (1/d) Σ_p E[φ(u_p) φ(u′_p)].

Hermite-expand each in ρ_p to second order, as for the FC net, with the norm feature evaluated on
the patch, q(a) = ϑ₀ + ϑ₁ ε + ϑ₂ ε², ε = ‖a‖/√q − 1:

    Θ₁ ≈ (1/d) Σ_p [ ζ² ρ_p + E[gφ′]² ρ_p² ]
    Θ₂ ≈ (1/d) Σ_p [ q(x_[p]) q(x′_[p]) + ζ² ρ_p + ½ E[gφ′]² ρ_p² ].

Linear part: every coordinate lies in exactly q patches, so Σ_p x_[p]ᵀx′_[p] = q·xᵀx′ and
(1/d) Σ_p ζ² ρ_p = ζ² xᵀx′/d — the FC term, unchanged. Quadratic part: replace ρ_p² by its mean
over independent inputs, E ρ_p² = Tr(Σ_[p]²)/q² (Σ_[p] the q×q patch block of Σ). For Σ diagonal
in the signal basis (earlylin's inputs: x = Σ^{1/2} x̄ with diagonal Σ) each Σ_jj² appears in q
patches, so (1/d) Σ_p E ρ_p² = Tr(Σ²)/(d q), and E[gφ′]²·Tr(Σ²)/(d q) = ν²/q: **ν²/d becomes ν²/q**
(ν = E[gφ′]·√(Tr Σ²/d) as for the FC net; for non-diagonal Σ ν² would have to use
(1/d) Σ_p Tr(Σ_[p]²)/q instead of Tr(Σ²)/d). The norm term does not collapse to one feature: it is
the average of d per-patch products, i.e. the d features q(x_[p])/√d. Hence

    first layer :  ψ₁(x) = [ ζ x/√d ; ν/√q ]
    second layer:  ψ₂(x) = [ ζ x/√d ; ν/√(2q) ; (q(x_[1]), …, q(x_[d]))/√d ]
    both layers :  ψ(x)  = [ ψ₁(x) ; ψ₂(x) ]

so ψ₁ψ₁ᵀ = ζ²XXᵀ/d + ν²/q and ψ₂ψ₂ᵀ = ζ²XXᵀ/d + ν²/(2q) + (1/d) Σ_p q_p q_pᵀ. At q = d every
patch is a cyclic shift of x, ‖x_[p]‖ = ‖x‖, and this is exactly the FC model of
:func:`earlylin.linear.features.features`. The neglected terms are the patch-level errors of docs/theory.md §4
with d replaced by q (norm fluctuations and ρ_p³ terms, O(q^{−1/2}) relative) plus finite width
(Θ₂'s linear part is ζ² Σ_p x_[p]ᵀ(WᵀW/m)x′_[p]/(qd), ≈ 2√(q/m) relative).
"""

from __future__ import annotations

import math

import torch

from earlylin.activations import GaussianConstants
from earlylin.linear.features import ABLATIONS, norm_feature
from earlylin.nets.cnn1d import patches


def patch_norm_feature(X: torch.Tensor, consts: GaussianConstants, q: int) -> torch.Tensor:
    """q(x_[p]) = ϑ₀ + ϑ₁ ε_p + ϑ₂ ε_p², ε_p = ‖x_[p]‖/√q − 1, shape (..., n, d)."""
    return norm_feature(patches(X, q), consts)


def cnn1d_features(
    X: torch.Tensor, consts: GaussianConstants, nu: float, layers: str, q: int, stripped: bool = False,
    drop: str | None = None, nu2: float | None = None,
) -> torch.Tensor:
    """Feature matrix Ψ (..., n, p) of the CNN's linear model (module docstring):
    ψ₁ = [ζx/√d ; ν/√q], ψ₂ = [ζx/√d ; ν/√(2q) ; q(x_[p])/√d for p = 1…d], both = [ψ₁ ; ψ₂];
    ``stripped`` keeps the x columns only; ``drop`` ("norm" or "const", as
    :func:`earlylin.linear.features.features`) leaves out the d patch-norm columns or the constant columns."""
    if drop is not None and drop not in ABLATIONS:
        raise ValueError(f"drop={drop!r}: valid are {ABLATIONS} or None")
    d = X.shape[-1]
    nu2 = nu if nu2 is None else nu2  # the second layer's ν₂ (from φ; equal to ν where Stein holds)
    x1, x2 = consts.zeta * X / math.sqrt(d), consts.hermite1 * X / math.sqrt(d)  # ζ from φ′, a₁ = E[gφ] from φ
    if stripped:
        return torch.cat({"first": [x1], "second": [x2], "both": [x1, x2]}[layers], dim=-1)
    ones = torch.ones_like(X[..., :1])
    const1 = [] if drop == "const" else [ones * (nu / math.sqrt(q))]
    const2 = [] if drop == "const" else [ones * (nu2 / math.sqrt(2 * q))]
    norm = [] if drop == "norm" else [patch_norm_feature(X, consts, q) / math.sqrt(d)]
    psi1, psi2 = [x1, *const1], [x2, *const2, *norm]
    blocks = {"first": psi1, "second": psi2, "both": psi1 + psi2}[layers]
    return torch.cat(blocks, dim=-1)
