"""CIFAR-10 cats vs horses (paper Fig 3): a deep FC net or CNN against its linear model.

Data: :func:`earlylin.data.cifar.load_cat_horse` (10,000 train / 2,000 test, 4×4-pooled to 8×8×3,
d = 192, standardised per coordinate, horse = +1), by default then rescaled to ‖x‖ = √d per image
(``cifar_norm="sphere"``): the theory's norm concentration, under which the norm terms vanish.
Network: :mod:`earlylin.nets.deep` (NTK parameterisation, doubled-copy symmetric initialisation so
f₀ ≡ 0). Linear model (docs/theory.md §5.4): the linearised infinite-width NTK of the same
architecture (:mod:`earlylin.ntk.linearise`)

    FC : Θ ≈ A + B·xᵀx′/d (+ norm terms),        Ψ = [√B x/√d ; g(x) ; s·ε]
    CNN: Θ ≈ A + Σ_p m_p x_pᵀx′_p/d (+ norm terms)

with Σ estimated on the training set (images are far from isotropic: Tr(Σ²)/d ≫ 1), trained by
the same GD from zero in closed form. ``linear="fitted"`` instead fits A, B and the norm terms to
the off-diagonal entries of the empirical NTK of each seed's own network at initialisation on
``n_fit`` training points (:mod:`earlylin.linear.fitted`; for the CNN, ρ keeps the derived pixel weights
m_p and only their overall scale B is fitted) and reports how far the derived and fitted constants
differ. ``ntk_model`` adds kernel GD on the exact infinite-width NTK (:mod:`earlylin.ntk.exact`),
which separates the finite-width part of the gap from what the linearisation in ρ misses.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import torch

from earlylin.activations import get_activation
from earlylin.config import CifarConfig, closed_form
from earlylin.data.cifar import CatHorse, load_cat_horse
from earlylin.data.cifar_classes import CifarClasses, load_classes
from earlylin.errors import ConfigError, arg
from earlylin.experiments import comparison as compare
from earlylin.experiments.pipeline import Prepared, check_lr, training_fields
from earlylin.linear.deep import coeff_summary, linear_features, pixel_weights
from earlylin.linear.fitted import fit_affine, fitted_features
from earlylin.linear.trajectory import kernel_features, stability_bound
from earlylin.nets import deep
from earlylin.ntk import exact
from earlylin.ntk.empirical import empirical_ntk
from earlylin.runtime.devices import DTYPES
from earlylin.runtime.fingerprint import array_fingerprint
from earlylin.training.autograd import autograd_step
from earlylin.training.optim import stability_factor


def spec_of(cfg: CifarConfig) -> deep.DeepSpec:
    outputs = 1 if cfg.classes is None else len(cfg.classes)
    return deep.DeepSpec(arch=cfg.arch, depth=cfg.depth, width=cfg.width, kernel_size=cfg.kernel_size,
                         outputs=outputs)


def ntk_inf_features(cfg: CifarConfig, x_train: np.ndarray, x_test: np.ndarray, K: int, device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel features (:func:`earlylin.linear.trajectory.kernel_features`) of the exact infinite-width NTK of the
    architecture (:func:`exact.fc_kernel` / :func:`exact.cnn_kernel`, checked against neural-tangents)."""
    if cfg.arch == "fc":
        def ntk(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
            return exact.fc_kernel(a.reshape(len(a), -1), None if b is None else b.reshape(len(b), -1),
                                   activation=cfg.activation, depth=cfg.depth)[1]
    else:
        def ntk(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
            return exact.cnn_kernel(a, b, activation=cfg.activation, depth=cfg.depth, kernel_size=cfg.kernel_size)[1]
    k_tt = torch.from_numpy(ntk(x_train, None)).to(device)
    k_st = torch.from_numpy(ntk(x_test, x_train)).to(device)
    psi, psi_t = kernel_features(k_tt, k_st)
    return psi.unsqueeze(0).expand(K, *psi.shape), psi_t.unsqueeze(0).expand(K, *psi_t.shape)


class Cifar:
    """The CIFAR experiment: ``Cifar(CifarConfig(arch="cnn", ...), data_cache_dir=..., data_dir=...)``.
    ``data_cache_dir`` is the pooled-array cache of the data loader (None: none); ``data_dir`` where the
    archive is looked for and downloaded (default: ``$EARLYLIN_DATA_DIR``, else the per-user data dir;
    :func:`earlylin.data.cifar_files.resolve_data_dir`). The data load on first use of ``data``.

    Example::

        import earlylin
        exp = earlylin.Cifar(earlylin.CifarConfig(arch="cnn", width=16, n=500, n_test=200), data_dir="cifar-data")
    """

    family = "cifar"

    def __init__(self, config: CifarConfig | None = None, *, data_cache_dir: Any = "default",
                 data_dir: Any = None) -> None:
        self.config = config or CifarConfig()
        self.data_cache_dir = data_cache_dir
        self.data_dir = data_dir

    @cached_property
    def data(self) -> CatHorse | CifarClasses:
        cfg = self.config
        kwargs = {} if self.data_cache_dir == "default" else {"cache_dir": self.data_cache_dir}
        data: CatHorse | CifarClasses
        if cfg.classes is not None:
            if cfg.download:
                raise ConfigError(f"{arg('download')} with {arg('classes')}: give the official batches or archive "
                                  "with --cifar-root DIR, or the ten-class npz with --npz FILE")
            data = load_classes(tuple(cfg.classes), npz_path=cfg.npz_path, cifar_root=cfg.cifar_root)
        else:
            data = load_cat_horse(npz_path=cfg.npz_path, cifar_root=cfg.cifar_root, download=cfg.download,
                                  data_dir=self.data_dir, **kwargs)
        if cfg.n > data.n_train or cfg.n_test > data.n_test:
            raise ConfigError(f"{arg('n', cfg.n)}, {arg('n_test', cfg.n_test)}: the data ({data.source}) hold "
                              f"{data.n_train} training and {data.n_test} test images; give at most those")
        if cfg.n < data.n_train or cfg.n_test < data.n_test:
            data = data.subsample(cfg.n, cfg.n_test, seed=0)
        if cfg.cifar_norm == "sphere":
            data = data.on_sphere()
        return data

    def identity(self) -> dict[str, Any] | str:
        d = self.data
        return {"data": array_fingerprint(d.x_train, d.y_train, d.x_test, d.y_test)}

    def prepare(self, seeds: list[int], device: torch.device, progress: bool) -> Prepared:
        cfg, data = self.config, self.data
        act = get_activation(cfg.activation)
        spec = spec_of(cfg)
        K = len(seeds)
        f64, dtype = torch.float64, DTYPES[cfg.dtype]

        def batch(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a).to(device=device, dtype=f64).unsqueeze(0).expand(K, *a.shape).contiguous()

        X64, Xt64, y64, yt64 = batch(data.x_train), batch(data.x_test), batch(data.y_train), batch(data.y_test)
        params = deep.init_params(spec, list(seeds), dtype, device)
        coeffs, feats = linear_features(cfg.arch, cfg.activation, cfg.depth, cfg.kernel_size, data.x_train)
        extra: dict[str, Any] = {"derived": coeff_summary(coeffs), "used": cfg.linear}
        seed_data: dict[int, dict[str, Any]] = {}
        if cfg.linear == "fitted":
            weights = pixel_weights(cfg.arch, cfg.d, getattr(coeffs, "m", None))
            fits, ntk_bounds = [], []
            for seed in seeds:  # each seed's affine model, fitted to its own empirical NTK at initialisation
                fit_params = deep.init_params(spec, [seed], dtype, device)
                theta = empirical_ntk(lambda ps, X: deep.forward(spec, act, ps, X.unsqueeze(0))[0],
                                      [p[:1] for p in fit_params], X64[0, : cfg.n_fit].to(dtype)).double()
                ntk_bounds.append(2.0 * cfg.n_fit / float(torch.linalg.eigvalsh(theta)[-1]))  # 2/λ_max(Θ/n_fit)
                fits.append(fit_affine(theta.cpu().numpy(), data.flat("train")[: cfg.n_fit], weights))
            check_lr(cfg.lr, torch.tensor(ntk_bounds), f"CIFAR {cfg.arch}, Θ on its first n_fit = {cfg.n_fit} "
                     "training points", what="the stability bound of the network's own empirical tangent kernel at "
                     "initialisation, 2n/λ_max(Θ)")
            extra.update(fitted=fits[0], fitted_seed=seeds[0], derived_vs_fitted_rel={
                k: abs(extra["derived"][k] - fits[0][k]) / max(abs(fits[0][k]), 1e-300) for k in ("A", "B")})
            seed_data = {s: {"fitted": fit, "ntk_stability_bound": b,
                             "derived_vs_fitted_rel": {k: abs(extra["derived"][k] - fit[k]) / max(abs(fit[k]), 1e-300)
                                                       for k in ("A", "B")}}
                         for s, fit, b in zip(seeds, fits, ntk_bounds, strict=True)}

            def feats(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                parts = [fitted_features(X[k].reshape(X.shape[1], -1), fits[k], weights) for k in range(K)]
                return torch.stack([p[0] for p in parts]), torch.stack([p[1] for p in parts])
        (psi, psi_s), (psi_t, psi_st) = feats(X64), feats(Xt64)
        context = f"CIFAR {cfg.arch}, {cfg.linear} linear model"
        bound = stability_bound(psi)
        factor = stability_factor(cfg.loss, cfg.optimizer, cfg.momentum, spec.outputs)
        if factor is not None:
            check_lr(cfg.lr, bound * factor, context)  # before the exact NTK model's n×n kernel
        psi_inf = ntk_inf_features(cfg, data.x_train, data.x_test, K, device) if cfg.ntk_model else None
        comparison = compare.LinearComparison((psi, psi_t), (psi_s, psi_st), y64, yt64, cfg.lr, psi_ntk_inf=psi_inf,
                                              bound=bound, loss=cfg.loss, iterated=not closed_form(cfg),
                                              classification=True)
        X, Xt, y = X64.to(dtype), Xt64.to(dtype), y64.to(dtype)
        n = X.shape[1]
        return Prepared(
            params=params,
            lrs=[cfg.lr] * len(params),
            step=autograd_step(lambda ps, A: deep.forward(spec, act, ps, A), X, y, cfg.loss, [True] * len(params),
                               cfg.alpha),
            test_outputs=lambda ps: deep.forward(spec, act, ps, Xt) * cfg.alpha,
            train_outputs=lambda ps: deep.forward(spec, act, ps, X) * cfg.alpha,
            comparison=comparison,
            **training_fields(cfg, n, spec.outputs),
            lr_context=context,
            shared={"data_source": data.source, "linear_model": extra},
            seed_data=seed_data,
        )
