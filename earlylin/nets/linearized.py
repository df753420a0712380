"""The NTK-linearised two-layer network (Lee et al. 2019), trained by the same GD as the network.

J. Lee, L. Xiao, S. Schoenholz, Y. Bahri, R. Novak, J. Sohl-Dickstein, J. Pennington, *Wide Neural
Networks of Any Depth Evolve as Linear Models Under Gradient Descent*, NeurIPS 2019 (arXiv:1902.06720),
eq. (5); this is what neural-tangents' ``nt.linearize(f, params_0)`` computes. For the two-layer net of
docs/theory.md §1 with θ = (W, v) and θ₀ = (W(0), v(0)):

    f^ntk(x; θ) = f₀(x) + ∇_θ f(x; θ₀)·(θ − θ₀)
               = f₀(x) + (1/√m) Σ_r [ Δv_r φ(z_r) + v_r(0) φ′(z_r) Δw_rᵀx/√d ],
    z_r = w_r(0)ᵀx/√d,   Δw_r = w_r − w_r(0),   Δv_r = v_r − v_r(0).

It is trained on L(θ) = (1/2n) Σ_i (f^ntk(x_i; θ) − y_i)² by the same full-batch GD with the same layer
learning rates (first layer: η₂ = 0; second: η₁ = 0; both: η₁ = η₂). With r = f^ntk(X) − y and the
fixed features Z₀ = X W(0)ᵀ/√d, H₀ = φ(Z₀), G₀ = φ′(Z₀) (n × m), the gradients are those of the network
*frozen at θ₀*:

    ∇_v L = H₀ᵀ r / (n√m),      ∇_W L = diag(v(0)) · G₀ᵀ (r ⊙ X) / (n√m√d).

Because f^ntk is linear in θ, the outputs on the training points follow kernel GD with the
*empirical* NTK at initialisation (Θ₁, Θ₂ of :mod:`earlylin.ntk`) exactly:

    f_{t+1}(X) = f_t(X) − (1/n)(η₁Θ₁ + η₂Θ₂)(f_t(X) − y),

and with symmetric initialisation f₀ ≡ 0, so it is kernel regression with Θ(0) run by GD from zero.
Second layer only, the network itself is linear in v, so f^ntk and the network coincide.

Two routes to ∇_θf₀·Δθ, tested against each other: :func:`forward` (the explicit formula above) and
:func:`forward_jvp` (``torch.func.jvp`` of :func:`earlylin.nets.two_layer.forward` at θ₀ along Δθ). Neither forms
the n×P Jacobian: a step of :class:`LinearizedStep` costs the same two n·m·d matmuls as a network step
(X ΔWᵀ forward, G₀ᵀ(r ⊙ X) backward), plus the n×m products with H₀ and G₀·diag(v(0)), which are
computed once and kept (two n×m buffers per seed for both layers, one per single layer).

All tensors carry the seed axis K first: W (K, m, d), v (K, m), X (K, n, d), y (K, n).
"""

from __future__ import annotations

import math

import torch
from torch.func import jvp

from earlylin.activations import Activation
from earlylin.nets import two_layer as nets


def forward(
    act: Activation, W0: torch.Tensor, v0: torch.Tensor, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor
) -> torch.Tensor:
    """f^ntk(X; W, v) linearised at (W0, v0), by the explicit formula (module docstring). (K, n)."""
    m, d = W0.shape[-2], W0.shape[-1]
    Z0 = torch.matmul(X, W0.transpose(-1, -2)) / math.sqrt(d)
    H0 = act.phi(Z0)
    f0 = nets.readout(H0, v0)
    dZ = torch.matmul(X, (W - W0).transpose(-1, -2)) / math.sqrt(d)
    df = nets.readout(H0, v - v0) + nets.readout(act.dphi(Z0) * dZ, v0)
    return (f0 + df) / math.sqrt(m)


def forward_jvp(
    act: Activation, W0: torch.Tensor, v0: torch.Tensor, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor
) -> torch.Tensor:
    """f^ntk(X; W, v) = f(X; θ₀) + ∂_t f(X; θ₀ + tΔθ)|_{t=0} by forward-mode AD (``torch.func.jvp``)."""

    def f(Wq: torch.Tensor, vq: torch.Tensor) -> torch.Tensor:
        return nets.forward(act, Wq, vq, X)

    f0, df = jvp(f, (W0, v0), (W - W0, v - v0))
    return f0 + df


class LinearizedStep:
    """Loss, training outputs and gradients of f^ntk on a fixed batch: a ``step_fn`` for
    :func:`earlylin.experiments.train.run_gd`.

    ``step(params)`` with params = [W, v] (the linearised model's own tensors, starting from copies
    of θ₀: :meth:`init_params`) returns (loss (K,), f^ntk(X) (K, n), [∇_W L or None, ∇_v L or None]),
    the same contract as the network's step. With ``grad_v=False`` (first layer only) the Δv term is
    dropped from the training outputs and H₀ is not stored; with ``grad_W=False`` the ΔW term and G₀
    are dropped: the untrained layer must stay at θ₀ (run_gd leaves a parameter with learning rate 0
    or a None gradient untouched). :meth:`forward` evaluates the full model on any points.
    """

    def __init__(
        self,
        act: Activation,
        W0: torch.Tensor,
        v0: torch.Tensor,
        X: torch.Tensor,
        y: torch.Tensor,
        grad_W: bool,
        grad_v: bool,
    ) -> None:
        self.act, self.X, self.y = act, X, y
        self.grad_W, self.grad_v = grad_W, grad_v
        self.W0, self.v0 = W0.detach().clone(), v0.detach().clone()
        m, d = W0.shape[-2], W0.shape[-1]
        self.m, self.d = m, d
        with torch.no_grad():
            Z0 = torch.matmul(X, self.W0.transpose(-1, -2)) / math.sqrt(d)
            H0 = act.phi(Z0)
            self.f0 = nets.readout(H0, self.v0) / math.sqrt(m)
            # first-layer feature map G₀·diag(v(0)): ∂f/∂w_r = v_r(0) φ′(z_r) x/(√m√d)
            self.Gv = act.dphi(Z0) * self.v0.unsqueeze(-2) if grad_W else None
            self.H0 = H0 if grad_v else None
            self._dZ = torch.empty_like(Z0) if grad_W else None

    def init_params(self) -> list[torch.Tensor]:
        """Fresh copies [W(0), v(0)] for the linearised model (separate from the network's tensors)."""
        return [self.W0.clone(), self.v0.clone()]

    def forward(self, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """f^ntk(X; W, v) on any points X (K, n′, d), both terms included. (K, n′)."""
        return forward(self.act, self.W0, self.v0, W, v, X)

    def __call__(
        self, params: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
        W, v = params
        X, y, n, m, d = self.X, self.y, self.X.shape[-2], self.m, self.d
        inv_sqrt_m = 1.0 / math.sqrt(m)
        f = self.f0.clone()
        if self.grad_v:
            assert self.H0 is not None
            f.add_(nets.readout(self.H0, v - self.v0), alpha=inv_sqrt_m)
        if self.grad_W:
            assert self.Gv is not None and self._dZ is not None
            dZ = torch.matmul(X, ((W - self.W0) * (1.0 / math.sqrt(d))).transpose(-1, -2), out=self._dZ)
            f.add_(torch.sum(dZ.mul_(self.Gv), dim=-1), alpha=inv_sqrt_m)
        r = f - y
        loss = 0.5 * torch.mean(r * r, dim=-1)
        scale = 1.0 / (n * math.sqrt(m))
        gv = nets.backprop_readout(self.H0, r) * scale if self.grad_v else None
        gW = None
        if self.grad_W:
            rX = X * (r * (scale / math.sqrt(d))).unsqueeze(-1)
            gW = torch.matmul(rX.transpose(-1, -2), self.Gv).transpose(-1, -2)
        return loss, f, [gW, gv]
