"""The paper's 1D CNN against its linear model (docs/theory.md §5.5).

Network and linear model: :mod:`earlylin.nets.cnn1d` and :mod:`earlylin.linear.cnn1d` (one circular
conv layer, per-position readout,
ψ₁ = [ζx/√d ; ν/√q], ψ₂ = [ζx/√d ; ν/√(2q) ; q(x_[p])/√d]). Inputs as the two-layer net, so a user
target function, data arrays or activation work here too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from earlylin.activations import gaussian_constants
from earlylin.config import Cnn1dConfig, paper_training
from earlylin.experiments import comparison as compare
from earlylin.experiments.inputs import SyntheticFamily
from earlylin.experiments.pipeline import Prepared, check_lr, training_fields
from earlylin.linear import cnn1d as cnn1d_linear
from earlylin.linear.features import ABLATIONS, ablation_is_lin
from earlylin.linear.trajectory import stability_bound
from earlylin.nets import cnn1d
from earlylin.runtime.devices import DTYPES
from earlylin.training import losses
from earlylin.training.autograd import autograd_step
from earlylin.training.optim import stability_factor


class Cnn1d(SyntheticFamily):
    """The 1D-CNN experiment: ``Cnn1d(config, target=f, data=Arrays(...), activation=φ)``, what
    :func:`earlylin.run` builds from a :class:`Cnn1dConfig` and its pieces.

    Example::

        import earlylin
        exp = earlylin.Cnn1d(earlylin.Cnn1dConfig(d=16, filter_size=4, width=16, n=200, n_test=100, steps=30))
    """

    family = "cnn1d"
    default_config = Cnn1dConfig

    def prepare(self, seeds: list[int], device: torch.device, progress: bool) -> Prepared:
        cfg, act, q = self.config, self.act, self.config.filter_size
        dtype = DTYPES[cfg.dtype]
        batch = self.inputs.batch(cfg, seeds, device)
        consts = gaussian_constants(act)
        tr = batch.tr_sigma2_over_d
        nu, nu2 = consts.nu(tr), consts.nu2(tr)  # Σ is diagonal: ν²/q is exact (docs/theory.md §5.5)
        X64, Xt64, y64, yt64 = batch.X, batch.Xt, batch.y, batch.yt
        def psi_of(A: torch.Tensor, **kw: Any) -> torch.Tensor:  # Ψ of inputs A with this run's constants
            return cnn1d_linear.cnn1d_features(A, consts, nu, cfg.layers, q, nu2=nu2, **kw)

        psi, psi_t = psi_of(X64), psi_of(Xt64)
        psi_s, psi_st = psi_of(X64, stripped=True), psi_of(Xt64, stripped=True)
        outputs = 1 if y64.ndim == 2 else int(y64.shape[-1])
        paper = paper_training(cfg) and outputs == 1  # the paper's training: full-batch GD, squared loss, one output
        losses.check_targets(cfg.loss, y64, yt64)
        bound = stability_bound(psi)
        if (factor := stability_factor(cfg.loss, cfg.optimizer, cfg.momentum, 1)) is not None:
            check_lr(cfg.lr, bound * factor, f"1D CNN d={cfg.d}, q={q}, layers={cfg.layers}")
        ablations = {f"no_{drop}": None if ablation_is_lin(consts, nu, cfg.layers, drop, nu2=nu2) else
                     (psi_of(X64, drop=drop), psi_of(Xt64, drop=drop))
                     for drop in ABLATIONS} if paper else {}  # Fig 2's ablations, as for the two-layer net
        comparison = compare.LinearComparison((psi, psi_t), (psi_s, psi_st), y64, yt64, cfg.lr,
                                              psi_ablations=ablations, bound=bound, loss=cfg.loss, iterated=not paper)

        X, Xt, y = X64.to(dtype), Xt64.to(dtype), y64.to(dtype)
        inits = [cnn1d.cnn1d_init(s, cfg.width, q, cfg.d) for s in seeds]
        W = torch.from_numpy(np.stack([w for w, _ in inits])).to(device=device, dtype=dtype)
        v = torch.from_numpy(np.stack([v for _, v in inits]) if outputs == 1 else np.stack(
            [cnn1d.cnn1d_readout(s, cfg.width, q, cfg.d, outputs) for s in seeds])).to(device=device, dtype=dtype)
        train_W, train_v = cfg.layers in ("first", "both"), cfg.layers in ("second", "both")
        step = cnn1d.Cnn1dStep(act, X, y, q, train_W, train_v) if paper else None

        def step_fn(params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list]:
            loss, f, gW, gv = step(params[0], params[1])
            return loss, f, [gW, gv]

        return Prepared(
            params=[W, v],
            lrs=[cfg.lr if train_W else 0.0, cfg.lr if train_v else 0.0],
            step=step_fn if paper else autograd_step(lambda ps, A: cnn1d.forward(act, ps[0], ps[1], A), X, y,
                                                     cfg.loss, [train_W, train_v], cfg.alpha),
            test_outputs=lambda ps: cnn1d.forward(act, ps[0], ps[1], Xt) * cfg.alpha,
            train_outputs=lambda ps: cnn1d.forward(act, ps[0], ps[1], X) * cfg.alpha,
            comparison=comparison,
            lr_context=f"1D CNN d={cfg.d}, q={q}, layers={cfg.layers}",
            shared={"constants": consts.used(act.name, batch.tr_sigma2_over_d)},
            **training_fields(cfg, X.shape[1]),
        )
