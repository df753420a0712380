"""The two-layer network against its linear models (docs/theory.md §1–§3, Fig 1 and Fig 2).

Network: :mod:`earlylin.nets.two_layer` (symmetric initialisation, f₀ ≡ 0). Compared with f^lin
(:func:`earlylin.linear.features.features`), its stripped version (x only), the finite-width model built from
the network's own initial weights (:mod:`earlylin.linear.finite_width`) and, with ``ntk_lin``, the
θ-linearised network trained alongside (:mod:`earlylin.nets.linearized`). User pieces: a target function
or data arrays (:class:`~earlylin.experiments.inputs.SyntheticInputs`) and an activation callable
(:func:`earlylin.activations.get_activation`, Gaussian constants by quadrature).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from earlylin.activations import gaussian_constants
from earlylin.config import TwoLayerConfig, paper_training
from earlylin.errors import ConfigError, arg
from earlylin.experiments import comparison as compare
from earlylin.experiments.inputs import SyntheticFamily
from earlylin.experiments.pipeline import Prepared, check_lr, training_fields
from earlylin.linear.features import ABLATIONS, ablation_is_lin, features
from earlylin.linear.finite_width import finite_width_features
from earlylin.linear.trajectory import stability_bound
from earlylin.nets import linearized
from earlylin.nets import two_layer as nets
from earlylin.runtime.devices import DTYPES
from earlylin.training import losses
from earlylin.training.autograd import autograd_step
from earlylin.training.optim import stability_factor


class TwoLayer(SyntheticFamily):
    """The two-layer experiment: ``TwoLayer(config, target=f, data=Arrays(...), activation=φ)``, what
    :func:`earlylin.run` builds from a :class:`TwoLayerConfig` and its pieces (give it one or the other).

    Example::

        import numpy as np, earlylin
        exp = earlylin.TwoLayer(earlylin.TwoLayerConfig(d=10, n=200, n_test=100, width=64, steps=30),
                                target=lambda x: np.tanh(x[:, 0]))
        earlylin.run(exp).summary["escape_step"]
    """

    family = "two_layer"
    default_config = TwoLayerConfig

    @property
    def lr_context(self) -> str:
        return f"d={self.config.d}, layers={self.config.layers}"

    def prepare(self, seeds: list[int], device: torch.device, progress: bool) -> Prepared:
        cfg, act = self.config, self.act
        dtype = DTYPES[cfg.dtype]
        batch = self.inputs.batch(cfg, seeds, device)
        consts = gaussian_constants(act)
        nu, nu2 = consts.nu(batch.tr_sigma2_over_d), consts.nu2(batch.tr_sigma2_over_d)
        X64, Xt64, y64, yt64 = batch.X, batch.Xt, batch.y, batch.yt
        outputs = 1 if y64.ndim == 2 else int(y64.shape[-1])
        paper = paper_training(cfg) and outputs == 1  # the paper's training: full-batch GD, squared loss, one output
        if outputs > 1 and cfg.ntk_lin:
            raise ConfigError(f"{arg('ntk_lin')} with targets of {outputs} columns: the θ-linearised two-layer net "
                              "has one output")
        losses.check_targets(cfg.loss, y64, yt64)

        def psi_of(A: torch.Tensor, **kw: Any) -> torch.Tensor:  # Ψ of inputs A with this run's constants
            return features(A, consts, nu, cfg.layers, nu2=nu2, **kw)

        psi, psi_t = psi_of(X64), psi_of(Xt64)
        bound = stability_bound(psi)
        if (factor := stability_factor(cfg.loss, cfg.optimizer, cfg.momentum, 1)) is not None:
            check_lr(cfg.lr, bound * factor, self.lr_context)  # before the costly parts of the set-up
        psi_s, psi_st = psi_of(X64, stripped=True), psi_of(Xt64, stripped=True)
        inits = [nets.symmetric_init(s, cfg.width, cfg.d) for s in seeds]
        W64 = torch.from_numpy(np.stack([w for w, _ in inits])).to(device=device, dtype=torch.float64)
        v64 = torch.from_numpy(np.stack([v for _, v in inits]) if outputs == 1 else np.stack(
            [nets.symmetric_readout(s, cfg.width, cfg.d, outputs) for s in seeds])).to(device=device,
                                                                                    dtype=torch.float64)
        psi_fw = tuple(finite_width_features(A, W64, v64, consts, nu, cfg.layers, nu2=nu2) for A in (X64, Xt64)) \
            if paper else None
        ablations = {f"no_{drop}": None if ablation_is_lin(consts, nu, cfg.layers, drop, nu2=nu2) else
                     (psi_of(X64, drop=drop), psi_of(Xt64, drop=drop)) for drop in ABLATIONS} if paper else {}
        comparison = compare.LinearComparison((psi, psi_t), (psi_s, psi_st), y64, yt64, cfg.lr, psi_fw=psi_fw,
                                              psi_ablations=ablations, bound=bound, loss=cfg.loss, iterated=not paper)

        X, Xt, y = X64.to(dtype), Xt64.to(dtype), y64.to(dtype)
        W, v = W64.to(dtype), v64.to(dtype)
        train_W = cfg.layers in ("first", "both")
        train_v = cfg.layers in ("second", "both")
        H_fixed = act.phi(X @ W.transpose(-1, -2) / math.sqrt(cfg.d)) if not train_W else None
        net_step = nets.make_step(cfg.step, act, X, y, train_W, train_v) if paper else None  # reference, fast, fused
        # the fast step's test outputs too are computed on single-threaded workers (bits free of the threads)
        test_forward = nets.forward_rows if nets.resolve_step(cfg.step, device) == "fast" else nets.forward
        # the θ-linearised network (Lee et al. 2019) trains its own copy of θ alongside; the network's
        # loss alone drives the divergence checks. For the second layer alone it equals the network.
        ntk_step = linearized.LinearizedStep(act, W, v, X, y, train_W, train_v) if cfg.ntk_lin else None

        def net_step_fn(params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list]:
            Wp, vp = params
            if H_fixed is None:
                loss, f, gW, gv = net_step(Wp, vp)
                return loss, f, [gW, gv]
            # second layer only: the hidden features never change, so reuse them
            f = nets.readout(H_fixed, vp) / math.sqrt(cfg.width)
            r = f - y
            gv = nets.backprop_readout(H_fixed, r) / (cfg.n * math.sqrt(cfg.width))
            return 0.5 * torch.mean(r * r, -1), f, [None, gv]

        def step_fn(params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list]:
            loss, f, grads = net_step_fn(params[:2])
            if ntk_step is not None:
                grads = [*grads, *ntk_step(params[2:])[2]]
            return loss, f, grads

        def extra_outputs(params: list[torch.Tensor]) -> dict[str, torch.Tensor]:  # test_mse_ntk_lin, test_ntk_lin
            return {"ntk_lin": ntk_step.forward(params[2], params[3], Xt)} if ntk_step is not None else {}

        lrs = [cfg.lr if train_W else 0.0, cfg.lr if train_v else 0.0]
        params = [W, v, *ntk_step.init_params()] if ntk_step is not None else [W, v]
        return Prepared(
            params=params,
            lrs=lrs * (len(params) // 2),
            step=step_fn if paper else autograd_step(lambda ps, A: nets.forward(act, ps[0], ps[1], A), X, y, cfg.loss,
                                                     [train_W, train_v], cfg.alpha),
            test_outputs=lambda ps: (test_forward if outputs == 1 else nets.forward)(act, ps[0], ps[1], Xt) * cfg.alpha,
            train_outputs=lambda ps: nets.forward(act, ps[0], ps[1], X) * cfg.alpha,
            comparison=comparison,
            lr_context=self.lr_context,
            shared={"constants": consts.used(act.name, batch.tr_sigma2_over_d),
                    "net_step": (nets.step_info(nets.resolve_step(cfg.step, device),
                                                **nets.fast_choices(net_step, cfg.width))
                                 if paper
                                 else {"impl": "autograd", "matmul_precision": "ieee", "fused": "false"})},
            extra_outputs=extra_outputs,
            **training_fields(cfg, X.shape[1]),
        )

