"""Largest-magnitude eigenvalue of batches of symmetric operators: the spectral norms of the kernel bound.

The one concern here is ‖A‖_op for a symmetric, matrix-free A (:class:`earlylin.bound.operator.KernelDifference`,
Θ − ΨΨᵀ of docs/theory.md §4). Θ − ΨΨᵀ is symmetric but not PSD, so power iteration on it would stall
when its two extreme eigenvalues have similar magnitude; :func:`lanczos_extreme` runs Lanczos with full
reorthogonalisation (classical Gram–Schmidt, twice), batched over seeds and variants, and returns
the Ritz value θ of largest magnitude and its *explicit* relative residual ‖Ay − θy‖/|θ| (unit Ritz
vector y, one extra matvec). With α_j, β_j the Lanczos coefficients, T_k = tridiag(β, α, β) and
(θ, s) its eigenpair of largest |θ|, it stops when the residual estimate

    |β_k s_k| ≤ tol·|θ|

for every batch entry, or after ``max_iter`` steps (then ``converged`` is False). For a symmetric A some
eigenvalue lies within ‖Ay − θy‖ of θ, and |θ| ≤ ‖A‖ always (Ritz values lie inside the spectrum);
from a random start the extreme Ritz value converges to an extreme eigenvalue, so |θ| is
‖A‖_op to within the residual. ``method="eigsh"`` (scipy ARPACK, implicitly restarted Lanczos,
one problem at a time, :func:`eigsh_extreme`) is an independent second route.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from earlylin.bound.operator import KernelDifference
from earlylin.errors import ConfigError

__all__ = ["BREAKDOWN", "METHODS", "ExtremeEig", "Matvec", "eigsh_extreme", "extreme_eig", "lanczos_extreme"]

METHODS = ("lanczos", "eigsh")
BREAKDOWN = 1e-12  # Lanczos: β_k ≤ this × (largest |α|, β so far) counts as an invariant subspace

Matvec = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ExtremeEig:
    """Largest-magnitude eigenvalue estimates of a batch of symmetric operators.

    eigenvalue: signed Ritz value θ (*batch); residual: ‖Ay − θy‖/|θ| for the unit Ritz vector y,
    computed explicitly; iterations: Lanczos steps taken (ARPACK: matvecs of the worst problem);
    iterations_to_tol: the step at which each entry first met the tolerance (max_iter if never);
    converged: the tolerance was met.
    """

    eigenvalue: torch.Tensor
    residual: torch.Tensor
    iterations: int
    iterations_to_tol: torch.Tensor
    converged: torch.Tensor

    @property
    def norm(self) -> torch.Tensor:
        return self.eigenvalue.abs()


def _ritz(alpha: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Largest-|θ| Ritz value, its eigenvector s of T_k and the residual estimate |β_k s_k|."""
    k = alpha.shape[-1]
    T = torch.diag_embed(alpha) + torch.diag_embed(beta[..., : k - 1], 1) + torch.diag_embed(beta[..., : k - 1], -1)
    lam, vec = torch.linalg.eigh(T)
    idx = lam.abs().argmax(-1, keepdim=True)
    theta = lam.gather(-1, idx).squeeze(-1)
    s = vec.gather(-1, idx.unsqueeze(-2).expand(*vec.shape[:-1], 1)).squeeze(-1)
    est = (beta[..., k - 1] * s[..., k - 1]).abs()
    return theta, s, est


def lanczos_extreme(
    matvec: Matvec,
    batch_shape: tuple[int, ...],
    n: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    tol: float = 1e-6,
    max_iter: int = 300,
    check_every: int = 4,
    seed: int = 0,
) -> ExtremeEig:
    """Largest-magnitude eigenvalue of symmetric operators u (*batch, n) ↦ A u, by Lanczos with full
    reorthogonalisation (module docstring). Stops when every entry has |β_k s_k| ≤ tol·|θ| (checked every
    ``check_every`` steps) or after min(max_iter, n) steps. A breakdown (β_k ≈ 0: an invariant
    subspace) restarts that entry with a fresh random vector orthogonal to the basis and β_k = 0."""
    if not 0.0 < tol < 1.0:
        raise ConfigError(f"--tol {tol!r}: must be in (0, 1)")
    k_max = max(1, min(int(max_iter), n))
    gen = torch.Generator().manual_seed(seed)

    def random_unit() -> torch.Tensor:
        q = torch.randn((*batch_shape, n), generator=gen, dtype=dtype).to(device)
        return q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)

    Q = torch.empty((*batch_shape, k_max, n), dtype=dtype, device=device)
    Q[..., 0, :] = random_unit()
    alpha = torch.zeros((*batch_shape, k_max), dtype=dtype, device=device)
    beta = torch.zeros((*batch_shape, k_max), dtype=dtype, device=device)
    scale = torch.zeros(batch_shape, dtype=dtype, device=device)
    to_tol = torch.full(batch_shape, k_max, dtype=torch.long)
    met = torch.zeros(batch_shape, dtype=torch.bool)
    steps = 0
    for j in range(k_max):
        q = Q[..., j, :]
        w = matvec(q)
        alpha[..., j] = (q * w).sum(-1)
        basis = Q[..., : j + 1, :]
        for _ in range(2):  # CGS2: "twice is enough"
            w = w - ((w.unsqueeze(-2) @ basis.transpose(-1, -2)) @ basis).squeeze(-2)
        b = torch.linalg.vector_norm(w, dim=-1)
        scale = torch.maximum(scale, torch.maximum(alpha[..., j].abs(), b))
        steps = j + 1
        broke = b <= BREAKDOWN * scale.clamp_min(torch.finfo(dtype).tiny)
        beta[..., j] = torch.where(broke, torch.zeros_like(b), b)
        if steps < k_max:
            q_next = w / torch.where(broke, torch.ones_like(b), b).unsqueeze(-1)
            if bool(broke.any()):
                fresh = random_unit()
                for _ in range(2):
                    fresh = fresh - ((fresh.unsqueeze(-2) @ basis.transpose(-1, -2)) @ basis).squeeze(-2)
                fresh = fresh / torch.linalg.vector_norm(fresh, dim=-1, keepdim=True)
                q_next = torch.where(broke.unsqueeze(-1), fresh, q_next)
            Q[..., steps, :] = q_next
        if steps % check_every == 0 or steps == k_max:
            theta, _, est = (t.cpu() for t in _ritz(alpha[..., :steps].cpu(), beta[..., :steps].cpu()))
            ok = est <= tol * theta.abs()
            to_tol = torch.where(ok & ~met, torch.full_like(to_tol, steps), to_tol)
            met |= ok
            if bool(ok.all()):
                break
    theta, s, est = _ritz(alpha[..., :steps].cpu(), beta[..., :steps].cpu())
    s = s.to(device)
    y = (s.unsqueeze(-2) @ Q[..., :steps, :]).squeeze(-2)
    y = y / torch.linalg.vector_norm(y, dim=-1, keepdim=True)
    theta_d = theta.to(device)
    r = matvec(y) - theta_d.unsqueeze(-1) * y
    residual = (torch.linalg.vector_norm(r, dim=-1) / theta_d.abs()).cpu()
    return ExtremeEig(theta, residual, steps, to_tol, est <= tol * theta.abs())


def eigsh_extreme(
    matvec: Matvec,
    n: int,
    *,
    device: torch.device | str = "cpu",
    tol: float = 1e-6,
    max_iter: int = 300,
    seed: int = 0,
) -> ExtremeEig:
    """Largest-magnitude eigenvalue of one symmetric operator u (1, 1, n) ↦ A u by scipy's ARPACK
    (``eigsh(which="LM")``); an independent route to :func:`lanczos_extreme`. ``iterations`` counts
    matvecs."""
    count = 0

    def mv(x: np.ndarray) -> np.ndarray:
        nonlocal count
        count += 1
        u = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(1, 1, n)).to(device)
        return matvec(u).reshape(n).cpu().numpy()

    if n < 8:  # ARPACK needs k < ncv ≤ n: materialise the tiny matrix instead
        A = np.stack([mv(e) for e in np.eye(n)], axis=1)
        lam, vec = np.linalg.eigh(0.5 * (A + A.T))
        i = int(np.argmax(np.abs(lam)))
        vals, vecs, converged = lam[i : i + 1], vec[:, i : i + 1], True
    else:
        vals, vecs, converged = _arpack(mv, n, tol, max_iter, seed)
    if len(vals) == 0:
        nan = torch.tensor([[math.nan]], dtype=torch.float64)
        return ExtremeEig(nan, nan, count, torch.tensor([[count]]), torch.tensor([[False]]))
    theta = float(vals[0])
    y = vecs[:, 0] / np.linalg.norm(vecs[:, 0])
    residual = float(np.linalg.norm(mv(y) - theta * y) / abs(theta))
    return ExtremeEig(
        torch.tensor([[theta]], dtype=torch.float64),
        torch.tensor([[residual]], dtype=torch.float64),
        count,
        torch.tensor([[count]]),
        torch.tensor([[converged]]),
    )


def _arpack(
    mv: Callable[[np.ndarray], np.ndarray], n: int, tol: float, max_iter: int, seed: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(n)
    try:
        vals, vecs = eigsh(op, k=1, which="LM", tol=tol, v0=v0, maxiter=max_iter, ncv=min(n - 1, 24))
        converged = True
    except ArpackNoConvergence as err:
        vals, vecs, converged = err.eigenvalues, err.eigenvectors, False
    return vals, vecs, converged


def extreme_eig(
    diff: KernelDifference, *, method: str = "lanczos", tol: float = 1e-6, max_iter: int = 300, seed: int = 0
) -> ExtremeEig:
    """Largest-magnitude eigenvalue of every operator of ``diff``, shape (K, S)."""
    K, S = diff.batch_shape
    n = diff.kernel.n
    if method == "lanczos":
        X = diff.kernel.X
        return lanczos_extreme(
            diff.matvec, (K, S), n, dtype=X.dtype, device=X.device, tol=tol, max_iter=max_iter, seed=seed
        )
    if method != "eigsh":
        raise ConfigError(f"--method {method!r} is unknown; valid: {', '.join(METHODS)}")
    device = diff.kernel.X.device
    parts = [
        [eigsh_extreme(diff.select(k, s).matvec, n, device=device, tol=tol, max_iter=max_iter, seed=seed)
         for s in range(S)]
        for k in range(K)
    ]

    def stack(attr: str) -> torch.Tensor:
        return torch.stack([torch.cat([getattr(p, attr).reshape(1) for p in row]) for row in parts])

    return ExtremeEig(stack("eigenvalue"), stack("residual"), max(p.iterations for row in parts for p in row),
                      stack("iterations_to_tol"), stack("converged"))

