"""The finite-width linear model: f^lin built on the network's own first-layer weights W(0).

docs/theory.md §4 names *finite width* as an error source separate from the genuinely nonlinear ones: at
width m the linear part of Θ₂ is ζ² X (WᵀW/m) Xᵀ/d, not ζ² XXᵀ/d, a relative spectral difference
≈ 2√(d/m). The model here keeps that structure, so that

    f_net − f^lin  =  (f_net − f^lin_fw)  +  (f^lin_fw − f^lin)
                       nonlinear part        width part (→ 0 like √(d/m))

Derivation (docs/theory.md §3's Hermite structure, now per neuron at fixed W). Write u_r = w_rᵀx/√d and
t = ‖x‖/√d. Over w ~ N(0, I_d) at fixed x, u is N(0, t²), and the Hermite expansion of φ in u/t is

    φ(u) = a₀(t) + a₁(t)·He₁(u/t) + ½a₂(t)·He₂(u/t) + …,   a_k(t) = E_g[φ(tg) He_k(g)],
    a₀(t) ≈ q(x) = ϑ₀ + ϑ₁(t − 1) + ϑ₂(t − 1)²   (the norm feature),
    a₁(t)·He₁(u/t) = E_g[φ′(tg)]·u ≈ ζ u,        a₂(t) ≈ E[φ″(g)] = ν (isotropic).

The infinite-width model keeps, of Θ₂ = E_w[φ(u)φ(u′)], the degree-0 product q(x)q(x′), the
degree-1 product ζ² xᵀx′/d and the *mean* of the degree-2 product, ν²/(2d) (ρ² averaged). The
finite-width model keeps the same terms but averages over the network's m neurons instead of over
w, i.e. per neuron (second-layer feature, one per hidden unit)

    h_r(x) = q(x) + ζ u_r = q(x) + ζ w_rᵀx/√d,

    Θ₂^fw(x, x′) = (1/m) Σ_r h_r(x) h_r(x′) + ν²/(2d)
                 = q(x)q(x′) + ζ q(x) w̄ᵀx′/√d + ζ q(x′) w̄ᵀx/√d + ζ² xᵀ(WᵀW/m)x′/d + ν²/(2d),

with w̄ = (1/m)Σ_r w_r. As m → ∞, w̄ → 0 and WᵀW/m → I, so Θ₂^fw → ψ₂ψ₂ᵀ (docs/theory.md §3) with
fluctuations O(m^{−1/2}). For erf (q ≡ 0, ν = 0) it is exactly ζ² X(WᵀW/m)Xᵀ/d.

Choices, documented:

- **q(x) is not made per-neuron** (no ‖w_r‖ in it). Using ε_r = ‖w_r‖‖x‖/d − 1 would add, after
  averaging over neurons, a constant ϑ₁² Var(‖w‖/√d) ≈ ϑ₁²/(2d) which in the exact kernel is cancelled
  by the (dropped) He₂ term's negative correlation at ρ = 0 (on the sphere E[(g²−1)(g′²−1)] = −2/(d+2));
  keeping it would stop Θ₂^fw converging to ψ₂ψ₂ᵀ as m → ∞.
- **The ν²/(2d) constant stays a constant**: its finite-width fluctuation is O(1/(d√m)).
- **The w̄ cross terms are kept**: they are part of the network's degree-0 × degree-1 product (with
  symmetric init w̄ is the mean of m/2 Gaussians, not 0).
- **First layer: ψ₁ as in docs/theory.md §3, scaled by √(mean v_r²)** (= 1 for v_r = ±1). Replacing φ′(u_r)
  by ζ in Θ₁ = (xᵀx′/d)(1/m)Σ v_r² φ′(u_r)φ′(u′_r) leaves ζ² mean(v²) xᵀx′/d: no W at all, which is
  why Θ₁ is robust to width. The next Hermite term φ′(u_r) ≈ ζ + ν u_r adds ν²(xᵀx′/d)·xᵀ(WᵀW/m)x′/d,
  whose mean is the ν²/d constant of ψ₁ and whose width correction is O(√(d/m)/d), and cross terms
  ζν(xᵀx′/d) w̄ᵀ(x + x′)/√d of size O(1/√(dm)); neither is low rank, so both are left out.

Low-rank features. With Z(x) = [q(x), ζxᵀ/√d] ∈ ℝ^{d+1} and B = [1, W] ∈ ℝ^{m×(d+1)},
(1/m)Σ_r h_r(x)h_r(x′) = Z(x) M Z(x′)ᵀ with M = BᵀB/m, so with M^{1/2} from eigh of the (d+1)×(d+1)
matrix M

    ψ₂^fw(x) = [ Z(x) M^{1/2} ; ν/√(2d) ]     (d + 2 columns, as ψ₂),

and "both" concatenates [ψ₁ ; ψ₂^fw]. :class:`earlylin.linear.trajectory.LinearTrajectory` trains it in closed
form exactly like f^lin.

:func:`width_split` measures the split for the second layer alone, where the network is exactly
kernel GD with Θ₂ = HHᵀ/m (H = φ(XWᵀ/√d) fixed, f(v₀) = 0), so the network's trajectory is itself a
closed-form linear trajectory (:func:`svd_trajectory`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from earlylin.activations import GaussianConstants, gaussian_constants, get_activation
from earlylin.errors import ConfigError, arg
from earlylin.linear.features import features, norm_feature
from earlylin.linear.trajectory import LinearTrajectory


def _psd_sqrt(M: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a batch of PSD matrices via eigh (negative round-off clipped)."""
    lam, U = torch.linalg.eigh(M)
    return (U * lam.clamp_min(0.0).sqrt().unsqueeze(-2)) @ U.transpose(-1, -2)


def finite_width_features(
    X: torch.Tensor,
    W: torch.Tensor,
    v: torch.Tensor,
    consts: GaussianConstants,
    nu: float,
    layers: str,
) -> torch.Tensor:
    """Ψ_fw of shape (K, n, p) for X (K, n, d), W (K, m, d), v (K, m); see the module docstring.

    first: √(mean v²)·ψ₁(x) (p = d + 1); second: [Z(x)M^{1/2}, ν/√(2d)] (p = d + 2); both: the two.
    """
    n, d = X.shape[-2], X.shape[-1]
    m = W.shape[-2]
    vscale = torch.sqrt(torch.mean(v * v, dim=-1)).to(X.dtype).view(*v.shape[:-1], 1, 1)
    psi1 = features(X, consts, nu, "first") * vscale
    if layers == "first":
        return psi1
    B = torch.cat([torch.ones_like(W[..., :1]), W], dim=-1).to(X.dtype)  # (K, m, d+1)
    M = B.transpose(-1, -2) @ B / m
    Z = torch.cat([norm_feature(X, consts).unsqueeze(-1), consts.zeta * X / math.sqrt(d)], dim=-1)
    const = torch.full((*X.shape[:-2], n, 1), nu / math.sqrt(2 * d), dtype=X.dtype, device=X.device)
    psi2 = torch.cat([Z @ _psd_sqrt(M), const], dim=-1)
    if layers == "second":
        return psi2
    if layers == "both":
        return torch.cat([psi1, psi2], dim=-1)
    raise ConfigError(f"{arg('layers', layers)} is unknown; valid: first, second, both")


def svd_trajectory(psi_train: torch.Tensor, y: torch.Tensor, lr: float) -> LinearTrajectory:
    """The closed-form GD trajectory of :class:`LinearTrajectory` from a thin SVD Ψ = USVᵀ instead of
    an eigh of the p×p matrix ΨᵀΨ/n — for wide features (p = m ≫ n). Eigenvalues S²/n, eigenvectors
    V (p × min(n, p)), Vᵀb = S Uᵀy/n; directions outside the row space get no gradient, so dropping
    them is exact."""
    psi = psi_train.double()
    n = psi.shape[-2]
    U, S, Vh = torch.linalg.svd(psi, full_matrices=False)
    b_eig = S * (U.transpose(-1, -2) @ y.double().unsqueeze(-1)).squeeze(-1) / n
    return LinearTrajectory((S * S / n).clamp_min(0.0), Vh.transpose(-1, -2), b_eig, lr)


def width_split(
    widths: tuple[int, ...] = (256, 1024, 4096),
    d: int = 50,
    n: int = 2000,
    n_test: int = 1000,
    activation: str = "erf",
    lr: float = 1.0,
    window_c: float = 5.0,
    seeds: tuple[int, ...] = (0, 1),
    n_steps: int = 30,
) -> list[dict[str, float]]:
    """Second layer alone: max over the early window T = c·d·log d/η of the test MSE between the
    network and f^lin (infinite width) and f^lin_fw (finite width), seed-mean, for each width.

    The network with only v trained has fixed hidden features H = φ(XWᵀ/√d) and f(v₀) = 0 (symmetric
    init), so f_t = (H/√m)(v_t − v₀) is GD from zero on the features H/√m: computed in closed form by
    :func:`svd_trajectory`, no training loop. Same data and init as :mod:`earlylin.experiment`.
    Returns rows {m, sqrt_d_over_m, mse_lin, mse_fw, mse_lin_fw}.
    """
    from earlylin.compare import early_window, mse
    from earlylin.data.synthetic import make_dataset, tr_sigma2_over_d
    from earlylin.nets.two_layer import symmetric_init

    act = get_activation(activation)
    consts = gaussian_constants(act)
    data = [make_dataset(s, d, n, n_test) for s in seeds]
    nu = consts.nu(tr_sigma2_over_d(data[0].spectrum))

    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays)).double()

    X, Xt = stack([b.x_train for b in data]), stack([b.x_test for b in data])
    y = stack([b.y_train for b in data])
    window = early_window(d, lr, window_c)
    steps = torch.unique(torch.round(torch.logspace(0, math.log10(window), n_steps)).long())
    lin = LinearTrajectory.fit(features(X, consts, nu, "second"), y, lr)
    ft_lin = lin.outputs(features(Xt, consts, nu, "second"), steps)
    rows = []
    for m in widths:
        inits = [symmetric_init(s, m, d) for s in seeds]
        W, v = stack([w for w, _ in inits]), stack([v for _, v in inits])
        H, Ht = (act.phi(A @ W.transpose(-1, -2) / math.sqrt(d)) / math.sqrt(m) for A in (X, Xt))
        ft_net = svd_trajectory(H, y, lr).outputs(Ht, steps)
        fw = LinearTrajectory.fit(finite_width_features(X, W, v, consts, nu, "second"), y, lr)
        ft_fw = fw.outputs(finite_width_features(Xt, W, v, consts, nu, "second"), steps)
        rows.append({
            "m": m,
            "sqrt_d_over_m": math.sqrt(d / m),
            "mse_lin": float(mse(ft_net, ft_lin).amax(-1).mean()),
            "mse_fw": float(mse(ft_net, ft_fw).amax(-1).mean()),
            "mse_lin_fw": float(mse(ft_fw, ft_lin).amax(-1).mean()),
        })
    return rows


if __name__ == "__main__":  # pragma: no cover - a measurement, not a test
    import sys

    for act_name in sys.argv[1:] or ["erf"]:
        print(f"activation={act_name}  (second layer, d=50, n=2000, n_test=1000, lr=1, seeds 0,1)")
        print(f"{'m':>6} {'√(d/m)':>8} {'MSE(net,lin)':>13} {'MSE(net,fw)':>12} {'MSE(fw,lin)':>12}")
        for r in width_split(activation=act_name):
            print(
                f"{r['m']:>6} {r['sqrt_d_over_m']:>8.3f} {r['mse_lin']:>13.3e} {r['mse_fw']:>12.3e}"
                f" {r['mse_lin_fw']:>12.3e}"
            )
