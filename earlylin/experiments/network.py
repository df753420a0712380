"""A user's own network against the affine model fitted to its own tangent kernel (docs/theory.md §5.4).

The network g(x; θ) is a ``torch.nn.Module`` mapping inputs (n, d) — or images (n, C, H, W) — to outputs
(n,) or (n, 1), or (n, K) for targets with K columns, or a function ``fn(params, x)`` with an ``init(seed)``
giving its parameter list. It is trained as the doubled copy of the paper's symmetric initialisation
(docs/theory.md §1, §5.4), scaled by the output scale α of lazy training (``alpha``, default 1):

    f(x) = α (g(x; θ_A) − g(x; θ_B)) / √2,   θ_A(0) = θ_B(0)   ⇒   f₀ ≡ 0,

on the run's loss divided by α² (default (1/2n) Σ (f − y)²), by the run's optimizer (default full-batch GD) with
autograd gradients (docs/theory.md §3.3). Seed s initialises θ: a module is
deep-copied and every submodule with ``reset_parameters()`` is re-initialised under a torch
generator seeded from (s, init stream); with ``init=`` (a function of the seed returning the
parameters in ``named_parameters()`` order) that function gives them instead. A module whose
parameters no ``reset_parameters()`` covers would train the same network for every seed: with
several seeds it needs ``init=``. A function form always calls ``init(s)``. Seeds and copies run
as a loop of full-batch calls.

Before any work (:meth:`Network.check`) each seed's initial network is evaluated on a few training
points: an input size it cannot take, outputs of another shape, or outputs that are NaN or inf are
refused with a :class:`~earlylin.errors.ConfigError`. ``d``, ``n`` and ``n_test`` of the config come
from the data; a config that sets one of them to another value is refused.

The linear model is the affine-plus-norm model least-squares-fitted to the off-diagonal empirical
NTK of f (α = 1; for K outputs, the mean of the K outputs' own kernels) at initialisation on the first ``n_fit``
training points (:mod:`earlylin.linear.fitted`, each seed's own network, on the flattened inputs), with K output
columns; its stripped version keeps the x features alone. It is trained on the same loss (without α: f^lin is
the α-independent function-space limit) with the same optimizer, learning rate and batches — in closed form for
squared loss and full-batch GD, else step by step in the same loop (:mod:`earlylin.linear.iterated`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from earlylin.config import NetworkConfig, closed_form
from earlylin.data.arrays import Arrays
from earlylin.errors import ConfigError, arg
from earlylin.experiments import comparison as compare
from earlylin.experiments.network_linearized import ThetaLinear
from earlylin.experiments.pipeline import Prepared, check_lr, training_fields
from earlylin.linear.fitted import fit_affine, fitted_features
from earlylin.ntk.empirical import empirical_ntk
from earlylin.runtime.devices import DTYPES
from earlylin.runtime.fingerprint import Unhashable, callable_fingerprint, module_fingerprint
from earlylin.runtime.rng import STREAM_INIT, SUBSTREAM_NETWORK
from earlylin.training.autograd import autograd_step
from earlylin.training.optim import stability_factor

NetworkFn = Callable[[Sequence[torch.Tensor], torch.Tensor], torch.Tensor]


class Network:
    """Your network as an experiment: ``Network(module, data)`` or ``Network(fn, data, init=init)``, with an
    optional :class:`NetworkConfig`; what :func:`earlylin.run_network` runs.

    Example::

        import numpy as np, torch, earlylin
        x = np.random.default_rng(0).standard_normal((300, 8))
        data = earlylin.Arrays(x[:200], np.sign(x[:200, 0]), x[200:], np.sign(x[200:, 0]))
        net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        exp = earlylin.Network(net, data, earlylin.NetworkConfig(lr=0.1, steps=20, n_fit=32))
    """

    family = "network"

    def __init__(self, network: torch.nn.Module | NetworkFn, data: Arrays, config: NetworkConfig | None = None,
                 *, init: Callable[[int], Sequence[Any]] | None = None) -> None:
        if not isinstance(data, Arrays):
            raise ConfigError("data must be earlylin.Arrays(x_train, y_train, x_test, y_test), "
                              f"not {type(data).__name__}")
        if isinstance(network, torch.nn.Module):
            self.names = [name for name, _ in network.named_parameters()]
            if not self.names:
                raise ConfigError(f"the module {type(network).__name__} has no parameters to train")
        elif callable(network):
            if init is None:
                raise ConfigError("a network given as a function fn(params, x) needs init=, a function of the seed "
                                  "returning the list of initial parameter arrays")
        else:
            raise ConfigError("network must be a torch.nn.Module or a function fn(params, x), "
                              f"not {type(network).__name__}")
        self.network, self.init, self.data = network, init, data
        cfg = config or NetworkConfig()
        if not isinstance(cfg, NetworkConfig):
            raise ConfigError(f"config: a {type(cfg).__name__}; run_network takes an earlylin.NetworkConfig")
        name = cfg.name or "custom:network"
        if name == "custom:network":
            name = f"custom:{type(network).__name__ if isinstance(network, torch.nn.Module) else network.__name__}"
        n_fit = min(cfg.n_fit, data.n) if cfg.n_fit == NetworkConfig.n_fit else cfg.n_fit  # the default fits any n
        self.config = data.sized(cfg.with_(name=name, n_fit=n_fit))
        self.data = _targets(data, self.config)

    def check(self) -> None:
        """Refuse, before any work, what would train nothing useful: several seeds of a module whose parameters
        no ``reset_parameters()`` re-initialises (every seed the same network), and initial networks that
        cannot take the data's inputs, give outputs of another shape, or give NaN or inf."""
        seeds = list(self.config.seeds)
        if isinstance(self.network, torch.nn.Module) and self.init is None and len(seeds) > 1:
            fixed = _not_reset(self.network)
            if fixed:
                shown = ", ".join(fixed[:4]) + (f" and {len(fixed) - 4} more" if len(fixed) > 4 else "")
                raise ConfigError(
                    f"{arg('seeds', seeds)}: the parameters {shown} of the module {type(self.network).__name__} are "
                    "not re-initialised per seed (no reset_parameters() covers them), so every seed would train "
                    "the same network; give init=, a function of the seed returning the initial parameters in "
                    "named_parameters() order, or one seed")
        probe = torch.from_numpy(self.data.x_train[: min(8, self.data.n)]).to(DTYPES[self.config.dtype])
        for seed in seeds:
            params = [p.to(probe.dtype) for p in self._initial(seed)]
            try:
                with torch.no_grad():
                    out = self.g(params, probe)
            except ConfigError:
                raise
            except Exception as exc:  # a user's module raises what it raises (RuntimeError, TypeError, …)
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ConfigError(f"the network cannot take the data's inputs: on x_train[:{len(probe)}] of shape "
                                  f"{tuple(probe.shape)} it raised {type(exc).__name__}: {first}") from None
            if not bool(torch.isfinite(out).all()):
                raise ConfigError(f"the network's outputs at initialisation (seed {seed}, x_train[:{len(probe)}]) are "
                                  "NaN or inf, before any gradient step: check the module, not the learning rate")

    def identity(self) -> dict[str, Any] | str:
        try:
            if isinstance(self.network, torch.nn.Module):
                net = module_fingerprint(self.network)
            else:
                net = callable_fingerprint(self.network) + callable_fingerprint(self.init)
        except Unhashable as err:
            return f"the network cannot be fingerprinted ({err})"
        return {"data": self.data.fingerprint, "network": net}

    # ------------------------------------------------------------------ parameters
    def _initial(self, seed: int) -> list[torch.Tensor]:
        if self.init is not None:
            params = [torch.as_tensor(np.asarray(p.detach().cpu() if isinstance(p, torch.Tensor) else p))
                      for p in self.init(seed)]
            if isinstance(self.network, torch.nn.Module):
                want = [tuple(p.shape) for p in self.network.parameters()]
                if [tuple(p.shape) for p in params] != want:
                    raise ConfigError(f"init({seed}) gave parameters of shapes {[tuple(p.shape) for p in params]}; "
                                      f"the module's named_parameters() have {want}")
            return params
        if isinstance(self.network, torch.nn.Module):
            module = copy.deepcopy(self.network)
            with torch.random.fork_rng(devices=[]):
                state = np.random.SeedSequence([seed, STREAM_INIT, SUBSTREAM_NETWORK]).generate_state(1)
                torch.manual_seed(int(state[0]))
                for sub in module.modules():
                    if hasattr(sub, "reset_parameters"):
                        sub.reset_parameters()
            return [p.detach().clone() for _, p in module.named_parameters()]
        raise AssertionError("a network given as a function has init=")  # refused in __init__

    def g(self, params: Sequence[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        """g(X; θ), shape (n,), for one network's parameters."""
        if isinstance(self.network, torch.nn.Module):
            out = functional_call(self.network, dict(zip(self.names, params, strict=True)), (X,))
        else:
            out = self.network(list(params), X)
        K = self.data.outputs
        if K == 1 and out.ndim == 2 and out.shape[-1] == 1:
            out = out[:, 0]
        want = (X.shape[0],) if K == 1 else (X.shape[0], K)
        if out.shape != want:
            ways = f"({X.shape[0]},) or ({X.shape[0]}, 1)" if K == 1 else str(want)
            raise ConfigError(f"the network maps inputs {tuple(X.shape)} to outputs {tuple(out.shape)}; for targets "
                              f"of shape {self.data.y_train.shape[1:] or '(n,)'} it must give {ways}")
        return out

    def doubled(self, params: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        """(g(x; θ_A) − g(x; θ_B))/√2 for every seed (α = 1): params (K, 2, *shape), X (K, n, …) → (K, n[, C])."""
        rows = []
        for k in range(X.shape[0]):
            gA = self.g([p[k, 0] for p in params], X[k])
            gB = self.g([p[k, 1] for p in params], X[k])
            rows.append((gA - gB) / math.sqrt(2.0))
        return torch.stack(rows)

    def forward(self, params: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        """f(x) = α(g(x; θ_A) − g(x; θ_B))/√2 for every seed (:meth:`doubled` scaled by the output scale α)."""
        out = self.doubled(params, X)
        return out if self.config.alpha == 1.0 else self.config.alpha * out

    def _theta(self, seed: int, X: torch.Tensor) -> torch.Tensor:
        """Θ(0) of f at α = 1 on X (n_fit, …), float64; for K outputs the mean of the K outputs' kernels."""
        device, dtype = X.device, X.dtype
        first = [p[:1].detach() for p in self._initial_batch(seed, device, dtype)]
        K = self.data.outputs

        def out(ps: Sequence[torch.Tensor], x: torch.Tensor, c: int | None) -> torch.Tensor:
            f = self.doubled(list(ps), x.unsqueeze(0))[0]
            return f if c is None else f[:, c]

        if K == 1:
            return empirical_ntk(lambda ps, x: out(ps, x, None), first, X).double()
        return sum(empirical_ntk(lambda ps, x, c=c: out(ps, x, c), first, X).double() for c in range(K)) / K

    # ------------------------------------------------------------------ pipeline
    def prepare(self, seeds: list[int], device: torch.device, progress: bool) -> Prepared:
        cfg, a = self.config, self.data
        dtype, K = DTYPES[cfg.dtype], len(seeds)

        def batch(arr: np.ndarray, dt: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(arr).to(device=device, dtype=dt).unsqueeze(0).expand(K, *arr.shape).contiguous()

        X64, Xt64, y64, yt64 = (batch(arr, torch.float64) for arr in (a.x_train, a.x_test, a.y_train, a.y_test))
        inits = [self._initial(s) for s in seeds]
        params = [torch.stack([init[i] for init in inits]).unsqueeze(1).expand(K, 2, *inits[0][i].shape)
                  .to(device=device, dtype=dtype).contiguous().requires_grad_(True) for i in range(len(inits[0]))]

        fits, ntk_bounds = [], []
        for seed in seeds:  # each seed's affine model, fitted to its own empirical NTK at initialisation
            theta = self._theta(seed, X64[0, : cfg.n_fit].to(dtype))
            ntk_bounds.append(2.0 * cfg.n_fit / float(torch.linalg.eigvalsh(theta)[-1]))  # 2/λ_max(Θ/n_fit)
            fits.append(fit_affine(theta.cpu().numpy(), a.flat("train")[: cfg.n_fit], np.ones(a.d)))
        factor = stability_factor(cfg.loss, cfg.optimizer, cfg.momentum, a.outputs)
        if factor is not None:
            check_lr(cfg.lr, torch.tensor(ntk_bounds) * factor, f"network {cfg.name}, Θ on its first n_fit = "
                     f"{cfg.n_fit} training points", what="the stability bound of the network's own empirical "
                     "tangent kernel at initialisation, 2n/λ_max(Θ)" + ("" if factor == 1.0 else f" × {factor:g}"))
        (psi, psi_s), (psi_t, psi_st) = (
            tuple(torch.stack(parts) for parts in zip(*(fitted_features(A[k].reshape(A.shape[1], -1), fits[k],
                                                                        np.ones(a.d)) for k in range(K)), strict=True))
            for A in (X64, Xt64))
        comparison = compare.LinearComparison((psi, psi_t), (psi_s, psi_st), y64, yt64, cfg.lr, loss=cfg.loss,
                                              iterated=not closed_form(cfg))
        X, Xt, y = X64.to(dtype), Xt64.to(dtype), y64.to(dtype)
        theta_lin = ThetaLinear(self.g, params, X, y, cfg.loss, cfg.alpha) if cfg.ntk_lin else None

        return Prepared(
            params=params,
            lrs=[cfg.lr] * len(params),
            step=autograd_step(self.doubled, X, y, cfg.loss, [True] * len(params), cfg.alpha),
            test_outputs=lambda ps: self.forward(ps, Xt),
            train_outputs=lambda ps: self.forward(ps, X),
            comparison=comparison,
            **training_fields(cfg, a.n, a.outputs),
            trained=[] if theta_lin is None else [theta_lin],
            extra_outputs=None if theta_lin is None else (lambda ps: {"ntk_lin": theta_lin.outputs(Xt)}),
            lr_context=f"network {cfg.name}, fitted linear model",
            shared={"linear_model": {"used": "fitted", "fitted": fits[0], "fitted_seed": seeds[0]},
                    "network": cfg.name},
            seed_data={s: {"fitted": fit, "ntk_stability_bound": b} for s, fit, b in zip(seeds, fits, ntk_bounds,
                                                                                           strict=True)},
        )

    def _initial_batch(self, seed: int, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
        """One seed's parameters as (1, 2, *shape) tensors (both copies equal)."""
        return [p.to(device=device, dtype=dtype).unsqueeze(0).unsqueeze(0).expand(1, 2, *p.shape).contiguous()
                for p in self._initial(seed)]


def _not_reset(module: torch.nn.Module) -> list[str]:
    """Names of the parameters that no ``reset_parameters()`` of their module or an enclosing one re-initialises."""
    covered: set[int] = set()
    for sub in module.modules():
        if callable(getattr(sub, "reset_parameters", None)):
            covered.update(id(p) for p in sub.parameters())
    return [name for name, p in module.named_parameters() if id(p) not in covered]


def _targets(data: Arrays, cfg: NetworkConfig) -> Arrays:
    """The data with the targets the loss takes: integer labels one-hot for ``classes``; refused where the loss
    cannot take them (cross-entropy: ±1 labels for one output, rows of probabilities for K)."""
    y_train, y_test = data.y_train, data.y_test
    if cfg.classes is not None:
        for name, y in (("y_train", y_train), ("y_test", y_test)):
            if y.ndim != 1 or not np.all((y == np.round(y)) & (y >= 0) & (y < cfg.classes)):
                raise ConfigError(f"{arg('classes', cfg.classes)}: {name} must hold integer class labels (n,) in "
                                  f"[0, {cfg.classes - 1}]")
        eye = np.eye(cfg.classes)
        data = Arrays(data.x_train, eye[y_train.astype(int)], data.x_test, eye[y_test.astype(int)])
    elif cfg.loss == "cross_entropy":
        for name, y in (("y_train", y_train), ("y_test", y_test)):
            if y.ndim == 1 and not np.all(np.abs(y) == 1.0):
                raise ConfigError(f"{arg('loss', 'cross_entropy')} with one output needs {name} of ±1 labels; for "
                                  f"class labels 0 … K−1 give {arg('classes')}=K")
            if y.ndim == 2 and not (np.all(y >= 0) and np.allclose(y.sum(1), 1.0, rtol=0, atol=1e-9)):
                raise ConfigError(f"{arg('loss', 'cross_entropy')} with K outputs needs {name} rows of class "
                                  f"probabilities (≥ 0, summing to 1; one-hot for labels: {arg('classes')}=K)")
    return data
