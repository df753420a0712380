"""The two-layer network of docs/theory.md §1, batched over seeds, with its analytic gradients.

    f(x; W, v) = (1/√m) Σ_r v_r φ(w_rᵀx/√d),     L = (1/2n) Σ_i (f(x_i) − y_i)²

Every tensor carries a leading seed axis K: W (K, m, d), v (K, m), X (K, n, d), y (K, n), so that
K independent runs are one batched computation. Gradients (checked against autograd in the tests):

    Z = X Wᵀ/√d,  r = f − y,
    ∇_v L = φ(Z)ᵀ r / (n√m),      ∇_W L = diag(v) · φ′(Z)ᵀ (r ⊙ X) / (n√m√d).

The second form of ∇_W scales the n×d input rows by r instead of the n×m matrix φ′(Z), and
:class:`TwoLayerStep` keeps the three n×m buffers (Z, φ(Z), φ′(Z)) allocated across steps: on a CPU
the allocation of fresh 20 MB buffers every step costs as much as the arithmetic.

Three implementations of one step, chosen by ``TwoLayerConfig.step`` (:func:`make_step`):

- ``reference`` — :class:`TwoLayerStep`, whole n×m matrices (the path the golden records were made with);
- ``fast`` — :class:`BlockedTwoLayerStep`, the same equations over blocks of rows: per block of B rows,
  Z_B = X_B Wᵀ/√d, φ(Z_B), f_B, r_B, then its contributions to ∇_v and ∇_W, so that the n×m matrices
  are never formed and each B×m tile stays in the CPU's cache (fp32 products; the sums over blocks
  change only the order of the fp32 additions); for erf in float32, φ, φ′, f_B, r_B and H_Bᵀr_B come
  from one compiled pass per block (:mod:`earlylin.nets.native`), the products from the machine's
  faster BLAS (:mod:`earlylin.nets.providers`);
- ``fused`` — :class:`earlylin.nets.fused.FusedTwoLayerStep`, two Triton kernels (CUDA) with
  split-precision "3×TF32" tensor-core products.

``auto`` takes ``fast`` on a CPU and ``reference`` on CUDA (:func:`resolve_step`).
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from earlylin.activations import Activation
from earlylin.errors import ConfigError, arg
from earlylin.nets import native, providers, seed_batched
from earlylin.runtime.rng import STREAM_INIT, stream

NET_STEPS = ("auto", "reference", "fast", "fused")  # the network step's implementations (resolve_step)
PHI_IMPLS = ("native", "torch")  # who evaluates φ and φ′ in the fast step (BlockedTwoLayerStep.phi_impl)


def symmetric_init(seed: int, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric initialisation (docs/theory.md §1): w_r ~ N(0, I_d), v_r ~ ±1 for r < m/2, then the mirror
    w_{r+m/2} = w_r, v_{r+m/2} = −v_r, so that f(·; W(0), v(0)) ≡ 0 exactly. m must be even."""
    rng = stream(seed, STREAM_INIT)
    half = m // 2
    w = rng.standard_normal((half, d))
    v = rng.choice([-1.0, 1.0], size=half)
    return np.concatenate([w, w]), np.concatenate([v, -v])


def symmetric_readout(seed: int, m: int, d: int, outputs: int) -> np.ndarray:
    """The readout of a net with ``outputs`` > 1 columns, (outputs, m): row 0 is :func:`symmetric_init`'s v, each
    further row its own ±1 draw (``stream(seed, STREAM_INIT, c)``), mirrored the same way, so f ≡ 0 at init."""
    rows = [symmetric_init(seed, m, d)[1]]
    for c in range(1, outputs):
        v = stream(seed, STREAM_INIT, c).choice([-1.0, 1.0], size=m // 2)
        rows.append(np.concatenate([v, -v]))
    return np.stack(rows)


def forward(act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Network outputs f(X), shape (K, n); for a readout v of shape (K, C, m), (K, n, C)."""
    m, d = W.shape[-2], W.shape[-1]
    Z = torch.matmul(X, W.transpose(-1, -2)) / math.sqrt(d)
    if v.ndim == 3:
        return torch.matmul(act.phi(Z), v.transpose(-1, -2)) / math.sqrt(m)
    return readout(act.phi(Z), v) / math.sqrt(m)


def readout(H: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """H v for H (K, n, m), v (K, m) → (K, n), written as vᵀHᵀ: torch's CPU batched matrix-vector
    product is 2–4× slower in the H @ v form."""
    return torch.matmul(v.unsqueeze(-2), H.transpose(-1, -2)).squeeze(-2)


def backprop_readout(H: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Hᵀ r for H (K, n, m), r (K, n) → (K, m), written as rᵀH (the transposed form is slower)."""
    return torch.matmul(r.unsqueeze(-2), H).squeeze(-2)


class TwoLayerStep:
    """Loss, outputs and gradients of the two-layer net on a fixed batch, with reused buffers."""

    def __init__(self, act: Activation, X: torch.Tensor, y: torch.Tensor, grad_W: bool, grad_v: bool) -> None:
        self.act, self.X, self.y = act, X, y
        self.grad_W, self.grad_v = grad_W, grad_v
        self._buffers: tuple[torch.Tensor, ...] | None = None

    def _get_buffers(self, m: int) -> tuple[torch.Tensor, ...]:
        if self._buffers is None or self._buffers[0].shape[-1] != m:
            shape = (*self.X.shape[:-1], m)
            count = 3 if self.grad_W else 2
            self._buffers = tuple(self.X.new_empty(shape) for _ in range(count))
        return self._buffers

    def __call__(
        self, W: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        X, y = self.X, self.y
        n, d = X.shape[-2], X.shape[-1]
        m = W.shape[-2]
        bufs = self._get_buffers(m)
        Z, H = bufs[0], bufs[1]
        torch.matmul(X, (W * (1.0 / math.sqrt(d))).transpose(-1, -2), out=Z)
        self.act.phi_out(Z, H)
        f = readout(H, v) * (1.0 / math.sqrt(m))
        r = f - y
        loss = 0.5 * torch.mean(r * r, dim=-1)
        scale = 1.0 / (n * math.sqrt(m))
        gv = backprop_readout(H, r) * scale if self.grad_v else None
        gW = None
        if self.grad_W:
            G = self.act.dphi_out(Z, bufs[2])
            rX = X * (r * (scale / math.sqrt(d))).unsqueeze(-1)
            gW = torch.matmul(rX.transpose(-1, -2), G).transpose(-1, -2) * v.unsqueeze(-1)
        return loss, f, gW, gv


def default_block_rows(m: int) -> int:
    """Rows per block of :class:`BlockedTwoLayerStep`: a B×m fp32 tile of 2 MiB (B = 2,048 at m = 256; at
    least 64), so that a block's tiles stay in cache (2 MiB of L2 per core, then L3) while the Python
    overhead of its ~8 ops stays small beside their arithmetic (1,024–4,096 rows measured alike at K = 1,
    fewer blocks better at K = 4: BENCHMARKS.md)."""
    return max(64, (1 << 21) // (4 * max(m, 1)))


def row_blocks(K: int, n: int, m: int, block_rows: int | None = None) -> tuple[int, list[tuple[int, int]]]:
    """The fast path's blocks: rows per block (``block_rows`` or :func:`default_block_rows`, at most n) and
    every (seed, block) pair, seed by seed."""
    rows = min(n, block_rows or default_block_rows(m))
    return rows, [(k, b) for k in range(K) for b in range(-(-n // rows))]


_POOLS: dict[int, ThreadPoolExecutor] = {}
os.register_at_fork(after_in_child=_POOLS.clear)  # a forked child has none of the parent's threads


def _worker_init() -> None:
    """A worker runs its torch ops single-threaded (OpenMP's and MKL's thread counts are per calling
    thread) and leaves Ctrl-C and SIGTERM to the main thread, whose wait they then interrupt at once."""
    torch.get_num_threads()  # torch's lazy per-thread set-up first, or it would undo the next line later
    torch.set_num_threads(1)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _pool(threads: int) -> ThreadPoolExecutor:
    """A process-wide pool of ``threads`` workers whose torch ops run single-threaded (started at once)."""
    pool = _POOLS.get(threads)
    if pool is None:
        main = torch.get_num_threads()
        pool = ThreadPoolExecutor(threads, thread_name_prefix="earlylin-step", initializer=_worker_init)
        barrier = threading.Barrier(threads)
        list(pool.map(lambda _: barrier.wait(), range(threads)))  # every worker started and initialised
        torch.set_num_threads(main)  # the workers' call also set torch's default for new threads: restore it
        _POOLS[threads] = pool
    return pool


class BlockedTwoLayerStep:
    """The step of :class:`TwoLayerStep` over blocks of ``block_rows`` rows (the ``fast`` CPU path).

    Per seed k and block b of rows: Z_b = X_b (W/√d)ᵀ, H_b = φ(Z_b), f_b = H_b v/√m, r_b = f_b − y_b, and
    the block's partial gradients H_bᵀ r_b and (r_b ⊙ X_b)ᵀ φ′(Z_b) (φ′(Z_b) overwrites Z_b in place),
    written to their own slots; the partials are then summed in block order and scaled once as in
    :class:`TwoLayerStep`. The tiles stay in cache, and the result does not depend on how the blocks
    are shared out. ``threads`` (default: torch's intra-op thread count on a CPU, else 1) workers of a
    process-wide pool each take every ``threads``-th block and run its ops single-threaded: one
    synchronisation per step instead of one per op, so that no op waits at a barrier for a core that
    another process holds (equal on a quiet 2-core machine; under other processes' load torch's own
    threading of these small ops was 5–12× slower, BENCHMARKS.md). A single block, or ``threads=1``, runs
    on a pool of one worker: whatever the thread count, every op is single-threaded. X may be (n, d) or
    batched (K, n, d).
    """

    def __init__(self, act: Activation, X: torch.Tensor, y: torch.Tensor, grad_W: bool, grad_v: bool,
                 *, block_rows: int | None = None, threads: int | None = None,
                 gemm: str | None = None, phi: str | None = None) -> None:
        for name, value in (("block_rows", block_rows), ("threads", threads)):
            if value is not None and value < 1:
                raise ConfigError(f"{name} {value}: must be an integer ≥ 1")
        self.act, self.grad_W, self.grad_v = act, grad_W, grad_v
        self._batched, self.X, self.y = seed_batched(X, y)
        self.block_rows = block_rows
        self.threads = threads or (torch.get_num_threads() if X.device.type == "cpu" else 1)
        self._buffers: dict[tuple[int, ...], list[tuple[torch.Tensor, ...]]] = {}
        if gemm is not None and gemm not in providers.GEMMS:
            raise ConfigError(f"gemm {gemm!r} is unknown; valid: {', '.join(providers.GEMMS)}")
        self._gemm = gemm
        if phi is not None and phi not in PHI_IMPLS:
            raise ConfigError(f"phi {phi!r} is unknown; valid: {', '.join(PHI_IMPLS)}")
        if phi == "native" and not self._native_fits():
            raise ConfigError("phi 'native' needs φ = erf in float32 on a CPU and the compiled kernel "
                              f"({native.unavailable_reason() or 'available'}); use phi='torch'")
        self._phi_impl = phi

    def gemm(self, m: int) -> str:
        """Who computes the products (:mod:`earlylin.nets.providers`): as given, else on a CPU in float32 the
        machine's measured choice for this block shape (a few steps of each provider on n = 2 blocks per
        worker, once per machine), else torch."""
        if self._gemm is None:
            forced = providers.forced()
            if forced is not None or self.X.device.type != "cpu" or self.X.dtype != torch.float32:
                self._gemm = forced or providers.DEFAULT
            else:
                rows = min(self.X.shape[1], self.block_rows or default_block_rows(m))
                key = providers.machine_key(rows, m, self.X.shape[2])
                self._gemm = providers.machine_choice(key, lambda: self._candidates(rows, m))
        return self._gemm

    def _native_fits(self) -> bool:
        fits = self.act.name == "erf" and self.X.device.type == "cpu" and self.X.dtype == torch.float32
        return fits and native.available()

    def phi_impl(self) -> str:
        """Who evaluates φ, φ′ and the readout on the tiles: as given, else ``native`` (:mod:`earlylin.nets.native`,
        one compiled pass per block) for erf in float32 on a CPU where it builds, else ``torch``."""
        if self._phi_impl is None:
            self._phi_impl = "native" if self._native_fits() else "torch"
        return self._phi_impl

    def _candidates(self, rows: int, m: int) -> dict[str, Callable[[], object]]:
        """One step per provider on a problem of this block shape (two blocks per worker, K = 1)."""
        g = torch.Generator().manual_seed(0)
        n, d = 2 * rows * self.threads, self.X.shape[2]
        X, y = torch.randn(1, n, d, generator=g), torch.randn(1, n, generator=g)
        W, v = torch.randn(1, m, d, generator=g), torch.randn(1, m, generator=g)
        steps = {name: BlockedTwoLayerStep(self.act, X, y, self.grad_W, self.grad_v, block_rows=rows,
                                           threads=self.threads, gemm=name, phi=self.phi_impl())
                 for name in providers.GEMMS}
        return {name: (lambda step=step: step(W, v)) for name, step in steps.items()}

    def _get_buffers(self, rows: int, m: int, n_blocks: int) -> list[tuple[torch.Tensor, ...]]:
        """Per worker: Z/φ′(Z), φ(Z) and r ⊙ X tiles; then the partial gradients of every block."""
        K, _, d = self.X.shape
        key = (rows, m, n_blocks)
        if key not in self._buffers:
            new = self.X.new_empty
            tiles = [(new((rows, m)), new((rows, m)), new((rows, d))) for _ in range(self.threads)]
            parts = (new((K, n_blocks, d, m) if self.grad_W else (1,)), new((K, n_blocks, m) if self.grad_v else (1,)))
            self._buffers = {key: [*tiles, parts]}
        return self._buffers[key]

    def __call__(
        self, W: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        X, y = self.X, self.y
        if not self._batched:
            W, v = W.unsqueeze(0), v.unsqueeze(0)
        K, n, d = X.shape
        m = W.shape[-2]
        rows, blocks = row_blocks(K, n, m, self.block_rows)
        n_blocks = len(blocks) // K
        *tiles, (gw_parts, gv_parts) = self._get_buffers(rows, m, n_blocks)
        Wt = (W * (1.0 / math.sqrt(d))).transpose(-1, -2).contiguous()  # (K, d, m)
        f, r = X.new_empty((K, n)), X.new_empty((K, n))
        inv_sqrt_m = 1.0 / math.sqrt(m)
        workers = min(self.threads, len(blocks))
        gemm = providers.GEMMS[self.gemm(m)]
        fused_phi = self.phi_impl() == "native"  # φ(Z_b), φ′(Z_b) and the readout in one compiled pass
        vc = v.contiguous()

        def work(worker: int) -> None:
            Zb, Hb, RXb = tiles[worker]
            for k, b in blocks[worker::workers]:
                start, stop = b * rows, min(n, (b + 1) * rows)
                Xb, Z, H = X[k, start:stop], Zb[: stop - start], Hb[: stop - start]
                gemm.mm(Xb, Wt[k], Z)
                fb, rb = f[k, start:stop], r[k, start:stop]
                if fused_phi:  # f_b, r_b, H_bᵀr_b and φ′(Z_b) over Z_b, row by row: H_b is never stored
                    gv_b = gv_parts[k, b].zero_() if self.grad_v else None
                    native.erf_readout(Z, self.grad_W, vc[k], y[k, start:stop], inv_sqrt_m, fb, rb, gv_b, Hb[0])
                else:
                    self.act.phi_out(Z, H)
                    gemm.mv(H, v[k], fb).mul_(inv_sqrt_m)
                    torch.sub(fb, y[k, start:stop], out=rb)
                    if self.grad_v:
                        gemm.mv(H.transpose(0, 1), rb, gv_parts[k, b])
                if self.grad_W:
                    G = Z if fused_phi else self.act.dphi_out(Z, Z)  # φ′(Z_b) in place of Z_b
                    rX = torch.mul(Xb, rb.unsqueeze(-1), out=RXb[: stop - start])
                    gemm.mm(rX.transpose(0, 1), G, gw_parts[k, b])

        # every block on a single-threaded worker (one block, one thread too): the bits never depend on the threads
        with gemm.single():
            list(_pool(workers).map(work, range(workers)))
        loss = 0.5 * torch.mean(r * r, dim=-1)
        scale = 1.0 / (n * math.sqrt(m))
        gv = _sum_in_order(gv_parts).mul_(scale) if self.grad_v else None
        gW = None
        if self.grad_W:
            gW = _sum_in_order(gw_parts).transpose(-1, -2) * (v * (scale / math.sqrt(d))).unsqueeze(-1)
        if not self._batched:
            loss, f = loss[0], f[0]
            gW = None if gW is None else gW[0]
            gv = None if gv is None else gv[0]
        return loss, f, gW, gv


def _sum_in_order(parts: torch.Tensor) -> torch.Tensor:
    """Σ_b parts[:, b], added in block order (a fixed order, whatever the threads)."""
    total = parts[:, 0].clone()
    for b in range(1, parts.shape[1]):
        total += parts[:, b]
    return total


def resolve_step(step: str, device: torch.device | str) -> str:
    """The implementation ``step`` names on ``device``: ``auto`` → ``fast`` on a CPU (faster there, see
    BENCHMARKS.md), ``reference`` on CUDA (the fused kernel becomes the CUDA default only once it is
    measured faster there); any other name is itself.

    Raises:
        ConfigError: ``step`` not one of :data:`NET_STEPS`.
    """
    if step not in NET_STEPS:
        raise ConfigError(f"{arg('step', step)} is unknown; valid: {', '.join(NET_STEPS)}")
    if step == "auto":
        return "fast" if torch.device(device).type == "cpu" else "reference"
    return step


def check_step(step: str, activation: str, device: torch.device | str, dtype: str) -> None:
    """Refuse, before any work, a ``step`` that cannot run here (``fused`` without Triton or CUDA, in
    float64, or with an activation the kernels lack).

    Raises:
        ConfigError: naming the flag and the fix.
    """
    if resolve_step(step, device) != "fused":
        return
    from earlylin.nets import fused

    reason = fused.unavailable_reason(activation, device, dtype)
    if reason is not None:
        raise ConfigError(f"{arg('step', 'fused')}: {reason}; choose another step: auto, fast or reference")


def step_info(step: str, gemm: str | None = None, phi: str | None = None) -> dict[str, str]:
    """What a record carries about a resolved step: its name, the precision of its products (``ieee``: fp32
    products; ``tf32x3``: three TF32 tensor-core products per fp32 product) and, for ``fast``, who computes
    its products (``gemm``: ``torch`` or ``numpy``, :mod:`earlylin.nets.providers`) and its φ and φ′ (``phi``:
    ``native`` or ``torch``, :mod:`earlylin.nets.native`)."""
    info = {"impl": step, "matmul_precision": "tf32x3" if step == "fused" else "ieee",
            "fused": str(step == "fused").lower()}
    return info | {k: v for k, v in (("gemm", gemm), ("phi", phi)) if v is not None}


def fast_choices(step: object, m: int) -> dict[str, str]:
    """A ``fast`` step's machine choices at width m, ``{"gemm": ..., "phi": ...}`` (measured or built now if not
    yet known), for :func:`step_info`; empty for the other steps."""
    if not isinstance(step, BlockedTwoLayerStep):
        return {}
    return {"gemm": step.gemm(m), "phi": step.phi_impl()}


def forward_rows(act: Activation, W: torch.Tensor, v: torch.Tensor, X: torch.Tensor, *,
                 block_rows: int | None = None, threads: int | None = None) -> torch.Tensor:
    """:func:`forward` over blocks of rows, each block's ops single-threaded on a worker of the pool (the
    ``fast`` step's way, :class:`BlockedTwoLayerStep`): the same bits whatever torch's thread count. A CPU's
    threaded matrix products may split their sums by thread (seen for vᵀHᵀ at n = 100, m = 256 on an
    AVX-512 Xeon: 4e-6 apart with 1 and 2 threads), so the test outputs of the ``fast`` path are made this
    way. W (K, m, d), v (K, m), X (K, n, d) → (K, n)."""
    K, n, _ = X.shape
    rows, blocks = row_blocks(K, n, W.shape[-2], block_rows)
    out = X.new_empty((K, n))
    threads = threads or torch.get_num_threads()

    def work(block: tuple[int, int]) -> None:
        k, b = block
        start, stop = b * rows, min(n, (b + 1) * rows)
        out[k, start:stop] = forward(act, W[k: k + 1], v[k: k + 1], X[k: k + 1, start:stop])[0]

    list(_pool(min(threads, len(blocks))).map(work, blocks))
    return out


def make_step(step: str, act: Activation, X: torch.Tensor, y: torch.Tensor, grad_W: bool,
              grad_v: bool) -> TwoLayerStep | BlockedTwoLayerStep | Any:
    """The step function of the resolved ``step`` (``reference``, ``fast`` or ``fused``) on X's device.

    Raises:
        ConfigError: an unknown name, or ``fused`` where it cannot run (no Triton, no CUDA, a dtype other
            than float32, an activation the kernel lacks) — before any work.
    """
    name = resolve_step(step, X.device)
    if name == "reference":
        return TwoLayerStep(act, X, y, grad_W, grad_v)
    if name == "fast":
        return BlockedTwoLayerStep(act, X, y, grad_W, grad_v)
    from earlylin.nets import fused  # Triton is imported only when the fused step is asked for

    return fused.FusedTwoLayerStep(act, X, y, grad_W, grad_v)
