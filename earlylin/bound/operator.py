"""Matrix-free tangent kernels of the two-layer net and their difference from ΨΨᵀ (docs/theory.md §4).

The one concern here is applying, without forming any n×n matrix, the operators whose spectral norms
the kernel bound compares (:mod:`earlylin.bound.measure`): for the two-layer net at its symmetric
initialisation, per block (docs/theory.md §1, §3),

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

Error sources (docs/theory.md §4) are separated as far as is cheap: the diagonal ("memorisation")
mismatch diag(Θ − ΨΨᵀ) is O(1) per entry, and its operator norm is just max_i |·|; the off-diagonal
part offdiag(Θ − ΨΨᵀ) = (Θ − ΨΨᵀ) − diag(Θ − ΨΨᵀ) is the second operator of :class:`KernelDifference`
(``VARIANTS``). ‖ΨΨᵀ‖ = λ_max(ΨᵀΨ) is exact (:func:`lin_norm`; p×p, p ≤ 2d + 3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from earlylin.activations import Activation
from earlylin.errors import ConfigError
from earlylin.nets.two_layer import readout

__all__ = [
    "BLOCKS",
    "CACHE_ELEMENTS",
    "CHUNK_ELEMENTS",
    "VARIANTS",
    "KernelDifference",
    "TangentKernel",
    "check_block",
    "lin_matvec",
    "lin_norm",
    "mirror_half",
]

BLOCKS = ("first", "second", "both")
VARIANTS = ("full", "offdiag")
CHUNK_ELEMENTS = 2**23  # float64 elements per temporary (K, n, chunk, S = 2) buffer: 64 MB
CACHE_ELEMENTS = 2**26  # Φ and Φ′ are kept across matvecs when they fit in this many elements (512 MB)


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
        check_block(block)
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
        check_block(block)
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


def check_block(block: str) -> None:
    """Raise :class:`ConfigError` unless ``block`` is one of :data:`BLOCKS`."""
    if block not in BLOCKS:
        raise ConfigError(f"--blocks {block!r} is unknown; valid: {', '.join(BLOCKS)}")
