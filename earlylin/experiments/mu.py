"""The μ metric of Kalimeris et al. 2019: how much of the network's success is explained by a linear model.

D. Kalimeris, G. Kaplun, P. Nakkiran, B. Edelman, T. Yang, B. Barak, H. Zhang, *SGD on Neural Networks
Learns Functions of Increasing Complexity*, NeurIPS 2019 (arXiv:1905.11604), define for a classifier F,
a reference classifier L and labels Y, all evaluated on the same test points,

    μ_Y(F; L) = I(F; Y) − I(F; Y | L).

I(F; Y) is what the network's predictions know about the labels; I(F; Y | L) is what they know beyond
the linear model's predictions. μ = I(F; Y) when everything F knows about Y is already in L (e.g.
F = L), μ = 0 when F is independent of (L, Y). μ is not sign-definite: it is the interaction
information, negative when F and L are synergistic (Y = F·L with F, L independent fair coins gives
μ = −log 2).

Here F = sign(f_net(x)), L = sign(f_lin(x)), Y = sign(y) (labels ±1; for continuous targets the sign
of y), with sign(0) = +1 as in :func:`earlylin.experiments.comparison.class_error`. So at step 0 of a symmetric
initialisation (f_net ≡ 0) F is constant and every quantity is 0.

Estimator and unit: **plug-in** (maximum-likelihood) mutual information from the empirical frequencies
p̂ of the 2×2(×2) table over the n test points, in **nats** (natural log):

    Î(A; B)     = Σ_{a,b}   p̂(a,b)   log[ p̂(a,b) / (p̂(a) p̂(b)) ]
    Î(A; B | C) = Σ_{a,b,c} p̂(a,b,c) log[ p̂(c) p̂(a,b,c) / (p̂(a,c) p̂(b,c)) ]      (0 log 0 = 0)

Î is the KL divergence between two empirical distributions, hence ≥ 0; values within rounding of 0
(|·| ~ 1e-17) are clamped to 0. Every value lies in [0, log 2] for binary variables.

Small-sample bias: the plug-in estimator is biased upwards. For binary variables with no true
dependence, 2n·Î(A; B) → χ²₁ and 2n·Î(A; B | C) → χ²₂ (the G-test), so E Î(A;B) ≈ 1/(2n) and
E Î(A;B|C) ≈ 1/n nats (Miller–Madow; Panzeri & Treves 1996): μ̂ carries a bias of about −1/(2n) when F
is unrelated to Y and L, i.e. 2.5e-4 nats at n = 2,000 — small against I(F; Y) of a useful classifier
(≈ 0.1–0.6 nats) but visible when comparing μ near 0. No bias correction is applied.

All functions accept numpy arrays or torch tensors of shape (n,) or (K, n) (a leading seed axis, or
any leading batch axes) and return one value per row: a numpy float64 (array) for numpy inputs, a
float64 torch tensor on the inputs' device if any input is a tensor. Counting is vectorised (one
``scatter_add`` over the 8 cells of the table), with no Python loop over points or seeds. A row with a
non-finite entry in any input (a diverged seed) gives NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _to_torch(args: tuple[ArrayLike, ...]) -> tuple[list[torch.Tensor], bool]:
    """Convert every argument to a tensor on a common device; report whether any input was torch."""
    is_torch = any(isinstance(a, torch.Tensor) for a in args)
    device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
    out = [a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a)) for a in args]
    out = [a.to(device) for a in out]
    shape = out[0].shape
    for a in out[1:]:
        if a.shape != shape:
            raise ValueError(f"all inputs must have the same shape (..., n); got {[tuple(b.shape) for b in out]}")
    if len(shape) == 0 or shape[-1] == 0:
        raise ValueError(f"inputs need at least one point along the last axis; got shape {tuple(shape)}")
    return out, is_torch


def _finish(value: torch.Tensor, is_torch: bool) -> ArrayLike:
    if is_torch:
        return value
    arr = value.cpu().numpy()
    return np.float64(arr) if arr.ndim == 0 else arr


def _bits(a: torch.Tensor) -> torch.Tensor:
    """1 where a ≥ 0 (sign +1, including 0), else 0 (int64)."""
    return (a >= 0).to(torch.int64)


def _all_finite(a: torch.Tensor) -> torch.Tensor:
    if a.is_floating_point() or a.is_complex():
        return torch.isfinite(a).all(dim=-1)
    return torch.ones(a.shape[:-1], dtype=torch.bool, device=a.device)


def joint_table(*variables: torch.Tensor) -> torch.Tensor:
    """Empirical joint distribution of the signs of k same-shape tensors (..., n) → (..., 2, …, 2) float64.

    Index 0 of each axis is sign −1, index 1 is sign +1. The counts come from one ``scatter_add`` of
    the cell index Σ_j 2^{k−1−j}·bit_j over the last axis.
    """
    k = len(variables)
    idx = torch.zeros(variables[0].shape, dtype=torch.int64, device=variables[0].device)
    for a in variables:
        idx = idx * 2 + _bits(a)
    batch, n = idx.shape[:-1], idx.shape[-1]
    counts = torch.zeros((*batch, 2**k), dtype=torch.float64, device=idx.device)
    counts.scatter_add_(-1, idx, torch.ones(idx.shape, dtype=torch.float64, device=idx.device))
    return (counts / n).reshape(*batch, *([2] * k))


def _xlogy_ratio(p: torch.Tensor, num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """p·log(num/den) with the convention 0·log(·) = 0 (num, den > 0 wherever p > 0)."""
    pos = p > 0
    safe_num = torch.where(pos, num, 1.0)
    safe_den = torch.where(pos, den, 1.0)
    return torch.where(pos, p * torch.log(safe_num / safe_den), 0.0)


def mi_from_table(p_ab: torch.Tensor) -> torch.Tensor:
    """Î(A; B) in nats from a joint table (..., |A|, |B|): Σ p(a,b) log[p(a,b)/(p(a)p(b))], clamped ≥ 0."""
    p_a = p_ab.sum(-1, keepdim=True)
    p_b = p_ab.sum(-2, keepdim=True)
    return _xlogy_ratio(p_ab, p_ab, p_a * p_b).sum((-2, -1)).clamp_min(0.0)


def cmi_from_table(p_abc: torch.Tensor) -> torch.Tensor:
    """Î(A; B | C) in nats from a joint table (..., |A|, |B|, |C|), clamped ≥ 0:
    Σ p(a,b,c) log[p(c) p(a,b,c) / (p(a,c) p(b,c))]."""
    p_c = p_abc.sum((-3, -2), keepdim=True)
    p_ac = p_abc.sum(-2, keepdim=True)
    p_bc = p_abc.sum(-3, keepdim=True)
    return _xlogy_ratio(p_abc, p_c * p_abc, p_ac * p_bc).sum((-3, -2, -1)).clamp_min(0.0)


def mutual_information(a: ArrayLike, b: ArrayLike) -> ArrayLike:
    """Plug-in Î(sign a; sign b) in nats, one value per row of (..., n) inputs (module docstring)."""
    (ta, tb), is_torch = _to_torch((a, b))
    value = mi_from_table(joint_table(ta, tb))
    value = torch.where(_all_finite(ta) & _all_finite(tb), value, torch.nan)
    return _finish(value, is_torch)


def conditional_mutual_information(a: ArrayLike, b: ArrayLike, given: ArrayLike) -> ArrayLike:
    """Plug-in Î(sign a; sign b | sign given) in nats, one value per row of (..., n) inputs."""
    (ta, tb, tc), is_torch = _to_torch((a, b, given))
    value = cmi_from_table(joint_table(ta, tb, tc))
    value = torch.where(_all_finite(ta) & _all_finite(tb) & _all_finite(tc), value, torch.nan)
    return _finish(value, is_torch)


class MuTerms(NamedTuple):
    """μ and its two terms, each one value per row (nats)."""

    i_fy: ArrayLike  # I(F; Y)
    i_fy_given_l: ArrayLike  # I(F; Y | L)
    mu: ArrayLike  # I(F; Y) − I(F; Y | L)


def mu_terms(f_net: ArrayLike, f_lin: ArrayLike, y: ArrayLike) -> MuTerms:
    """(I(F;Y), I(F;Y|L), μ) with F = sign f_net, L = sign f_lin, Y = sign y, from one 2×2×2 table."""
    (tf, tl, ty), is_torch = _to_torch((f_net, f_lin, y))
    p_fyl = joint_table(tf, ty, tl)  # axes (F, Y, L)
    ok = _all_finite(tf) & _all_finite(tl) & _all_finite(ty)
    i_fy = torch.where(ok, mi_from_table(p_fyl.sum(-1)), torch.nan)
    i_fy_l = torch.where(ok, cmi_from_table(p_fyl), torch.nan)
    return MuTerms(_finish(i_fy, is_torch), _finish(i_fy_l, is_torch), _finish(i_fy - i_fy_l, is_torch))


def mu_metric(f_net: ArrayLike, f_lin: ArrayLike, y: ArrayLike) -> ArrayLike:
    """μ_Y(F; L) = I(F; Y) − I(F; Y | L) (Kalimeris et al. 2019), plug-in, in nats.

    Args:
        f_net: network outputs on the test points, (n,) or (K, n).
        f_lin: the linear model's outputs on the same points, same shape.
        y: labels (±1, or continuous: their sign is used), same shape.

    Returns:
        (K,) float64 (torch if any input is a tensor, else numpy; a scalar for 1-D inputs); NaN for
        rows with a non-finite input.
    """
    return mu_terms(f_net, f_lin, y).mu


def mu_labels(f_net: torch.Tensor, f_lin: torch.Tensor, y: torch.Tensor, classes: int) -> MuTerms:
    """(I(F;Y), I(F;Y|L), μ) for class labels in {0, …, classes − 1} (K, n) — F, L the argmax labels of net and
    linear model — from one classes³ table (the same plug-in estimator, in nats; each term in [0, log classes])."""
    idx = (f_net.long() * classes + y.long()) * classes + f_lin.long()  # cell (F, Y, L)
    counts = torch.zeros((*idx.shape[:-1], classes**3), dtype=torch.float64, device=idx.device)
    counts.scatter_add_(-1, idx, torch.ones(idx.shape, dtype=torch.float64, device=idx.device))
    p_fyl = (counts / idx.shape[-1]).reshape(*idx.shape[:-1], classes, classes, classes)
    i_fy, i_fy_l = mi_from_table(p_fyl.sum(-1)), cmi_from_table(p_fyl)
    return MuTerms(i_fy, i_fy_l, i_fy - i_fy_l)
