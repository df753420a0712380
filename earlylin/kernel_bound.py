"""The kernel bound of THEORY §4, measured: ‖Θ(0) − Θ^lin‖_op against ‖Θ^lin‖_op, matrix-free.

The proof's key step bounds ‖Θ(0) − Θ^lin‖_op ≲ n/d^{1+α} (n, m ≳ d^{1+α}), while ‖Θ^lin‖_op ≍ n/d, so
the ratio ‖Θ(0) − Θ^lin‖/‖Θ^lin‖ should fall like d^{−α}. This module measures both norms for the
two-layer net at its symmetric initialisation, per block (THEORY §1, §3):

    first :  Θ₁ = (XXᵀ/d) ⊙ (Φ′ D_v² Φ′ᵀ/m)   vs  Ψ₁Ψ₁ᵀ = ζ²XXᵀ/d + (ν²/d)11ᵀ
    second:  Θ₂ = ΦΦᵀ/m                       vs  Ψ₂Ψ₂ᵀ = ζ²XXᵀ/d + (ν²/2d)11ᵀ + qqᵀ
    both  :  Θ₁ + Θ₂                           vs  ΨΨᵀ (Ψ = [Ψ₁, Ψ₂])

with Φ = φ(XWᵀ/√d), Φ′ = φ′(XWᵀ/√d) (n×m) and D_v = diag(v). No n×n matrix is ever formed
(n = 20,000 fits in memory); every product is a batched matmul, chunked over neurons r:

    Θ₁u = (1/(md)) Σ_r v_r² φ′_r ⊙ X Xᵀ(φ′_r ⊙ u)
        = (1/(md)) [(X Mᵀ) ⊙ Φ′] 1,   M = D_v² Φ′ᵀ (u ⊙ X)   (m×d; the Jacobian form J(Jᵀu))
    Θ₂u = Φ(Φᵀu)/m,        ΨΨᵀu = Ψ(Ψᵀu).

Under the symmetric initialisation neuron r + m/2 repeats neuron r with v → −v, so both blocks are
exactly the same sums over the first m/2 neurons with m → m/2; :func:`mirror_half` detects this and
halves the work. Diagonals are exact and cheap:

    diag Θ₁ = (‖x_i‖²/d) · (Φ′² v²)_i / m,   diag Θ₂ = (Φ² 1)_i / m,   diag ΨΨᵀ = ‖ψ(x_i)‖².

Error sources (THEORY §4) are separated as far as is cheap: the diagonal ("memorisation") mismatch
diag(Θ − ΨΨᵀ) is O(1) per entry, and its operator norm is just max_i |·|; the off-diagonal part
offdiag(Θ − ΨΨᵀ) = (Θ − ΨΨᵀ) − diag(Θ − ΨΨᵀ) gets its own Lanczos run. (Finite-width error, ≈ 2√(d/m)
relative for Θ₂, shows up as the m-dependence of the fitted exponents.)

Spectral norm. Θ − ΨΨᵀ is symmetric but not PSD, so power iteration on it would stall when its two
extreme eigenvalues have similar magnitude; :func:`lanczos_extreme` runs Lanczos with full
reorthogonalisation (classical Gram–Schmidt, twice), batched over seeds and variants, and returns
the Ritz value θ of largest magnitude and its *explicit* relative residual ‖Ay − θy‖/|θ| (unit Ritz
vector y, one extra matvec). It stops when the Lanczos residual estimate |β_k s_k| ≤ tol·|θ| for
every batch entry, or after ``max_iter`` steps (then ``converged`` is False). For a symmetric A some
eigenvalue lies within ‖Ay − θy‖ of θ, and |θ| ≤ ‖A‖ always (Ritz values lie inside the spectrum);
from a random start the extreme Ritz value converges to an extreme eigenvalue, so |θ| is
‖A‖_op to within the residual. ``method="eigsh"`` (scipy ARPACK, implicitly restarted Lanczos,
one problem at a time) is an independent second route. ‖ΨΨᵀ‖ = λ_max(ΨᵀΨ) is exact (p×p, p ≤ 2d + 3).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from earlylin.activations import Activation, GaussianConstants
from earlylin.errors import ConfigError
from earlylin.linear import features
from earlylin.nets import readout

BLOCKS = ("first", "second", "both")
VARIANTS = ("full", "offdiag")
METHODS = ("lanczos", "eigsh")
CHUNK_ELEMENTS = 2**23  # float64 elements per temporary (K, n, chunk, S = 2) buffer: 64 MB
CACHE_ELEMENTS = 2**26  # Φ and Φ′ are kept across matvecs when they fit in this many elements (512 MB)
EXPONENT_COLUMNS = ("d", "n", "m")
TIED_LOG_RMS = 0.05  # fit_exponents: a log column within this RMS of the span of earlier ones is "tied"
BREAKDOWN = 1e-12  # Lanczos: β_k ≤ this × (largest |α|, β so far) counts as an invariant subspace

Matvec = Callable[[torch.Tensor], torch.Tensor]


def mirror_half(W: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(W, v) → (first half of W, first half of v, True) when neuron r + m/2 repeats neuron r up to the
    sign of v (the symmetric initialisation), else (W, v, False). Θ₁ and Θ₂ are averages over neurons
    of terms that depend on v_r only through v_r², so the halves give the same kernels exactly."""
    m = W.shape[-2]
    if m % 2 or m < 2:
        return W, v, False
    h = m // 2
    same_w = torch.equal(W[..., :h, :], W[..., h:, :])
    same_v2 = torch.equal(v[..., :h] * v[..., :h], v[..., h:] * v[..., h:])
    if same_w and same_v2:
        return W[..., :h, :], v[..., :h], True
    return W, v, False


class TangentKernel:
    """Matrix-free Θ₁, Θ₂ of K two-layer networks (W (K, m, d), v (K, m)) on inputs X (K, n, d).

    ``matvec(u, block)`` takes u of shape (K, S, n) — S vectors per network — and returns Θ_block u
    of the same shape, with Θ_both = Θ₁ + Θ₂ (module docstring). Nothing n×n is formed: work goes in
    chunks of ``chunk`` neurons, and Φ, Φ′ (K, n, m) are cached across calls when they fit in
    ``cache_elements`` float64 entries (else recomputed per chunk from XWᵀ/√d).
    """

    def __init__(
        self,
        act: Activation,
        X: torch.Tensor,
        W: torch.Tensor,
        v: torch.Tensor,
        *,
        chunk: int | None = None,
        cache_elements: int = CACHE_ELEMENTS,
        use_mirror: bool = True,
    ) -> None:
        if X.dim() != 3 or W.dim() != 3 or v.dim() != 2:
            raise ValueError("expected X (K, n, d), W (K, m, d), v (K, m)")
        self.act = act
        self.m_full = W.shape[-2]
        if use_mirror:
            W, v, self.mirrored = mirror_half(W, v)
        else:
            self.mirrored = False
        self.X, self.W, self.v2 = X, W, v * v
        self.K, self.n, self.d = X.shape
        self.m = W.shape[-2]  # neurons actually summed (m/2 when mirrored); the kernels use 1/self.m
        self.chunk = chunk
        self.cache_ok = 2 * self.K * self.n * self.m <= cache_elements
        self._cache: dict[tuple[str, int, int], torch.Tensor] = {}
        self._sq_norm = (X * X).sum(-1)  # (K, n)

    def _chunk_size(self) -> int:
        """Neurons per chunk: ``chunk``, or so that a (K, n, chunk·2) buffer holds CHUNK_ELEMENTS. The
        same for every call, so that cached chunks are reused."""
        if self.chunk is not None:
            return max(1, min(self.chunk, self.m))
        return max(1, min(self.m, CHUNK_ELEMENTS // max(1, 2 * self.K * self.n)))

    def _slices(self) -> list[slice]:
        c = self._chunk_size()
        return [slice(a, min(a + c, self.m)) for a in range(0, self.m, c)]

    def _hidden(self, sl: slice, need_dphi: bool, need_phi: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(Φ′, Φ) restricted to the neurons ``sl``, each (K, n, c), cached when allowed."""
        kinds = [k for k, need in (("dphi", need_dphi), ("phi", need_phi)) if need]
        out = {k: self._cache[(k, sl.start, sl.stop)] for k in kinds if (k, sl.start, sl.stop) in self._cache}
        if len(out) < len(kinds):
            Z = self.X @ self.W[:, sl].transpose(-1, -2) / math.sqrt(self.d)
            for k in kinds:
                if k not in out:
                    out[k] = self.act.dphi(Z) if k == "dphi" else self.act.phi(Z)
                    if self.cache_ok:
                        self._cache[(k, sl.start, sl.stop)] = out[k]
        return out.get("dphi"), out.get("phi")

    def matvec(self, u: torch.Tensor, block: str) -> torch.Tensor:
        """Θ_block u for u (K, S, n); block in :data:`BLOCKS`.

        Θ₁ per chunk c of neurons, with the S vectors folded into the matmul dimensions (no broadcast
        copies): M = Φ′_cᵀ [u_s ⊙ X]_s (K, c, S·d), scaled by v_c²; E = X Mᵀ (K, n, c·S);
        (Θ₁u_s)_i += Σ_{r∈c} E_{i,r,s} Φ′_{i,r}, all over (md)."""
        _check_block(block)
        need1, need2 = block in ("first", "both"), block in ("second", "both")
        K, S, n = u.shape
        d = self.d
        U = u.transpose(-1, -2)  # (K, n, S)
        acc1 = torch.zeros_like(U) if need1 else None
        acc2 = torch.zeros_like(U) if need2 else None
        uX = (U.unsqueeze(-1) * self.X.unsqueeze(-2)).reshape(K, n, S * d) if need1 else None
        for sl in self._slices():
            G, H = self._hidden(sl, need1, need2)
            if need1:
                assert G is not None and uX is not None and acc1 is not None
                c = G.shape[-1]
                M = (G.transpose(-1, -2) @ uX) * self.v2[:, sl].unsqueeze(-1)  # (K, c, S·d)
                E = self.X @ M.reshape(K, c * S, d).transpose(-1, -2)  # (K, n, c·S)
                acc1 += torch.einsum("kncs,knc->kns", E.view(K, n, c, S), G)  # a bmm, 5× the .sum(-2)
            if need2:
                assert H is not None and acc2 is not None
                acc2 += H @ (H.transpose(-1, -2) @ U)
        out = torch.zeros_like(U)
        if acc1 is not None:
            out += acc1 / (self.m * d)
        if acc2 is not None:
            out += acc2 / self.m
        return out.transpose(-1, -2)

    def diag(self, block: str) -> torch.Tensor:
        """diag Θ_block, shape (K, n), exact."""
        _check_block(block)
        need1, need2 = block in ("first", "both"), block in ("second", "both")
        d1 = torch.zeros_like(self._sq_norm)
        d2 = torch.zeros_like(self._sq_norm)
        for sl in self._slices():
            G, H = self._hidden(sl, need1, need2)
            if need1:
                assert G is not None
                d1 += readout(G * G, self.v2[:, sl])
            if need2:
                assert H is not None
                d2 += (H * H).sum(-1)
        return d1 * self._sq_norm / (self.d * self.m) + d2 / self.m

    def select(self, k: int) -> TangentKernel:
        """The same operator for network k alone (K = 1), sharing tensors and the cache."""
        new = object.__new__(TangentKernel)
        new.__dict__.update(self.__dict__)
        new.X, new.W, new.v2 = self.X[k : k + 1], self.W[k : k + 1], self.v2[k : k + 1]
        new._sq_norm = self._sq_norm[k : k + 1]
        new.K = 1
        new._cache = {key: val[k : k + 1] for key, val in self._cache.items()}
        new.cache_ok = self.cache_ok
        return new


def lin_matvec(psi: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """ΨΨᵀu for Ψ (K, n, p) and u (K, S, n)."""
    return (psi @ (psi.transpose(-1, -2) @ u.transpose(-1, -2))).transpose(-1, -2)


def lin_norm(psi: torch.Tensor) -> torch.Tensor:
    """‖ΨΨᵀ‖_op = λ_max(ΨᵀΨ), shape (K,), exact."""
    return torch.linalg.eigvalsh(psi.transpose(-1, -2) @ psi)[..., -1]


class KernelDifference:
    """A_s = Θ_block − ΨΨᵀ, minus its diagonal where ``offdiag[s]``, on u (K, S, n), S = len(offdiag)."""

    def __init__(self, kernel: TangentKernel, psi: torch.Tensor, block: str, offdiag: Sequence[bool]) -> None:
        self.kernel, self.psi, self.block = kernel, psi, block
        self.offdiag = tuple(bool(o) for o in offdiag)
        self.diagonal = kernel.diag(block) - (psi * psi).sum(-1)  # (K, n): diag(Θ − ΨΨᵀ)
        self._mask = torch.tensor(self.offdiag, dtype=psi.dtype, device=psi.device).view(1, -1, 1)

    @property
    def batch_shape(self) -> tuple[int, int]:
        return (self.kernel.K, len(self.offdiag))

    def matvec(self, u: torch.Tensor) -> torch.Tensor:
        out = self.kernel.matvec(u, self.block) - lin_matvec(self.psi, u)
        if any(self.offdiag):
            out = out - self._mask * self.diagonal.unsqueeze(-2) * u
        return out

    def select(self, k: int, s: int) -> KernelDifference:
        new = object.__new__(KernelDifference)
        new.kernel, new.psi, new.block = self.kernel.select(k), self.psi[k : k + 1], self.block
        new.offdiag = (self.offdiag[s],)
        new.diagonal = self.diagonal[k : k + 1]
        new._mask = self._mask[:, s : s + 1]
        return new


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


def measure_blocks(
    act: Activation,
    X: torch.Tensor,
    W: torch.Tensor,
    v: torch.Tensor,
    consts: GaussianConstants,
    nu: float,
    *,
    blocks: Sequence[str] = BLOCKS,
    method: str = "lanczos",
    tol: float = 1e-6,
    max_iter: int = 300,
    chunk: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per block, the spectral norms of Θ − ΨΨᵀ (full and off-diagonal) and of ΨΨᵀ for K networks.

    Args: X (K, n, d), W (K, m, d), v (K, m) in float64; ``nu`` = ν for the inputs' Σ (THEORY §2).
    Returns: {block: {name: tensor (K,) or int}} with ``diff_norm`` ‖Θ − ΨΨᵀ‖, ``diff_eigenvalue``
    (its signed extreme eigenvalue), ``lin_norm`` ‖ΨΨᵀ‖, ``ratio``, ``offdiag_norm``, ``offdiag_ratio``,
    ``diag_max_abs`` = ‖diag(Θ − ΨΨᵀ)‖_op, ``diag_mean``, and the solver's ``iterations``,
    ``iterations_to_tol``, ``residual``, ``converged`` (prefixed ``offdiag_`` for the second run).
    """
    kernel = TangentKernel(act, X, W, v, chunk=chunk)
    out: dict[str, dict[str, Any]] = {}
    for block in blocks:
        _check_block(block)
        psi = features(X, consts, nu, block)
        diff = KernelDifference(kernel, psi, block, offdiag=(False, True))
        eig = extreme_eig(diff, method=method, tol=tol, max_iter=max_iter, seed=seed)
        lin = lin_norm(psi).cpu()
        D = diff.diagonal.cpu()
        res: dict[str, Any] = {
            "lin_norm": lin,
            "diag_max_abs": D.abs().amax(-1),
            "diag_mean": D.mean(-1),
            "iterations": eig.iterations,
        }
        for s, name, prefix in ((0, "diff", ""), (1, "offdiag", "offdiag_")):
            res[f"{name}_norm"] = eig.norm[:, s]
            res[f"{name}_eigenvalue"] = eig.eigenvalue[:, s]
            res[f"{prefix}ratio"] = eig.norm[:, s] / lin
            res[f"{prefix}residual"] = eig.residual[:, s]
            res[f"{prefix}iterations_to_tol"] = eig.iterations_to_tol[:, s]
            res[f"{prefix}converged"] = eig.converged[:, s]
        out[block] = res
    return out


def _check_block(block: str) -> None:
    if block not in BLOCKS:
        raise ConfigError(f"--blocks {block!r} is unknown; valid: {', '.join(BLOCKS)}")


def fit_exponents(points: Sequence[tuple[int, int, int]], values: np.ndarray) -> dict[str, Any]:
    """Least-squares log-log exponents of ``values`` (P points × K seeds) in d, n, m.

    The design is [1, log d, log n, log m]; a column in the span of the ones before it (n or m tied
    to d by a scaling rule — up to rounding: RMS log residual ≤ :data:`TIED_LOG_RMS` — or held
    fixed) is left out, so its effect is *folded* into the earlier
    exponent (with n = c·d^{1+α} the d-exponent is the total slope along that path). Returns
    ``columns`` (fitted), ``fixed`` (constant over the grid), ``tied`` (a function of earlier
    columns), ``per_seed`` [{col: exponent}], ``mean``/``std`` over seeds
    (std with ddof 1, 0 for one seed) and ``of_seed_mean`` (the fit of the seed-mean values)."""
    logs = np.log(np.asarray(points, dtype=float)).reshape(len(points), 3)
    design = [np.ones(len(points))]
    columns: list[str] = []
    for j, name in enumerate(EXPONENT_COLUMNS):
        col = logs[:, j]
        basis = np.stack(design, axis=1)
        resid = col - basis @ np.linalg.lstsq(basis, col, rcond=None)[0]
        if np.sqrt(np.mean(resid**2)) > TIED_LOG_RMS:
            design.append(col)
            columns.append(name)
    folded = [c for c in EXPONENT_COLUMNS if c not in columns]
    fixed = [c for c in folded if np.ptp(logs[:, EXPONENT_COLUMNS.index(c)]) == 0.0]
    A = np.stack(design, axis=1)
    vals = np.asarray(values, dtype=float).reshape(len(points), -1)

    def fit(y: np.ndarray) -> dict[str, float | None]:
        ok = np.isfinite(y) & (y > 0)
        if not columns or ok.sum() < len(design):
            return dict.fromkeys(columns)
        coef = np.linalg.lstsq(A[ok], np.log(y[ok]), rcond=None)[0]
        return {c: float(coef[i + 1]) for i, c in enumerate(columns)}

    per_seed = [fit(vals[:, k]) for k in range(vals.shape[1])]
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for c in columns:
        xs = np.array([p[c] for p in per_seed if p[c] is not None], dtype=float)
        mean[c] = float(xs.mean()) if xs.size else None
        std[c] = (float(xs.std(ddof=1)) if xs.size > 1 else 0.0) if xs.size else None
    return {
        "columns": columns,
        "fixed": fixed,
        "tied": [c for c in folded if c not in fixed],
        "per_seed": per_seed,
        "mean": mean,
        "std": std,
        "of_seed_mean": fit(np.nanmean(vals, axis=1)),
    }


# ---------------------------------------------------------------------------------------------
# Sweeps over (d, n, m): configuration, validation and the record
# ---------------------------------------------------------------------------------------------

DEFAULT_N_SCALE = 2.0
DEFAULT_ALPHA = 0.5
DEFAULT_WIDTH_SCALE = 2.0
METRICS = ("diff_norm", "lin_norm", "ratio", "offdiag_norm", "offdiag_ratio", "diag_max_abs", "diff_over_n_per_d")
MAX_DIM = 100_000


@dataclass(frozen=True)
class KernelBoundConfig:
    """A grid d × n × m of kernel-bound measurements, each over several seeds (batched).

    n is either fixed (``ns``, one or more values) or ``n_scale``·d^{1+alpha} (rounded); m likewise
    (``widths``, even) or ``width_scale``·d^{1+width_alpha} rounded to an even integer, with
    ``width_alpha`` defaulting to ``alpha``. Unset rules default to n = 2·d^{1.5}, m = 2·d^{1.5}.
    """

    ds: tuple[int, ...] = (25, 50, 100)
    ns: tuple[int, ...] | None = None
    n_scale: float | None = None
    alpha: float | None = None
    widths: tuple[int, ...] | None = None
    width_scale: float | None = None
    width_alpha: float | None = None
    activation: str = "erf"
    sigma: str = "iso"
    inputs: str = "gaussian"
    blocks: tuple[str, ...] = BLOCKS
    seeds: tuple[int, ...] = (0, 1)
    method: str = "lanczos"
    tol: float = 1e-6
    max_iter: int = 300
    chunk: int | None = None
    device: str = "auto"
    max_gb: float = 8.0

    def n_rule(self) -> tuple[float, float]:
        return (self.n_scale or DEFAULT_N_SCALE, DEFAULT_ALPHA if self.alpha is None else self.alpha)

    def m_rule(self) -> tuple[float, float]:
        a = self.width_alpha if self.width_alpha is not None else self.n_rule()[1]
        return (self.width_scale or DEFAULT_WIDTH_SCALE, a)

    def n_values(self, d: int) -> list[int]:
        if self.ns is not None:
            return list(self.ns)
        c, a = self.n_rule()
        return [round(c * d ** (1.0 + a))]

    def m_values(self, d: int) -> list[int]:
        if self.widths is not None:
            return list(self.widths)
        c, a = self.m_rule()
        return [2 * round(c * d ** (1.0 + a) / 2)]

    def grid(self) -> list[tuple[int, int, int]]:
        """All (d, n, m) points, d-major."""
        return [(d, n, m) for d in self.ds for n in self.n_values(d) for m in self.m_values(d)]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()
        }
        out["n_rule"] = None if self.ns is not None else {"scale": self.n_rule()[0], "alpha": self.n_rule()[1]}
        out["m_rule"] = None if self.widths is not None else {"scale": self.m_rule()[0], "alpha": self.m_rule()[1]}
        out["grid"] = [list(p) for p in self.grid()]
        return out

    def memory_bytes(self, d: int, n: int, m: int) -> int:
        """A generous estimate of the peak float64 memory of one grid point."""
        K, S = len(self.seeds), len(VARIANTS)
        m_sum = m // 2  # symmetric init: the mirrored half is dropped
        cache = 2 * K * n * m_sum if 2 * K * n * m_sum <= CACHE_ELEMENTS else 0
        krylov = K * S * (min(self.max_iter, n) + 2) * n
        elems = 4 * K * n * d + S * K * n * d + cache + 4 * CHUNK_ELEMENTS + krylov + K * n * (2 * d + 6)
        return 8 * elems

    def validate(self) -> KernelBoundConfig:
        """Check every field; raise :class:`ConfigError` naming the flag, value and valid range."""
        from earlylin.activations import get_activation
        from earlylin.config import DEVICES, _choice, _int_range, _positive
        from earlylin.data.synthetic import INPUT_NAMES, SIGMA_NAMES

        if not self.ds:
            raise ConfigError("--d: give at least one dimension (integers in [2, 100000])")
        for d in self.ds:
            _int_range("--d", d, 2, MAX_DIM)
        _distinct("--d", self.ds)
        if self.ns is not None:
            if not self.ns:
                raise ConfigError("--n: give at least one value (integers in [2, 100000000])")
            for n in self.ns:
                _int_range("--n", n, 2, 10**8)
            _distinct("--n", self.ns)
            if self.n_scale is not None:
                raise ConfigError(f"--n {list(self.ns)} and --n-scale {self.n_scale}: give one or the other")
        if self.widths is not None:
            if not self.widths:
                raise ConfigError("--width: give at least one value (even integers in [2, 10000000])")
            for m in self.widths:
                _int_range("--width", m, 2, 10**7)
                if m % 2:
                    raise ConfigError(
                        f"--width {m} is odd; symmetric initialisation pairs neurons, so the width must be an "
                        "even integer in [2, 10000000]"
                    )
            _distinct("--width", self.widths)
            for flag, val in (("--width-scale", self.width_scale), ("--width-alpha", self.width_alpha)):
                if val is not None:
                    raise ConfigError(f"--width {list(self.widths)} and {flag} {val}: give one or the other")
        if self.ns is not None and self.widths is not None and self.alpha is not None:
            raise ConfigError(f"--alpha {self.alpha}: has no effect with fixed --n and --width; leave it out")
        for flag, val in (("--n-scale", self.n_scale), ("--width-scale", self.width_scale)):
            if val is not None:
                _positive(flag, val)
        for flag, val in (("--alpha", self.alpha), ("--width-alpha", self.width_alpha)):
            if val is not None and (isinstance(val, bool) or not isinstance(val, int | float)
                                    or not math.isfinite(val) or not 0.0 <= val <= 2.0):
                raise ConfigError(f"{flag} {val!r}: must be a number in [0, 2] (the theorem asks α ∈ (0, 1/4))")
        get_activation(self.activation)
        _choice("--sigma", self.sigma, SIGMA_NAMES)
        _choice("--inputs", self.inputs, INPUT_NAMES)
        if not self.blocks:
            raise ConfigError(f"--blocks: give at least one of {', '.join(BLOCKS)}")
        for b in self.blocks:
            _choice("--blocks", b, BLOCKS)
        _distinct("--blocks", self.blocks)
        if not self.seeds:
            raise ConfigError("--seeds: give at least one seed (integers ≥ 0)")
        for s in self.seeds:
            _int_range("--seeds", s, 0, 2**63 - 1)
        _distinct("--seeds", self.seeds)
        _choice("--method", self.method, METHODS)
        if isinstance(self.tol, bool) or not isinstance(self.tol, int | float) or not 1e-14 <= self.tol <= 0.1:
            raise ConfigError(f"--tol {self.tol!r}: must be a number in [1e-14, 0.1]")
        _int_range("--max-iter", self.max_iter, 2, 100_000)
        if self.chunk is not None:
            _int_range("--chunk", self.chunk, 1, 10**7)
        _choice("--device", self.device, DEVICES)
        _positive("--max-gb", self.max_gb)
        for d in self.ds:
            n_flag = "--n" if self.ns is not None else "--n-scale/--alpha"
            m_flag = "--width" if self.widths is not None else "--width-scale/--width-alpha"
            for n in self.n_values(d):
                if not 2 <= n <= 10**8:
                    raise ConfigError(f"{n_flag}: n = {n} at d = {d}; n must be an integer in [2, 100000000]")
            for m in self.m_values(d):
                if not 2 <= m <= 10**7:
                    raise ConfigError(f"{m_flag}: m = {m} at d = {d}; m must be an even integer in [2, 10000000]")
        for d, n, m in self.grid():
            gb = self.memory_bytes(d, n, m) / 2**30
            if gb > self.max_gb:
                raise ConfigError(
                    f"--max-gb {self.max_gb:g}: the point d={d}, n={n}, m={m} needs ≈ {gb:.1f} GB "
                    "(Krylov basis 2·seeds·min(max_iter, n)·n floats); lower --max-iter, n or the seed count, "
                    "or raise --max-gb"
                )
        return self


def _distinct(flag: str, values: Sequence[Any]) -> None:
    if len(set(values)) != len(values):
        raise ConfigError(f"{flag} {list(values)}: values must be distinct")


def _point_data(
    cfg: KernelBoundConfig, d: int, n: int, m: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """X (K, n, d), W (K, m, d), v (K, m) in float64 for the seeds of ``cfg`` (the same draws as
    :mod:`earlylin.verify` at that seed), and Tr(Σ²)/d of the inputs' Σ (for ν)."""
    from earlylin.data.synthetic import make_dataset, sigma_spectrum, tr_sigma2_over_d
    from earlylin.nets import symmetric_init

    Xs, Ws, vs = [], [], []
    for s in cfg.seeds:
        data = make_dataset(s, d, n, 1, cfg.sigma, "teacher", inputs=cfg.inputs)
        W, v = symmetric_init(s, m, d)
        Xs.append(data.x_train)
        Ws.append(W)
        vs.append(v)

    def stack(a: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(a)).to(device=device, dtype=torch.float64)

    return stack(Xs), stack(Ws), stack(vs), tr_sigma2_over_d(sigma_spectrum(cfg.sigma, d))


def run_kernel_bound(cfg: KernelBoundConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every grid point of ``cfg``; return the plain-data record (``kind`` "kernel_bound").

    Keys: schema, kind, config, environment, constants (ζ, …, ν), rows (one dict per (d, n, m,
    seed, block) with every metric of :func:`measure_blocks`), points (per (d, n, m): wall time,
    mirrored, neurons summed) and summary (:func:`summarise`).
    """
    import time

    from earlylin.activations import gaussian_constants, get_activation
    from earlylin.config import resolve_device
    from earlylin.records import SCHEMA, environment

    cfg.validate()
    device = resolve_device(cfg.device)
    act = get_activation(cfg.activation)
    consts = gaussian_constants(act)
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    nu = consts.nu()
    for d, n, m in cfg.grid():
        t0 = time.perf_counter()
        X, W, v, tr2 = _point_data(cfg, d, n, m, device)
        nu = consts.nu(tr2)
        res = measure_blocks(act, X, W, v, consts, nu, blocks=cfg.blocks, method=cfg.method, tol=cfg.tol,
                             max_iter=cfg.max_iter, chunk=cfg.chunk)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
        points.append({"d": d, "n": n, "m": m, "mirrored": bool(mirror_half(W, v)[2]), "wall_time_s": wall})
        for k, seed in enumerate(cfg.seeds):
            for block in cfg.blocks:
                r = res[block]
                row: dict[str, Any] = {"d": d, "n": n, "m": m, "seed": seed, "block": block}
                for key, val in r.items():
                    if isinstance(val, torch.Tensor):
                        item = val[k].item()
                        row[key] = bool(item) if val.dtype == torch.bool else item
                    else:
                        row[key] = val
                row["diff_over_n_per_d"] = row["diff_norm"] * d / n
                rows.append(row)
        if progress is not None:
            its = ", ".join(f"{b} {res[b]['iterations']}" for b in cfg.blocks)
            progress(f"d={d} n={n} m={m}: {wall:.1f}s (Lanczos steps: {its})")
    return {
        "schema": SCHEMA,
        "kind": "kernel_bound",
        "config": cfg.as_dict(),
        "environment": environment(device, "float64"),
        "constants": {**consts.as_dict(), "nu": nu},
        "points": points,
        "rows": rows,
        "summary": summarise(rows, cfg, time.perf_counter() - start),
    }


def _by_point(rows: list[dict[str, Any]], block: str, seeds: Sequence[int], key: str) -> tuple[list, np.ndarray]:
    pts = sorted({(r["d"], r["n"], r["m"]) for r in rows if r["block"] == block})
    index = {(r["d"], r["n"], r["m"], r["seed"]): r for r in rows if r["block"] == block}
    vals = np.array([[index[(*p, s)][key] for s in seeds] for p in pts], dtype=float)
    return pts, vals


def summarise(rows: list[dict[str, Any]], cfg: KernelBoundConfig, wall_time_s: float) -> dict[str, Any]:
    """``slope_by_block`` / ``offdiag_slope_by_block``: the d-exponent of the ratio (and of the
    off-diagonal ratio) per block — mean ± std over seeds, per seed, and of the seed mean — with n and
    m folded in when they follow d (:func:`fit_exponents`); ``exponents_by_block``: every metric's
    exponents in d, n, m; convergence of every spectral norm."""
    seeds = list(cfg.seeds)
    slope: dict[str, Any] = {}
    off_slope: dict[str, Any] = {}
    exps: dict[str, Any] = {}
    for block in cfg.blocks:
        exps[block] = {}
        for key in METRICS:
            pts, vals = _by_point(rows, block, seeds, key)
            exps[block][key] = fit_exponents(pts, vals)
        for target, key in ((slope, "ratio"), (off_slope, "offdiag_ratio")):
            fit = exps[block][key]
            target[block] = {
                "metric": key,
                "vs": "d",
                "mean": fit["mean"].get("d"),
                "std": fit["std"].get("d"),
                "per_seed": {str(s): p.get("d") for s, p in zip(seeds, fit["per_seed"], strict=True)},
                "of_seed_mean": fit["of_seed_mean"].get("d"),
                "fixed": fit["fixed"],
                "tied_to_d": fit["tied"] if "d" in fit["columns"] else [],
            }
    residuals = [r[k] for r in rows for k in ("residual", "offdiag_residual")]
    return {
        "slope_by_block": slope,
        "offdiag_slope_by_block": off_slope,
        "exponents_by_block": exps,
        "all_converged": all(r["converged"] and r["offdiag_converged"] for r in rows),
        "max_residual": float(np.nanmax(residuals)) if residuals else None,
        "max_iterations": max((r["iterations"] for r in rows), default=0),
        "wall_time_s": wall_time_s,
    }
