"""The paper's 1D CNN (THEORY §5): one circular conv layer, per-position readout, and its linear model.

Network, for a signal x ∈ ℝ^d, m filters w_r ∈ ℝ^q (1 ≤ q ≤ d), stride 1, circular padding, no
pooling and a readout weight per (filter, position):

    x_[p] = (x_p, x_{p+1}, …, x_{p+q−1})   (indices mod d),      p = 1, …, d
    f(x)  = (1/√(m d)) Σ_r Σ_p v_{r,p} φ(w_rᵀ x_[p] / √q),       W ∈ ℝ^{m×q}, v ∈ ℝ^{m×d}
    L     = (1/2n) Σ_i (f(x_i) − y_i)²,   full-batch GD on W (first), v (second) or both.

Symmetric initialisation as the two-layer net: for r ≤ m/2, w_r ~ N(0, I_q), v_{r,p} ~ Unif{±1}
i.i.d.; w_{r+m/2} = w_r, v_{r+m/2,·} = −v_{r,·}, so f₀ ≡ 0. Tensors carry a leading seed axis K.

Gradients (Z_{i,p,r} = w_rᵀ x_{i,[p]}/√q, r_i = f(x_i) − y_i; checked against autograd in the tests):

    ∇_{v_{r,p}} L = (1/(n√(md))) Σ_i r_i φ(Z_{i,p,r})
    ∇_{w_r} L     = (1/(n√(md)√q)) Σ_{i,p} r_i v_{r,p} φ′(Z_{i,p,r}) x_{i,[p]}

Tangent kernels at initialisation (ρ_p = x_[p]ᵀx′_[p]/q, ρ_{pp′} = x_[p]ᵀx′_[p′]/q):

    Θ₁(x, x′) = (1/(m d)) Σ_r Σ_{p,p′} v_{r,p} v_{r,p′} φ′(Z_{p,r}) φ′(Z′_{p′,r}) ρ_{pp′}
    Θ₂(x, x′) = (1/(m d)) Σ_r Σ_p φ(Z_{p,r}) φ(Z′_{p,r})

Linear model — derived exactly as THEORY §3, position by position. As m → ∞ the v_{r,p} are
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
:func:`earlylin.linear.features`. The neglected terms are the patch-level errors of THEORY §4
with d replaced by q (norm fluctuations and ρ_p³ terms, O(q^{−1/2}) relative) plus finite width
(Θ₂'s linear part is ζ² Σ_p x_[p]ᵀ(WᵀW/m)x′_[p]/(qd), ≈ 2√(q/m) relative).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from earlylin import compare
from earlylin.activations import Activation, GaussianConstants, gaussian_constants, get_activation
from earlylin.config import DTYPES, TwoLayerConfig
from earlylin.data.synthetic import make_dataset, tr_sigma2_over_d
from earlylin.errors import ConfigError
from earlylin.experiment import check_lr, run_seeds
from earlylin.linear import norm_feature
from earlylin.nets import symmetric_init
from earlylin.records import Cache
from earlylin.train import record_schedule, run_gd

# ---------------------------------------------------------------- network

def patch_index(d: int, q: int, device: torch.device | None = None) -> torch.Tensor:
    """(d, q) indices of the circular patches: row p is (p, p+1, …, p+q−1) mod d."""
    return (torch.arange(d, device=device).unsqueeze(1) + torch.arange(q, device=device).unsqueeze(0)) % d


def patches(X: torch.Tensor, q: int) -> torch.Tensor:
    """Circular patches x_[p] of every signal: (..., n, d) → (..., n, d, q)."""
    return X[..., patch_index(X.shape[-1], q, X.device)]


def cnn1d_init(seed: int, m: int, q: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric initialisation: W (m, q) from :func:`earlylin.nets.symmetric_init` (same stream) and
    v (m, d) with v_{r,p} ~ ±1 i.i.d. for r < m/2, v_{r+m/2,·} = −v_{r,·}; hence f₀ ≡ 0."""
    W, v0 = symmetric_init(seed, m, q)
    half = m // 2
    rng = np.random.default_rng([seed, 7919])  # readout signs per position (own stream)
    v = rng.choice([-1.0, 1.0], size=(half, d))
    v[:, 0] = v0[:half]  # position 0 keeps the two-layer net's signs
    return W, np.concatenate([v, -v])


def preacts(W: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Z_{k,i,p,r} = w_rᵀ x_[p]/√q for patches P (K, n, d, q) and filters W (K, m, q) → (K, n, d, m)."""
    K, n, d, q = P.shape
    Z = torch.matmul(P.reshape(K, n * d, q), W.transpose(-1, -2) * (1.0 / math.sqrt(q)))
    return Z.reshape(K, n, d, W.shape[-2])


def readout(H: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(1/√(md)) Σ_{p,r} v_{r,p} H_{i,p,r} for H (K, n, d, m), v (K, m, d) → (K, n)."""
    K, n, d, m = H.shape
    flat = H.reshape(K, n, d * m)
    vt = v.transpose(-1, -2).reshape(K, d * m, 1)
    return torch.matmul(flat, vt).squeeze(-1) / math.sqrt(m * d)


def forward(act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Network outputs f(X), shape (K, n), for W (K, m, q), v (K, m, d), X (K, n, d)."""
    return readout(act.phi(preacts(W, patches(X, W.shape[-1]))), v)


class Cnn1dStep:
    """Loss (K,), outputs (K, n) and explicit gradients ∇_W L, ∇_v L (module docstring) on a fixed
    batch. With ``grad_W`` off the hidden features φ(Z) never change and are computed once."""

    def __init__(self, act: Activation, X: torch.Tensor, y: torch.Tensor, q: int, grad_W: bool, grad_v: bool) -> None:
        self.act, self.y, self.grad_W, self.grad_v = act, y, grad_W, grad_v
        self.P = patches(X, q)
        self._H_fixed: torch.Tensor | None = None

    def __call__(
        self, W: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        K, n, d, q = self.P.shape
        m = W.shape[-2]
        if self.grad_W or self._H_fixed is None:
            Z = preacts(W, self.P)
            H = self.act.phi(Z)
            if not self.grad_W:
                self._H_fixed = H
        else:
            Z, H = None, self._H_fixed
        f = readout(H, v)
        r = f - self.y
        loss = 0.5 * torch.mean(r * r, dim=-1)
        scale = 1.0 / (n * math.sqrt(m * d))
        gv = None
        if self.grad_v:
            g = torch.matmul(r.unsqueeze(-2), H.reshape(K, n, d * m)).reshape(K, d, m)
            gv = g.transpose(-1, -2) * scale
        gW = None
        if self.grad_W:
            assert Z is not None
            A = self.act.dphi(Z) * v.transpose(-1, -2).unsqueeze(1) * r.view(K, n, 1, 1)
            gW = torch.matmul(A.reshape(K, n * d, m).transpose(-1, -2), self.P.reshape(K, n * d, q))
            gW = gW * (scale / math.sqrt(q))
        return loss, f, gW, gv


def empirical_ntk(
    act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor, Xp: torch.Tensor, layers: str
) -> torch.Tensor:
    """Θ = Θ₁ and/or Θ₂ at (W, v) (module docstring), (K, n, n′), from the explicit per-filter
    gradients: Θ₁ = (1/(mdq)) Σ_r G_r(x)·G_r(x′) with G_r(x) = Σ_p v_{r,p} φ′(Z_{p,r}) x_[p]."""
    m, q = W.shape[-2], W.shape[-1]
    d = X.shape[-1]
    P, Pp = patches(X, q), patches(Xp, q)
    Z, Zp = preacts(W, P), preacts(W, Pp)
    out = torch.zeros(*X.shape[:-1], Xp.shape[-2], dtype=X.dtype, device=X.device)
    if layers in ("first", "both"):
        vt = v.transpose(-1, -2).unsqueeze(1)  # (K, 1, d, m)
        G = torch.einsum("kipr,kipj->kirj", act.dphi(Z) * vt, P).flatten(-2)
        Gp = torch.einsum("kipr,kipj->kirj", act.dphi(Zp) * vt, Pp).flatten(-2)
        out = out + G @ Gp.transpose(-1, -2) / (m * d * q)
    if layers in ("second", "both"):
        H, Hp = act.phi(Z).flatten(-2), act.phi(Zp).flatten(-2)
        out = out + H @ Hp.transpose(-1, -2) / (m * d)
    return out


# ---------------------------------------------------------------- linear model

def patch_norm_feature(X: torch.Tensor, consts: GaussianConstants, q: int) -> torch.Tensor:
    """q(x_[p]) = ϑ₀ + ϑ₁ ε_p + ϑ₂ ε_p², ε_p = ‖x_[p]‖/√q − 1, shape (..., n, d)."""
    return norm_feature(patches(X, q), consts)


def cnn1d_features(
    X: torch.Tensor, consts: GaussianConstants, nu: float, layers: str, q: int, stripped: bool = False
) -> torch.Tensor:
    """Feature matrix Ψ (..., n, p) of the CNN's linear model (module docstring):
    ψ₁ = [ζx/√d ; ν/√q], ψ₂ = [ζx/√d ; ν/√(2q) ; q(x_[p])/√d for p = 1…d], both = [ψ₁ ; ψ₂];
    ``stripped`` keeps the x columns only."""
    d = X.shape[-1]
    x_part = consts.zeta * X / math.sqrt(d)
    ones = torch.ones_like(X[..., :1])
    psi1 = [x_part] if stripped else [x_part, ones * (nu / math.sqrt(q))]
    if stripped:
        psi2 = [x_part]
    else:
        psi2 = [x_part, ones * (nu / math.sqrt(2 * q)), patch_norm_feature(X, consts, q) / math.sqrt(d)]
    blocks = {"first": psi1, "second": psi2, "both": psi1 + psi2}[layers]
    return torch.cat(blocks, dim=-1)


def cnn1d_feature_kernel(
    X: torch.Tensor, Xp: torch.Tensor, consts: GaussianConstants, nu: float, layers: str, q: int
) -> torch.Tensor:
    """Θ^lin written term by term, an independent check of :func:`cnn1d_features`:
    first ζ² Σ_p x_[p]ᵀx′_[p]/(qd) + ν²/q; second ζ² Σ_p x_[p]ᵀx′_[p]/(qd) + ν²/(2q) + (1/d) Σ_p q_p q′_p."""
    d = X.shape[-1]
    P, Pp = patches(X, q).flatten(-2), patches(Xp, q).flatten(-2)
    lin = consts.zeta**2 * (P @ Pp.transpose(-1, -2)) / (q * d)
    Q, Qp = patch_norm_feature(X, consts, q), patch_norm_feature(Xp, consts, q)
    k1 = lin + nu**2 / q
    k2 = lin + nu**2 / (2 * q) + Q @ Qp.transpose(-1, -2) / d
    return {"first": k1, "second": k2, "both": k1 + k2}[layers]


# ---------------------------------------------------------------- runs

@dataclass(frozen=True)
class Cnn1dConfig(TwoLayerConfig):
    """A 1D-CNN run: the two-layer fields (``width`` = number of filters m) plus ``filter_size`` q."""

    filter_size: int = 10

    def validate(self) -> Cnn1dConfig:
        super().validate()
        if isinstance(self.filter_size, bool) or not isinstance(self.filter_size, int) or not (
            1 <= self.filter_size <= self.d
        ):
            raise ConfigError(f"--filter {self.filter_size!r}: the filter size must be an integer in [1, d = {self.d}]")
        if self.ntk_lin:
            raise ConfigError("--ntk-lin is not available for the 1D CNN; leave it out")
        return self


def train_cnn1d_seeds(cfg: Cnn1dConfig, seeds: list[int], device: torch.device, progress: bool) -> dict[int, dict]:
    """Train ``seeds`` of ``cfg`` as one batch; {seed: metrics}, as :func:`earlylin.experiment.train_seeds`."""
    dtype, q = DTYPES[cfg.dtype], cfg.filter_size
    act = get_activation(cfg.activation)
    data = [
        make_dataset(s, cfg.d, cfg.n, cfg.n_test, cfg.sigma, cfg.target, cfg.teacher_width, cfg.inputs)
        for s in seeds
    ]
    consts = gaussian_constants(act)
    nu = consts.nu(tr_sigma2_over_d(data[0].spectrum))  # Σ is diagonal: ν²/q is exact (docstring)

    def stack(arrays: list[np.ndarray], dt: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).to(device=device, dtype=dt)

    f64 = torch.float64
    X64, Xt64 = stack([b.x_train for b in data], f64), stack([b.x_test for b in data], f64)
    y64, yt64 = stack([b.y_train for b in data], f64), stack([b.y_test for b in data], f64)
    psi, psi_t = (cnn1d_features(A, consts, nu, cfg.layers, q) for A in (X64, Xt64))
    psi_s, psi_st = (cnn1d_features(A, consts, nu, cfg.layers, q, stripped=True) for A in (X64, Xt64))
    comparison = compare.LinearComparison((psi, psi_t), (psi_s, psi_st), y64, yt64, cfg.lr)
    check_lr(cfg.lr, comparison.bound, f"1D CNN d={cfg.d}, q={q}, layers={cfg.layers}")

    X, Xt, y = X64.to(dtype), Xt64.to(dtype), y64.to(dtype)
    inits = [cnn1d_init(s, cfg.width, q, cfg.d) for s in seeds]
    W, v = stack([w for w, _ in inits], dtype), stack([v for _, v in inits], dtype)
    train_W, train_v = cfg.layers in ("first", "both"), cfg.layers in ("second", "both")
    step = Cnn1dStep(act, X, y, q, train_W, train_v)

    def step_fn(params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list]:
        loss, f, gW, gv = step(params[0], params[1])
        return loss, f, [gW, gv]

    window = compare.early_window(cfg.d, cfg.lr, cfg.window_c)
    steps = record_schedule(cfg.steps, cfg.n_log, extra=[window])
    rows: list[dict[str, torch.Tensor]] = []

    def on_record(t: int, f_train: torch.Tensor, params: list[torch.Tensor]) -> None:
        rows.append(comparison.row(t, f_train, forward(act, params[0], params[1], Xt)))

    start = time.perf_counter()
    lrs = [cfg.lr if train_W else 0.0, cfg.lr if train_v else 0.0]
    diverged = run_gd(step_fn, [W, v], lrs, cfg.steps, steps, on_record, seeds, progress)
    return comparison.per_seed(rows, steps, seeds, diverged, time.perf_counter() - start)


def run_cnn1d(cfg: Cnn1dConfig, cache: Cache | None = None, progress: bool = False) -> dict[str, Any]:
    """Run (or load from ``cache``) every seed of ``cfg``; same schema as
    :func:`earlylin.experiment.run_two_layer` (config, device, constants, per_seed, summary)."""
    return run_seeds(cfg, train_cnn1d_seeds, cache, progress, model="cnn1d")
