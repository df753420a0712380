"""The empirical tangent kernel of any network function at given parameters (docs/theory.md §1.1).

    Θ(x, x′) = Σ_θ ∂f(x)/∂θ · ∂f(x′)/∂θ

computed from torch.func Jacobians, one parameter tensor at a time (so only one n × |θ_i| Jacobian
is alive at once). ``fn(params, X)`` must return the outputs f(X) of shape (n,). Used to fit the
affine model of the deep nets and of a user's network at initialisation (:mod:`earlylin.linear.fitted`);
the tests check it against the explicit two-layer and 1D-CNN formulas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.func import jacrev

NetworkFn = Callable[[Sequence[torch.Tensor], torch.Tensor], torch.Tensor]


def empirical_ntk(fn: NetworkFn, params: Sequence[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """Θ(X, X) of shape (n, n) for ``fn`` at ``params`` (one network, no seed axis)."""
    first = [p.detach() for p in params]
    n = X.shape[0]
    theta = torch.zeros(n, n, dtype=X.dtype, device=X.device)
    for i in range(len(first)):
        def f_of(w: torch.Tensor, i: int = i) -> torch.Tensor:
            return fn([*first[:i], w, *first[i + 1:]], X)

        J = jacrev(f_of)(first[i]).reshape(n, -1)
        theta += J @ J.T
    return theta
