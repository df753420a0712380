"""The fast CPU step of the two-layer net (``--step fast``, the default on a CPU): :class:`BlockedTwoLayerStep`.

The equations of :class:`earlylin.nets.two_layer.TwoLayerStep` (docs/theory.md §1) over blocks of rows: per block
of B rows, Z_B = X_B Wᵀ/√d, φ(Z_B), f_B, r_B, then its contributions to ∇_v and ∇_W, so that the n×m matrices are
never formed and each B×m tile stays in the core's cache (fp32 products; the sums over blocks change only the
order of the fp32 additions). For erf in float32, φ, φ′, f_B, r_B, H_Bᵀr_B and r_B ⊙ X_B come from one compiled
pass per block (:mod:`earlylin.nets.native`, docs/theory.md §1.2), the products from the machine's faster BLAS
(:mod:`earlylin.nets.providers`). Blocks run on a process-wide pool of single-threaded workers and their partial
sums are added in block order, so the bits do not depend on the thread count.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import torch

from earlylin.activations import Activation
from earlylin.errors import ConfigError
from earlylin.nets import native, providers, seed_batched
from earlylin.runtime.machine import l2_bytes

PHI_IMPLS = ("native", "torch")  # who evaluates φ and φ′ in the fast step (BlockedTwoLayerStep.phi_impl)


def default_block_rows(m: int) -> int:
    """Rows per block of :class:`BlockedTwoLayerStep`: a B×m fp32 tile the size of one core's L2 cache
    (:func:`earlylin.runtime.machine.l2_bytes`; B = 1,024 at m = 256 with 1 MiB, 2,048 with 2 MiB; at least 64),
    so that a block's pre-activations stay in the core's own cache between the product that writes them and the
    pass that reads them, while the Python overhead of a block's three calls stays small beside their
    arithmetic. With 2,048 rows (2 MiB) on a 1 MiB-L2 AMD EPYC the two cores got in each other's way: 1.42×
    JAX's speed at K = 4 against 1.54× with 1,024 rows (BENCHMARKS.md)."""
    return max(64, l2_bytes() // (4 * max(m, 1)))


def rows_per_block(n: int, m: int, block_rows: int | None = None) -> int:
    """``block_rows`` or :func:`default_block_rows`, at most n."""
    return min(n, block_rows or default_block_rows(m))


def row_blocks(K: int, n: int, m: int, block_rows: int | None = None) -> tuple[int, list[tuple[int, int]]]:
    """The fast path's blocks: rows per block (:func:`rows_per_block`) and every (seed, block) pair, seed by
    seed."""
    rows = rows_per_block(n, m, block_rows)
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
    process-wide pool each take the next unclaimed block when they finish one (a worker on a busier core takes
    fewer) and run its ops single-threaded: one
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
        self._plans: dict[tuple[int, ...], list[list[tuple]]] = {}
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
                rows = rows_per_block(self.X.shape[1], m, self.block_rows)
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

    def _native_work(self, rows: int, m: int, n_blocks: int, workers: int, gemm: providers.Gemm, Wt: torch.Tensor,
                     v: torch.Tensor, f: torch.Tensor, r: torch.Tensor, scale: float) -> Callable[[int], None]:
        """A worker's share of the step where the compiled pass evaluates φ (:mod:`earlylin.nets.native`): per
        block, Z_b = X_b Wt, then one C call for f_b, r_b, H_bᵀr_b, φ′(Z_b) (over Z_b) and r_b ⊙ X_b, then the ∇_W
        product. Each (worker, block)'s views and addresses are worked out once per shape and worker count (kept
        with the buffers, whose layout the C call relies on), so a block costs three calls from Python."""
        K, n, d = self.X.shape
        *tiles, (gw_parts, gv_parts) = self._get_buffers(rows, m, n_blocks)
        key = (rows, m, n_blocks, workers)
        if key not in self._plans:
            _, blocks = row_blocks(K, n, m, self.block_rows)
            plan: list[list[tuple]] = [[] for _ in range(workers)]
            for worker in range(workers):
                Zb, Hb, RXb = tiles[worker]
                for k, b in blocks:
                    start, count = b * rows, min(n, (b + 1) * rows) - b * rows
                    Xb, Z, RX = self.X[k, start: start + count], Zb[:count], RXb[:count]
                    gv_ptr = gv_parts[k, b].data_ptr() if self.grad_v else None
                    x_ptr, rx_ptr = (Xb.data_ptr(), RX.data_ptr()) if self.grad_W else (None, None)
                    offset = 4 * (k * n + start)  # bytes into y, f and r (float32, K × n)
                    plan[worker].append((k, Xb, Z, RX.transpose(0, 1), gw_parts[k, b], 4 * k * m, offset,
                                         (count, m, d, Z.data_ptr()), self.y.data_ptr() + offset,
                                         (gv_ptr, x_ptr, rx_ptr, Hb.data_ptr())))
            self._plans[key] = plan
        plan, readout, grad_W = self._plans[key], native.readout_function(), self.grad_W
        v_ptr, f_ptr, r_ptr = v.data_ptr(), f.data_ptr(), r.data_ptr()
        claim = _claims(len(plan[0]))

        def work(worker: int) -> None:
            mine = plan[worker]
            for i in claim():
                k, Xb, Z, RXt, gw, v_off, offset, head, y_ptr, tail = mine[i]
                gemm.mm(Xb, Wt[k], Z)
                readout(*head, v_ptr + v_off, y_ptr, scale, f_ptr + offset, r_ptr + offset, *tail)
                if grad_W:
                    gemm.mm(RXt, Z, gw)

        return work

    def _get_buffers(self, rows: int, m: int, n_blocks: int) -> list[tuple[torch.Tensor, ...]]:
        """Per worker: Z/φ′(Z), φ(Z) and r ⊙ X tiles; then the partial gradients of every block."""
        K, _, d = self.X.shape
        key = (rows, m, n_blocks)
        if key not in self._buffers:
            new = self.X.new_empty
            tiles = [(new((rows, m)), new((rows, m)), new((rows, d))) for _ in range(self.threads)]
            parts = (new((K, n_blocks, d, m) if self.grad_W else (1,)), new((K, n_blocks, m) if self.grad_v else (1,)))
            self._buffers = {key: [*tiles, parts]}
            self._plans = {}  # the views and addresses of the old buffers go with them (_native_work)
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
        if self.phi_impl() == "native":  # φ(Z_b), φ′(Z_b), the readout and r ⊙ X_b in one compiled pass
            work = self._native_work(rows, m, n_blocks, workers, gemm, Wt, v.contiguous(), f, r, inv_sqrt_m)
        else:
            claim = _claims(len(blocks))

            def work(worker: int) -> None:
                Zb, Hb, RXb = tiles[worker]
                for k, b in (blocks[i] for i in claim()):
                    start, stop = b * rows, min(n, (b + 1) * rows)
                    Xb, Z, H = X[k, start:stop], Zb[: stop - start], Hb[: stop - start]
                    gemm.mm(Xb, Wt[k], Z)
                    fb, rb = f[k, start:stop], r[k, start:stop]
                    self.act.phi_out(Z, H)
                    gemm.mv(H, v[k], fb).mul_(inv_sqrt_m)
                    torch.sub(fb, y[k, start:stop], out=rb)
                    if self.grad_v:
                        gemm.mv(H.transpose(0, 1), rb, gv_parts[k, b])
                    if self.grad_W:
                        G = self.act.dphi_out(Z, Z)  # φ′(Z_b) in place of Z_b
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


def run_blocks(work: Callable[[tuple[int, int]], None], blocks: list[tuple[int, int]], threads: int) -> None:
    """``work`` on every block, on the pool's single-threaded workers (at most ``threads`` of them)."""
    list(_pool(min(threads, len(blocks))).map(work, blocks))


def _claims(total: int) -> Callable[[], Iterator[int]]:
    """Block indices 0 … total − 1 handed out one at a time to whichever worker asks next (``next`` on one shared
    ``itertools.count`` is atomic in CPython): a worker on a slower or busier core takes fewer blocks. Each block
    writes its own slots, so which worker takes it changes no bit."""
    counter = itertools.count()

    def claim() -> Iterator[int]:
        while (i := next(counter)) < total:
            yield i

    return claim


def _sum_in_order(parts: torch.Tensor) -> torch.Tensor:
    """Σ_b parts[:, b], added in block order (a fixed order, whatever the threads)."""
    total = parts[:, 0].clone()
    for b in range(1, parts.shape[1]):
        total += parts[:, b]
    return total
