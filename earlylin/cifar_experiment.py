"""CIFAR-10 cats vs horses (paper Fig 3): a deep FC net or CNN against its linear model.

Data: :func:`earlylin.data.cifar.load_cat_horse` (10,000 train / 2,000 test, 4×4-pooled to 8×8×3,
d = 192, standardised per coordinate, horse = +1), by default then rescaled to ‖x‖ = √d per image
(``cifar_norm="sphere"``): the theory's norm concentration, under which the norm terms below vanish.
Network: :mod:`earlylin.deep` (NTK
parameterisation, doubled-copy symmetric initialisation so f₀ ≡ 0). Linear model: the
linearised infinite-width NTK of the same architecture, from :mod:`earlylin.kernels`

    FC : Θ ≈ A + B·xᵀx′/d (+ norm terms),        Ψ = [√B x/√d ; g(x) ; s·ε]
    CNN: Θ ≈ A + Σ_p m_p x_pᵀx′_p/d (+ norm terms)

with Σ estimated on the training set (images are far from isotropic: Tr(Σ²)/d ≫ 1), trained by
the same GD from zero in closed form. ``linear="fitted"`` instead fits A, B and the norm terms by
least squares to the off-diagonal entries of the empirical NTK of the actual network at
initialisation on ``n_fit`` training points (:func:`fit_affine`; for the CNN, ρ keeps the derived
pixel weights m_p and only their overall scale B is fitted) and reports how far the derived and
fitted constants differ. On pooled CIFAR the inputs are far from orthogonal (|ρ| reaches ~1), so
the tangent at ρ = 0 (derived) and the least-squares secant (fitted) can differ substantially for
ReLU, whose kernel is convex in ρ.

The comparison (losses, MSE, relative MSE, the V_lin / V_lin⊥ split of the test residual, escape
step) is the same as for the two-layer runs (:class:`earlylin.compare.LinearComparison`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.func import jacrev

from earlylin import compare, deep, kernels
from earlylin.activations import get_activation
from earlylin.config import DEVICES, DTYPES, RunControls, resolve_device, set_exact_fp32
from earlylin.data.cifar import load_cat_horse
from earlylin.errors import ConfigError
from earlylin.experiment import check_lr, summarise
from earlylin.records import Cache
from earlylin.train import record_schedule, run_gd

CIFAR_ACTIVATIONS = ("erf", "relu")
LINEAR_KINDS = ("derived", "fitted")
CIFAR_NORMS = ("coordinate", "sphere")


@dataclass(frozen=True)
class CifarConfig(RunControls):
    """One CIFAR run. Defaults: the full 10k/2k set on the sphere, erf, width 512 (FC units / CNN
    channels), η = 1. ReLU on per-coordinate inputs is where the linear model fails (README)."""

    arch: str = "fc"
    depth: int = 4
    width: int = 512
    kernel_size: int = 3
    activation: str = "erf"
    lr: float = 1.0
    steps: int = 10_000
    n: int = 10_000
    n_test: int = 2_000
    seeds: tuple[int, ...] = (0,)
    linear: str = "derived"
    n_fit: int = 256
    ntk_model: bool = False  # also compare with kernel GD on the exact infinite-width NTK (n×n)
    cifar_norm: str = "sphere"  # each standardised image rescaled to ‖x‖ = √d; "coordinate": not rescaled
    npz_path: str | None = None
    cifar_root: str | None = None
    download: bool = False

    @property
    def d(self) -> int:
        return 192

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seeds"] = list(self.seeds)
        out["d"] = self.d
        return out

    def with_(self, **changes: Any) -> CifarConfig:
        return replace(self, **changes)

    def validate(self) -> CifarConfig:
        checks = [
            ("--arch", self.arch in deep.ARCHS, f"one of {', '.join(deep.ARCHS)}"),
            ("--depth", isinstance(self.depth, int) and 1 <= self.depth <= 16, "an integer in [1, 16]"),
            ("--width", isinstance(self.width, int) and 1 <= self.width <= 65536, "an integer in [1, 65536]"),
            ("--filter", self.kernel_size in (1, 3, 5, 7), "one of 1, 3, 5, 7"),
            ("--activation", self.activation in CIFAR_ACTIVATIONS, f"one of {', '.join(CIFAR_ACTIVATIONS)}"),
            ("--lr", isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0, "a number > 0"),
            ("--steps", isinstance(self.steps, int) and self.steps >= 1, "an integer ≥ 1"),
            ("--n", isinstance(self.n, int) and 2 <= self.n <= 10_000, "an integer in [2, 10000]"),
            ("--n-test", isinstance(self.n_test, int) and 2 <= self.n_test <= 2_000, "an integer in [2, 2000]"),
            ("--linear", self.linear in LINEAR_KINDS, f"one of {', '.join(LINEAR_KINDS)}"),
            ("--cifar-norm", self.cifar_norm in CIFAR_NORMS, f"one of {', '.join(CIFAR_NORMS)}"),
            ("--n-fit", self.linear != "fitted" or (isinstance(self.n_fit, int) and 8 <= self.n_fit <= self.n),
             f"an integer in [8, {self.n}] with --linear fitted"),
            ("--seeds", len(self.seeds) > 0 and len(set(self.seeds)) == len(self.seeds)
             and all(isinstance(s, int) and s >= 0 for s in self.seeds), "distinct integers ≥ 0"),
            ("--escape-factor", self.escape_factor > 1, "a number > 1"),
            ("--dtype", self.dtype in DTYPES, f"one of {', '.join(DTYPES)}"),
            ("--device", self.device in DEVICES, f"one of {', '.join(DEVICES)}"),
        ]
        for flag, ok, valid in checks:
            if not ok:
                value = {"--filter": self.kernel_size, "--n-fit": self.n_fit}.get(flag, getattr(
                    self, flag[2:].replace("-", "_"), None))
                raise ConfigError(f"{flag} {value!r}: must be {valid}")
        return self


# CPU smoke size: a CNN layer costs n·H·W·C²·k² per copy, so the CNN gets fewer channels
QUICK = {"n": 500, "n_test": 500, "steps": 300}
QUICK_WIDTH = {"fc": 64, "cnn": 16}


def spec_of(cfg: CifarConfig) -> deep.DeepSpec:
    return deep.DeepSpec(arch=cfg.arch, depth=cfg.depth, width=cfg.width, kernel_size=cfg.kernel_size)


def linear_features(cfg: CifarConfig, x_train: np.ndarray) -> tuple[Any, Any]:
    """Derived coefficients and a map X (…, n, 3, 8, 8) → (Ψ, Ψ_stripped), with Σ from the training set."""
    flat = x_train.reshape(x_train.shape[0], -1)
    cov = flat.T @ flat / flat.shape[0]
    d = flat.shape[1]
    if cfg.arch == "fc":
        coeffs = kernels.fc_linear_coeffs(cfg.activation, cfg.depth, d, float(np.sum(cov * cov) / d))

        def feats(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            psi = kernels.deep_features(X.reshape(*X.shape[:-3], d), coeffs)
            return psi, psi[..., :d]
    else:
        coeffs = kernels.cnn_linear_coeffs(cfg.activation, cfg.depth, (3, 8, 8), cfg.kernel_size, input_cov=cov)

        def feats(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            psi = kernels.cnn_features(X, coeffs)
            return psi, psi[..., :d]
    return coeffs, feats


def empirical_ntk(spec: deep.DeepSpec, act: Any, params: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """Θ(0) on X (n, 3, 8, 8) of the first seed's network, by torch.func Jacobians, one layer at a time."""
    first = [p[:1].detach() for p in params]
    n = X.shape[0]
    theta = torch.zeros(n, n, dtype=X.dtype, device=X.device)
    for i in range(len(first)):
        def f_of(w: torch.Tensor, i: int = i) -> torch.Tensor:
            ps = [*first[:i], w, *first[i + 1:]]
            return deep.forward(spec, act, ps, X.unsqueeze(0))[0]

        J = jacrev(f_of)(first[i]).reshape(n, -1)
        theta += J @ J.T
    return theta


def run_cifar(cfg: CifarConfig, cache: Cache | None = None, progress: bool = False) -> dict[str, Any]:
    """Train ``cfg.seeds`` of the CIFAR net against its linear model; plain-data result.

    Each seed's result is cached on its own (key: the config without the seed list, the seed, the
    device and — for ``linear="fitted"``, whose model is fitted to the NTK of the first seed's network —
    that first seed); the missing seeds train as one batch."""
    cfg.validate()
    device = resolve_device(cfg.device)
    set_exact_fp32()
    cache = cache or Cache(None)
    base = {k: v for k, v in cfg.as_dict().items() if k != "seeds"}
    fit_seed = cfg.seeds[0] if cfg.linear == "fitted" else None

    def payload(seed: int) -> dict[str, Any]:
        return {**base, "seed": seed, "fit_seed": fit_seed, "device": device.type, "cache": "cifar-seed/2"}

    hits = {s: cache.load(payload(s)) for s in cfg.seeds}
    missing = tuple(s for s in cfg.seeds if hits[s] is None)
    start = time.perf_counter()
    shared: dict[str, Any] = {}
    if missing:
        trained = _train_cifar(cfg.with_(seeds=missing), fit_seed, device, progress)
        shared = {"data_source": trained["data_source"], "linear_model": trained["linear_model"]}
        for s in missing:
            hits[s] = {**shared, "metrics": trained["per_seed"][s]}
            if trained["per_seed"][s]["diverged_at"] is None:
                cache.store(payload(s), hits[s])
    wall = time.perf_counter() - start
    first = next(h for h in hits.values() if h is not None)
    result: dict[str, Any] = {
        "config": cfg.as_dict(),
        "device": str(device),
        "data_source": first["data_source"],
        "linear_model": first["linear_model"],
        "per_seed": {str(s): {**hits[s]["metrics"], "cached": s not in missing} for s in cfg.seeds},
    }
    result["summary"] = summarise(result, wall)
    return {**result, "cached": not missing}


def _train_cifar(cfg: CifarConfig, fit_seed: int | None, device: torch.device, progress: bool) -> dict[str, Any]:
    """Train every seed of ``cfg`` as one batch; the fitted linear model comes from ``fit_seed``'s network."""
    data = load_cat_horse(npz_path=cfg.npz_path, cifar_root=cfg.cifar_root, download=cfg.download)
    if cfg.n < data.n_train or cfg.n_test < data.n_test:
        data = data.subsample(cfg.n, cfg.n_test, seed=0)
    if cfg.cifar_norm == "sphere":
        data = data.on_sphere()
    act = get_activation(cfg.activation)
    spec = spec_of(cfg)
    K = len(cfg.seeds)
    f64, dtype = torch.float64, DTYPES[cfg.dtype]

    def batch(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(device=device, dtype=f64).unsqueeze(0).expand(K, *a.shape).contiguous()

    X64, Xt64, y64, yt64 = batch(data.x_train), batch(data.x_test), batch(data.y_train), batch(data.y_test)
    params = deep.init_params(spec, list(cfg.seeds), dtype, device)
    coeffs, feats = linear_features(cfg, data.x_train)
    extra: dict[str, Any] = {"derived": _coeff_summary(coeffs), "used": cfg.linear}
    if cfg.linear == "fitted":
        fit_params = deep.init_params(spec, [fit_seed if fit_seed is not None else cfg.seeds[0]], dtype, device)
        theta = empirical_ntk(spec, act, fit_params, X64[0, : cfg.n_fit].to(dtype)).double()
        weights = pixel_weights(cfg, coeffs)
        fit = fit_affine(theta.cpu().numpy(), data.flat("train")[: cfg.n_fit], weights)
        extra["fitted"] = fit
        extra["derived_vs_fitted_rel"] = {
            k: abs(extra["derived"][k] - fit[k]) / max(abs(fit[k]), 1e-300) for k in ("A", "B")
        }
        feats = partial(fitted_features, fit=fit, w=weights)
    (psi, psi_s), (psi_t, psi_st) = feats(X64), feats(Xt64)
    psi_inf = ntk_inf_features(cfg, data.x_train, data.x_test, K, device) if cfg.ntk_model else None
    comparison = compare.LinearComparison((psi, psi_t), (psi_s, psi_st), y64, yt64, cfg.lr, psi_ntk_inf=psi_inf)
    check_lr(cfg.lr, comparison.bound, f"CIFAR {cfg.arch}, {cfg.linear} linear model")
    X, Xt, y = X64.to(dtype), Xt64.to(dtype), y64.to(dtype)
    window = compare.early_window(cfg.d, cfg.lr, cfg.window_c)
    steps = record_schedule(cfg.steps, cfg.n_log, extra=[window])
    rows: list[dict[str, torch.Tensor]] = []

    def on_record(t: int, f_train: torch.Tensor, ps: list[torch.Tensor]) -> None:
        with torch.no_grad():
            rows.append(comparison.row(t, f_train, deep.forward(spec, act, ps, Xt)))

    start = time.perf_counter()
    diverged = run_gd(deep.make_step(spec, act, X, y), params, [cfg.lr] * len(params), cfg.steps, steps,
                      on_record, list(cfg.seeds), progress)
    wall = time.perf_counter() - start
    per_seed = comparison.per_seed(rows, steps, list(cfg.seeds), diverged, wall)
    return {"data_source": data.source, "linear_model": extra, "per_seed": per_seed}


def ntk_inf_features(cfg: CifarConfig, x_train: np.ndarray, x_test: np.ndarray, K: int, device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel features (:func:`earlylin.linear.kernel_features`) of the exact infinite-width NTK of the
    architecture (:func:`kernels.fc_kernel` / :func:`kernels.cnn_kernel`, the recursion checked against
    neural-tangents): its GD model separates the finite-width part of the net-to-linear gap from the
    part that the linearisation in ρ misses (pooled CIFAR inputs are far from orthogonal)."""
    from earlylin.linear import kernel_features

    if cfg.arch == "fc":
        def ntk(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
            return kernels.fc_kernel(a.reshape(len(a), -1), None if b is None else b.reshape(len(b), -1),
                                     activation=cfg.activation, depth=cfg.depth)[1]
    else:
        def ntk(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
            return kernels.cnn_kernel(a, b, activation=cfg.activation, depth=cfg.depth,
                                      kernel_size=cfg.kernel_size)[1]
    k_tt = torch.from_numpy(ntk(x_train, None)).to(device)
    k_st = torch.from_numpy(ntk(x_test, x_train)).to(device)
    psi, psi_t = kernel_features(k_tt, k_st)
    return psi.unsqueeze(0).expand(K, *psi.shape), psi_t.unsqueeze(0).expand(K, *psi_t.shape)


def pixel_weights(cfg: CifarConfig, coeffs: Any) -> np.ndarray:
    """Per-coordinate weights w of ρ_w = xᵀdiag(w)x′/d: 1 for FC; m_p/mean(m) for the CNN (C, H, W order)."""
    if cfg.arch == "fc":
        return np.ones(192)
    m = np.asarray(coeffs.m, dtype=np.float64)
    return np.tile(m / m.mean(), 3)


def fit_affine(theta: np.ndarray, x: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """Least squares of the off-diagonal Θ_ij on [1, ρ_w, ε_i+ε_j, (ε_i²+ε_j²)/2, ε_iε_j],
    ρ_w = x_iᵀdiag(w)x_j/d, ε = ‖x‖²/d − 1; returns A, B, C, D, E of that affine-plus-norm model."""
    n, d = x.shape
    iu, ju = np.triu_indices(n, 1)
    rho = ((x * w) @ x.T / d)[iu, ju]
    eps = np.sum(x * x, axis=1) / d - 1.0
    ei, ej = eps[iu], eps[ju]
    design = np.stack([np.ones_like(rho), rho, ei + ej, 0.5 * (ei**2 + ej**2), ei * ej], axis=1)
    coef, *_ = np.linalg.lstsq(design, theta[iu, ju], rcond=None)
    return dict(zip("ABCDE", (float(c) for c in coef), strict=True))


def fitted_features(X: torch.Tensor, fit: dict[str, float], w: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(Ψ, Ψ_stripped) of the fitted model: [√B (x⊙√w)/√d ; norm columns of :func:`kernels.deep_features`]."""
    flat = X.reshape(*X.shape[:-3], -1)
    d = flat.shape[-1]
    coeffs = kernels.FCLinearCoeffs(A=fit["A"], B=fit["B"], C=fit["C"], D=fit["D"], E=fit["E"])
    xpart = math.sqrt(max(fit["B"], 0.0)) * flat * torch.as_tensor(np.sqrt(w), dtype=X.dtype, device=X.device)
    xpart = xpart / math.sqrt(d)
    norm_cols = kernels.deep_features(flat, coeffs)[..., d:]
    return torch.cat([xpart, norm_cols], dim=-1), xpart


def _coeff_summary(coeffs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"A": float(coeffs.A)}
    if hasattr(coeffs, "B"):
        out.update(B=float(coeffs.B), C=float(coeffs.C), D=float(coeffs.D), E=float(coeffs.E))
    else:  # CNN: B is the mean of the per-pixel weights m_p (Θ_lin = Σ_p m_p x_pᵀx′_p/d)
        out.update(B=float(np.mean(coeffs.m)), m=np.asarray(coeffs.m).tolist())
    return out
