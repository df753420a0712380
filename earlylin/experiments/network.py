"""A user's own network against the affine model fitted to its own tangent kernel (docs/theory.md §5.4).

The network g(x; θ) is a ``torch.nn.Module`` mapping inputs (n, d) to outputs (n,) or (n, 1), or a
function ``fn(params, x)`` with an ``init(seed)`` giving its parameter list. It is trained as the
doubled copy of the paper's symmetric initialisation (docs/theory.md §1, §5.4):

    f(x) = (g(x; θ_A) − g(x; θ_B)) / √2,   θ_A(0) = θ_B(0)   ⇒   f₀ ≡ 0,

by full-batch GD on (1/2n) Σ (f − y)² with autograd gradients. Seed s initialises θ: a module is
deep-copied and every submodule with ``reset_parameters()`` is re-initialised under a torch
generator seeded from (s, init stream) — a module without any keeps its given weights for every
seed; a function form calls ``init(s)``. Seeds and copies run as a loop of full-batch calls.

The linear model is the affine-plus-norm model least-squares-fitted to the off-diagonal empirical
NTK of f at initialisation on the first ``n_fit`` training points (:mod:`earlylin.linear.fitted`, fitted
on the first seed's network); its stripped version keeps the x features alone.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from earlylin import compare
from earlylin.config import DTYPES, NetworkConfig
from earlylin.data.arrays import Arrays
from earlylin.errors import ConfigError
from earlylin.experiments.pipeline import Prepared
from earlylin.fingerprint import Unhashable, callable_fingerprint, module_fingerprint
from earlylin.linear.fitted import fit_affine, fitted_features
from earlylin.ntk.empirical import empirical_ntk
from earlylin.rng import STREAM_INIT, SUBSTREAM_NETWORK

NetworkFn = Callable[[Sequence[torch.Tensor], torch.Tensor], torch.Tensor]


class Network:
    """``Network(module, data)`` or ``Network(fn, data, init=init)``, with an optional NetworkConfig."""

    family = "network"

    def __init__(self, network: torch.nn.Module | NetworkFn, data: Arrays, config: NetworkConfig | None = None,
                 *, init: Callable[[int], Sequence[Any]] | None = None) -> None:
        if not isinstance(data, Arrays):
            raise ConfigError("data must be earlylin.Arrays(x_train, y_train, x_test, y_test), "
                              f"not {type(data).__name__}")
        if isinstance(network, torch.nn.Module):
            if init is not None:
                raise ConfigError("init= is for a network given as a function; a module is initialised by its "
                                  "reset_parameters()")
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
        name = (config.name if config else None) or "custom:network"
        if name == "custom:network":
            name = f"custom:{type(network).__name__ if isinstance(network, torch.nn.Module) else network.__name__}"
        self.config = (config or NetworkConfig()).with_(d=data.d, n=data.n, n_test=data.n_test, name=name,
                                                        n_fit=min((config or NetworkConfig()).n_fit, data.n))

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
        if isinstance(self.network, torch.nn.Module):
            module = copy.deepcopy(self.network)
            with torch.random.fork_rng(devices=[]):
                state = np.random.SeedSequence([seed, STREAM_INIT, SUBSTREAM_NETWORK]).generate_state(1)
                torch.manual_seed(int(state[0]))
                for sub in module.modules():
                    if hasattr(sub, "reset_parameters"):
                        sub.reset_parameters()
            return [p.detach().clone() for _, p in module.named_parameters()]
        assert self.init is not None
        return [torch.as_tensor(np.asarray(p.detach().cpu() if isinstance(p, torch.Tensor) else p))
                for p in self.init(seed)]

    def g(self, params: Sequence[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        """g(X; θ), shape (n,), for one network's parameters."""
        if isinstance(self.network, torch.nn.Module):
            out = functional_call(self.network, dict(zip(self.names, params, strict=True)), (X,))
        else:
            out = self.network(list(params), X)
        if out.ndim == 2 and out.shape[-1] == 1:
            out = out[:, 0]
        if out.shape != (X.shape[0],):
            raise ConfigError(f"the network maps inputs {tuple(X.shape)} to outputs {tuple(out.shape)}; it must give "
                              f"({X.shape[0]},) or ({X.shape[0]}, 1)")
        return out

    def forward(self, params: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        """f(x) = (g(x; θ_A) − g(x; θ_B))/√2 for every seed: params (K, 2, *shape), X (K, n, d) → (K, n)."""
        rows = []
        for k in range(X.shape[0]):
            gA = self.g([p[k, 0] for p in params], X[k])
            gB = self.g([p[k, 1] for p in params], X[k])
            rows.append((gA - gB) / math.sqrt(2.0))
        return torch.stack(rows)

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

        first = [p[:1].detach() for p in self._initial_batch(cfg.seeds[0], device, dtype)]
        theta = empirical_ntk(lambda ps, X: self.forward(list(ps), X.unsqueeze(0))[0], first,
                              X64[0, : cfg.n_fit].to(dtype)).double()
        fit = fit_affine(theta.cpu().numpy(), a.x_train[: cfg.n_fit], np.ones(a.d))
        (psi, psi_s), (psi_t, psi_st) = (fitted_features(A, fit, np.ones(a.d)) for A in (X64, Xt64))
        comparison = compare.LinearComparison((psi, psi_t), (psi_s, psi_st), y64, yt64, cfg.lr)
        X, Xt, y = X64.to(dtype), Xt64.to(dtype), y64.to(dtype)

        def step(ps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
            with torch.enable_grad():
                f = self.forward(ps, X)
                loss = 0.5 * torch.mean((f - y) ** 2, dim=-1)
                grads = torch.autograd.grad(loss.sum(), ps, allow_unused=True)  # seeds are independent
            return loss.detach(), f.detach(), [None if g is None else g for g in grads]

        return Prepared(
            params=params,
            lrs=[cfg.lr] * len(params),
            step=step,
            test_outputs=lambda ps: self.forward(ps, Xt),
            comparison=comparison,
            lr_context=f"network {cfg.name}, fitted linear model",
            shared={"linear_model": {"used": "fitted", "fitted": fit}, "network": cfg.name},
        )

    def _initial_batch(self, seed: int, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
        """One seed's parameters as (1, 2, *shape) tensors (both copies equal)."""
        return [p.to(device=device, dtype=dtype).unsqueeze(0).unsqueeze(0).expand(1, 2, *p.shape).contiguous()
                for p in self._initial(seed)]
