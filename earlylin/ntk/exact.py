"""Exact infinite-width NNGP/NTK matrices of deep FC and CNN nets at initialisation (docs/theory.md §5).

The one concern here is the layer recursion (K2)–(K4) over pairs of inputs; the Gaussian
expectations F, G, V it needs come from :mod:`earlylin.quadrature`. Everything is float64 numpy: no
JAX at run time. neural-tangents' analytic ``kernel_fn`` is only the test oracle
(tests/ntk/test_exact_nt.py).

Architectures (NTK parameterisation: every weight N(0, 1), the forward pass divides by √fan_in, no
biases; φ from :func:`earlylin.activations.get_activation`):

- **FC**:  h¹ = W¹x/√d,  h^{l+1} = W^{l+1} φ(h^l)/√N_l (l = 1…L),  f(x) = h^{L+1} (a linear readout
  after L hidden layers). neural-tangents: ``stax.serial(*[Dense(N, W_std=1, b_std=None), φ] * L,
  Dense(1, W_std=1, b_std=None))``.
- **CNN**: L convolutions (k×k, stride 1, 'SAME' zero padding, fan-in C_in·k²) each followed by φ,
  then flatten and a dense readout. Inputs are C×H×W; pixel p = h·W + w (row-major).

**FC recursion** (Neal; Lee et al.; Jacot et al.). For a pair x, x′ write q = ‖x‖²/d, q′ = ‖x′‖²/d,
ρ = xᵀx′/d and, with F, G, V of (K1) (:mod:`earlylin.quadrature`),

    Σ¹ = ρ,  s¹ = q,  s′¹ = q′,  Θ¹ = Σ¹
    Σ^{l+1} = F(s^l, s′^l, Σ^l),  Σ̇^{l+1} = G(s^l, s′^l, Σ^l),  s^{l+1} = V(s^l)             (K2)
    Θ^{l+1} = Σ^{l+1} + Θ^l · Σ̇^{l+1}                                                        (K3)

The output NNGP is Σ^{(L+1)} and the output NTK Θ^{(L+1)}.

**CNN recursion** (Novak et al. 2019; Arora et al. 2019). With flatten (no pooling) readout the
output only ever needs covariances of *equal* positions p = p′ (the k×k patches of p and p′ are then
shifted by equal offsets), so the kernel depends on the pair only through the per-pixel products
a⁰_p = x_pᵀx′_p/C and norms n_p = ‖x_p‖²/C. With the patch-averaging operator T (P×P,
:func:`same_patch_operator`): (T a)_p = (1/k²) Σ_{δ in the k×k window, p+δ inside the image} a_{p+δ}
(zero padding: missing taps contribute 0 but still count in the 1/k²),

    s¹ = T n(x),  s′¹ = T n(x′),  Σ¹ = Θ¹ = T a⁰
    Σ^{l+1} = T F(s^l, s′^l, Σ^l),  s^{l+1} = T V(s^l),  Θ^{l+1} = T[F + Θ^l ⊙ G]  (l < L)    (K4)
    NNGP = (1/P) Σ_p F_p,   NTK = (1/P) Σ_p [F_p + Θ^L_p G_p]      (F, G at layer L's covariances)

Border pixels see fewer in-bounds taps, so even for unit per-pixel norms s¹_p = n_p^{in}/k² < 1 near
the border (4/9 in a corner, 6/9 on an edge for k = 3): the per-pixel variances differ and are
propagated exactly, pixel by pixel. FC is the special case P = 1, T = [[1]], C = d.
"""

from __future__ import annotations

import numpy as np
import torch

from earlylin.activations import Activation, get_activation
from earlylin.errors import ConfigError
from earlylin.quadrature import diag_expectations, gaussian_pair_expectations

__all__ = ["as_rows", "check_depth", "cnn_kernel", "fc_kernel", "fc_kernel_qr", "same_patch_operator"]

_PAIR_BLOCK = 1_000_000  # input pairs per block of fc_kernel


def check_depth(depth: int) -> None:
    """Raise :class:`ConfigError` unless ``depth`` (hidden or conv layers) is an integer ≥ 1."""
    if not isinstance(depth, int | np.integer) or depth < 1:
        raise ConfigError(f"depth (number of hidden/conv layers) must be an integer ≥ 1, got {depth!r}")


def as_rows(X) -> np.ndarray:
    """X (n, ...) as a float64 numpy matrix (n, d), each input flattened into one row."""
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    return X.reshape(X.shape[0], -1).astype(np.float64)


def _recursion(
    act: Activation,
    depth: int,
    sa: np.ndarray,
    sb: np.ndarray,
    c: np.ndarray,
    ia: np.ndarray,
    ib: np.ndarray,
    T: np.ndarray | None = None,
    same: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(K2)–(K4) for a list of pairs: variances sa (n_a, P), sb (n_b, P) of the inputs (propagated once
    per input, not per pair), first-layer covariances c (pairs, P) of the pairs (ia[k], ib[k]).
    T: the patch operator (None: FC, P = 1). same: pairs of an input with itself, whose covariance
    is set to the propagated variance at every layer (bitwise c = s, so r = 1 exactly: the ReLU kernel
    has a √(1−r²) singularity there that would turn round-off in c into 1e-8 errors).
    Returns the output (NNGP, NTK), each (pairs,)."""
    theta = c.copy()
    for layer in range(depth):
        if same is not None:
            c[same] = sa[ia[same]]
        pair = gaussian_pair_expectations(act, sa[ia], sb[ib], c)
        theta = pair["F"] + theta * pair["G"]
        c = pair["F"]
        if layer < depth - 1:
            sa, sb = diag_expectations(act, sa)["V"], diag_expectations(act, sb)["V"]
            if T is not None:
                c, theta, sa, sb = c @ T.T, theta @ T.T, sa @ T.T, sb @ T.T
    return c.mean(-1), theta.mean(-1)


def _pair_indices(n1: int, n2: int, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n1) if symmetric else tuple(g.ravel() for g in np.indices((n1, n2)))


def _fill(values: np.ndarray, ia: np.ndarray, ib: np.ndarray, n1: int, n2: int, symmetric: bool) -> np.ndarray:
    out = np.empty((n1, n2))
    out[ia, ib] = values
    if symmetric:
        out[ib, ia] = values
    return out


def fc_kernel_qr(
    q: np.ndarray | float,
    qp: np.ndarray | float,
    rho: np.ndarray | float,
    activation: str | Activation,
    depth: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact output (NNGP Σ^{(L+1)}, NTK Θ^{(L+1)}) of the FC net with ``depth`` = L hidden layers, by
    (K2)–(K3), elementwise for q = ‖x‖²/d, q′ = ‖x′‖²/d, ρ = xᵀx′/d (broadcast)."""
    check_depth(depth)
    q, qp, rho = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(q, qp, rho))
    idx = np.arange(q.size)
    nngp, ntk = _recursion(
        get_activation(activation), depth, q.reshape(-1, 1), qp.reshape(-1, 1), rho.reshape(-1, 1), idx, idx
    )
    return nngp.reshape(q.shape), ntk.reshape(q.shape)


def fc_kernel(X, X2=None, *, activation: str | Activation, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact (NNGP, NTK) matrices (n, n₂) of the FC net between the rows of X (n, d) and X2 (n₂, d)
    (X2 = None: X with itself, computing each unordered pair once)."""
    check_depth(depth)
    sym = X2 is None
    X1 = as_rows(X)
    X2 = X1 if sym else as_rows(X2)
    d = X1.shape[1]
    ia, ib = _pair_indices(len(X1), len(X2), sym)
    gram = X1 @ X2.T / d
    qa = (X1 * X1).sum(1, keepdims=True) / d
    qb = (X2 * X2).sum(1, keepdims=True) / d
    act = get_activation(activation)
    nngp, ntk = np.empty(len(ia)), np.empty(len(ia))
    for k in range(0, len(ia), _PAIR_BLOCK):  # bounded memory: the 10k × 10k CIFAR kernel has 5e7 pairs
        a, b = ia[k : k + _PAIR_BLOCK], ib[k : k + _PAIR_BLOCK]
        nngp[k : k + len(a)], ntk[k : k + len(a)] = _recursion(
            act, depth, qa, qb, gram[a, b].reshape(-1, 1), a, b, same=(a == b) if sym else None)
    return _fill(nngp, ia, ib, len(X1), len(X2), sym), _fill(ntk, ia, ib, len(X1), len(X2), sym)


def same_patch_operator(height: int, width: int, kernel_size: int = 3) -> np.ndarray:
    """T of (K4): (P×P), (T a)_p = (1/k²) Σ over the in-bounds taps of p's k×k 'SAME' window.

    For even k the window extends (k−1)//2 pixels before and k//2 after p, as in lax 'SAME'."""
    k = kernel_size
    before = (k - 1) // 2
    P = height * width
    T = np.zeros((P, P))
    for h in range(height):
        for w in range(width):
            for dh in range(-before, k - before):
                for dw in range(-before, k - before):
                    hh, ww = h + dh, w + dw
                    if 0 <= hh < height and 0 <= ww < width:
                        T[h * width + w, hh * width + ww] += 1.0 / (k * k)
    return T


def _pixels(X) -> tuple[np.ndarray, tuple[int, int]]:
    """(n, C, H, W) → pixel vectors (n, P, C) and (H, W)."""
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X, dtype=np.float64)
    if X.ndim != 4:
        raise ConfigError(f"CNN inputs must have shape (n, C, H, W), got {X.shape}")
    n, C, H, W = X.shape
    return X.astype(np.float64).reshape(n, C, H * W).transpose(0, 2, 1), (H, W)


def cnn_kernel(
    X, X2=None, *, activation: str | Activation, depth: int, kernel_size: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (NNGP, NTK) matrices of the 'SAME'-padded CNN with flatten readout, by (K4).

    X: (n, C, H, W), X2: (n₂, C, H, W) or None (X with itself, each unordered pair once). Cost:
    pairs × H·W × depth bivariate expectations (closed forms for erf and ReLU; for other φ a
    ≥ 128×128-node rule each, i.e. seconds per few hundred pair-pixels)."""
    check_depth(depth)
    sym = X2 is None
    X1, (H, W) = _pixels(X)
    X2 = X1 if sym else _pixels(X2)[0]
    C = X1.shape[2]
    T = same_patch_operator(H, W, kernel_size)
    ia, ib = _pair_indices(len(X1), len(X2), sym)
    c = ((X1[ia] * X2[ib]).sum(-1) / C) @ T.T  # Σ¹ = T a⁰, (pairs, P)
    sa = ((X1 * X1).sum(-1) / C) @ T.T
    sb = ((X2 * X2).sum(-1) / C) @ T.T
    nngp, ntk = _recursion(get_activation(activation), depth, sa, sb, c, ia, ib, T,
                           same=(ia == ib) if sym else None)
    return _fill(nngp, ia, ib, len(X1), len(X2), sym), _fill(ntk, ia, ib, len(X1), len(X2), sym)
