"""One fused GPU kernel for the loss, outputs and gradients of the two-layer net (Triton, fp32).

Same contract as :class:`earlylin.nets.two_layer.TwoLayerStep`: for K seeds batched, W (K, m, d), v (K, m),
X (K, n, d), y (K, n), one call returns loss (K,), f (K, n), ∇_W L (K, m, d), ∇_v L (K, m):

    Z = X Wᵀ/√d,  H = φ(Z),  f = H v/√m,  r = f − y,  L = (1/2n) Σ_i r_i²,
    ∇_v L = Hᵀ r / (n√m),      ∇_W L = diag(v) · φ′(Z)ᵀ (r ⊙ X) / (n√m√d).

What is fused. Row i of Z, H and φ′(Z) depends on x_i and all of W only, and f_i needs the whole
row of H; with m ≤ 512 a block of BLOCK_M rows × the full hidden layer is one register tile, so one
program computes, for each of its row blocks, Z, H = φ(Z) and G = φ′(Z) in registers, reduces f over
the hidden axis in the tile, forms r, and accumulates Hᵀr and Gᵀ(r ⊙ X) over its row blocks in
registers. Z, H and G never reach memory, and nothing is recomputed.

Bytes per model-step (fp32, n = 20,000, d = 50, m = 256). The reference path writes Z, H and G
(n·m·4 B = 20.5 MB each) and reads them back: Z → φ, H → f, H → ∇_v, Z → φ′, G → ∇_W, about
8·n·m·4 B ≈ 164 MB. Here: X once (n·d·4 B = 4 MB), y and f (2·n·4 B), W and v, and the per-program
partial gradients (S·m·(d+1)·4 B per seed, written once and read once by the final sum: 0.4 MB at
K = 64, 1.7 MB at K = 16 with the default S on 132 SMs) — 4 to 6 MB in all, about 30× less. The step
becomes compute-bound: 2·n·m·d FLOPs for Z plus 2·n·m·d for ∇_W (1.0 GFLOP), plus φ and φ′ for
each of the n·m pre-activations.

Precision. Every ``tl.dot`` runs with ``input_precision="ieee"`` (the default): fp32 products, no
TF32, so the results agree with the reference (TF32 off, :func:`earlylin.config.set_exact_fp32`) to
fp32 rounding; only the summation order differs. fp32 only: float64 inputs are refused. The input
dimension is split into power-of-two chunks for the dots (d = 50 → 32 + 16) and a tail below 16
(d = 50 → 2 columns) that enters Z as rank-one updates and ∇_W as a narrow dot, so little or no work
goes to padding d up to a power of two (none at d = 50, where padding to 64 would cost 28 % more).

Reduction across row blocks and determinism. Each seed's n rows are dealt to S programs (row block b
goes to program b mod S); each program keeps its partial ∇_W, ∇_v and Σr² in registers and writes them
to its own slot of a (K, S, …) buffer, and one ``torch.sum`` over S finishes. No atomics: for a given
(n, d, m, BLOCK_M, S, num_warps) the result is bitwise reproducible run to run. (An ``atomic_add``
into the output would be faster by one small kernel but would make the summation order, hence the
last bits, vary between runs.) Changing BLOCK_M or S changes the order and so the last bits.

Compilation. The kernel is specialised on d, m, the activation, the gradient flags, BLOCK_M and its
trip count ⌈n/BLOCK_M/S⌉: a first call with a new n or K compiles once more (seconds).

Measured on one H100 (BENCHMARKS.md, 2026-11-23): the kernel compiles for sm_90 and matches the
reference to ≤ 6e-6 relative (loss, f, ∇W, ∇v), but it runs at ≈ 1,070–1,100 µs per model-step
against 97–129 µs for the reference path: with a 32×256 fp32 tile per program and 8 warps, Triton
reports 32 registers per thread and 1,030 spilled, so every Z/H/G access goes through local memory.
It is therefore not used by the trainer; it is kept, tested, for work on smaller tiles (split m
across programs, or keep only Z in registers and recompute φ, φ′).

Triton is optional: it is imported when a step is built, never at module import; without it
:func:`fused_available` is False and :class:`FusedTwoLayerStep` raises :class:`ConfigError`. With
``TRITON_INTERPRET=1`` (set before the first step is built) the kernel runs on CPU tensors through
Triton's interpreter; the tests use that to check it against the reference on machines without a GPU.
"""

from __future__ import annotations

import importlib.util
import math
import os
from functools import cache
from typing import Any

import torch

from earlylin.activations import Activation
from earlylin.errors import ConfigError

# Activation codes understood by the kernel; leaky ReLU (and ReLU, slope 0) share one code.
_ACT_CODES = {"erf": 0, "relu": 1, "tanh": 2, "gelu": 3, "softplus": 4}
_LEAKY = 1
FUSED_ACTIVATIONS = ("erf", "relu", "leaky_relu[:slope]", "tanh", "gelu", "softplus")
# "ieee": fp32 products (CUDA cores), the default and the one that matches the exact-fp32 reference;
# "tf32x3": three TF32 tensor-core products per fp32 product, close to fp32 but not exact, for speed
# comparisons only.
DOT_PRECISIONS = ("ieee", "tf32x3")
MAX_WIDTH = 512  # one row block × the whole hidden layer must fit in registers


def _act_code(act: Activation) -> int | None:
    if act.name in _ACT_CODES:
        return _ACT_CODES[act.name]
    if act.name.startswith("leaky_relu"):
        return _LEAKY
    return None


def _leaky_slope(act: Activation) -> float:
    """The negative-side slope a of φ(z) = max(z, a z), read off φ(−1) = −a (exact, unlike the name)."""
    if act.name.startswith("leaky_relu"):
        return -float(act.phi(torch.tensor(-1.0, dtype=torch.float64)))
    return 0.0


def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def _interpreting() -> bool:
    """Whether Triton will build interpreted (CPU, numpy) kernels: TRITON_INTERPRET is on."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def fused_available(act: Activation, device: torch.device | str) -> bool:
    """True when :class:`FusedTwoLayerStep` can run ``act`` on ``device``: Triton imports, the
    activation is one the kernel implements, and the device is CUDA (or CPU under TRITON_INTERPRET=1).
    Callers use the plain :class:`earlylin.nets.two_layer.TwoLayerStep` otherwise."""
    if _act_code(act) is None or not _triton_importable():
        return False
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available()
    return dev.type == "cpu" and _interpreting()


def split_input_dim(d: int) -> tuple[int, int, int]:
    """Chunks (DA, DB, DT) of the input dimension: DA, DB powers of two ≥ 16 (or 0) handled by dots,
    DT the power of two ≥ the tail d − DA − DB < 16 (or 0), masked to d. d = 50 → (32, 16, 2)."""

    def floor2(x: int) -> int:
        return 1 << (x.bit_length() - 1)

    da = floor2(d) if d >= 16 else 0
    rest = d - da
    db = floor2(rest) if rest >= 16 else 0
    rest -= db
    if rest >= 16:  # e.g. d = 127: 64 + 32 leaves 31; pad the second chunk to 64 instead
        db, rest = 1 << (d - da - 1).bit_length(), 0
    dt = 1 << (rest - 1).bit_length() if rest > 0 else 0
    return da, db, dt


def default_block_m(m: int) -> int:
    """Rows per block: 32 for m = 256 (a 32 × 256 fp32 tile is 32 registers a thread at 8 warps)."""
    m_p = _next_pow2(m)
    return max(16, min(128, 8192 // m_p))


def _next_pow2(x: int) -> int:
    return 1 << (x - 1).bit_length() if x > 1 else 1


# Set to triton.language by _build_kernel: the kernel below is plain Python until then, so that this
# module imports without Triton.
tl: Any = None


def _two_layer_kernel(
    x_ptr, y_ptr, w_ptr, v_ptr,  # X (K, n, D), y (K, n), W (K, m, D), v (K, m), contiguous fp32
    f_ptr, loss_ptr, gw_ptr, gv_ptr,  # f (K, n); partials Σr² (K, S), ∇_W (K, S, m, D), ∇_v (K, S, m)
    n, m, S,
    inv_sqrt_d, inv_sqrt_m, gv_scale, gw_scale, slope,
    D: tl.constexpr, ACT: tl.constexpr, GRAD_W: tl.constexpr, GRAD_V: tl.constexpr,
    BLOCK_M: tl.constexpr, M_P: tl.constexpr, DA: tl.constexpr, DB: tl.constexpr, DT: tl.constexpr,
    ITERS: tl.constexpr, PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    k = tl.program_id(1).to(tl.int64)
    x_k = x_ptr + k * n * D
    y_k = y_ptr + k * n
    f_k = f_ptr + k * n
    w_k = w_ptr + k * m * D

    cols = tl.arange(0, M_P)  # hidden units
    col_ok = cols < m
    rows0 = tl.arange(0, BLOCK_M)
    v = tl.load(v_ptr + k * m + cols, mask=col_ok, other=0.0)

    # W chunks as (chunk, M_P) tiles, pre-scaled by 1/√d; loaded once per program
    if DA > 0:
        ja = tl.arange(0, DA)
        wa = tl.load(w_k + cols[None, :] * D + ja[:, None], mask=col_ok[None, :] & (ja[:, None] < D), other=0.0)
        wa = wa * inv_sqrt_d
        acc_a = tl.zeros((DA, M_P), dtype=tl.float32)  # (∇_W partial)ᵀ, columns DA
    if DB > 0:
        jb = DA + tl.arange(0, DB)
        wb = tl.load(w_k + cols[None, :] * D + jb[:, None], mask=col_ok[None, :] & (jb[:, None] < D), other=0.0)
        wb = wb * inv_sqrt_d
        acc_b = tl.zeros((DB, M_P), dtype=tl.float32)
    if DT > 0:
        jt = DA + DB + tl.arange(0, DT)
        acc_t = tl.zeros((DT, M_P), dtype=tl.float32)
    gv_acc = tl.zeros((M_P,), dtype=tl.float32)
    sq_acc = tl.zeros((BLOCK_M,), dtype=tl.float32)

    # row blocks pid, pid + S, …: ITERS = ⌈n_blocks / S⌉ for every program, a last one past n masked
    # out entirely. A compile-time trip count: Triton 3.6's interpreter (numpy 2) rejects a runtime
    # scalar as a loop bound.
    for it in range(0, ITERS):
        rows = (pid + it * S) * BLOCK_M + rows0
        row_ok = rows < n
        x_rows = x_k + rows * D
        z = tl.zeros((BLOCK_M, M_P), dtype=tl.float32)
        if DA > 0:
            xa = tl.load(x_rows[:, None] + ja[None, :], mask=row_ok[:, None] & (ja[None, :] < D), other=0.0)
            z = tl.dot(xa, wa, z, input_precision=PRECISION)
        if DB > 0:
            xb = tl.load(x_rows[:, None] + jb[None, :], mask=row_ok[:, None] & (jb[None, :] < D), other=0.0)
            z = tl.dot(xb, wb, z, input_precision=PRECISION)
        if DT > 0:
            # tail columns (< 16, too narrow for a dot's reduction axis): rank-one updates
            for j in tl.static_range(DT):
                if DA + DB + j < D:
                    x_j = tl.load(x_rows + (DA + DB + j), mask=row_ok, other=0.0)
                    w_j = tl.load(w_k + cols * D + (DA + DB + j), mask=col_ok, other=0.0) * inv_sqrt_d
                    z += x_j[:, None] * w_j[None, :]

        # H = φ(Z), G = φ′(Z) elementwise (G is dropped by the compiler when not used)
        if ACT == 0:  # erf; φ′ = (2/√π) e^{−z²}
            h = tl.math.erf(z)
            g = 1.1283791670955126 * tl.exp(-z * z)
        elif ACT == 1:  # leaky ReLU max(z, a z) (ReLU: a = 0); φ′(0) = 1 as in the reference
            pos = z >= 0.0
            h = tl.where(pos, z, z * slope)
            g = tl.where(pos, 1.0, slope)
        elif ACT == 2:  # tanh from e^{−2|z|} (no overflow)
            e = tl.exp(-2.0 * tl.abs(z))
            t = (1.0 - e) / (1.0 + e)
            h = tl.where(z >= 0.0, t, -t)
            g = 1.0 - h * h
        elif ACT == 3:  # gelu z Φ(z); φ′ = Φ(z) + z ϕ(z)
            cdf = 0.5 * (1.0 + tl.math.erf(z * 0.7071067811865476))
            h = z * cdf
            g = cdf + z * 0.3989422804014327 * tl.exp(-0.5 * z * z)
        else:  # softplus log(1 + e^z) = max(z, 0) + log(1 + e^{−|z|}); φ′ = sigmoid
            e = tl.exp(-tl.abs(z))
            h = tl.maximum(z, 0.0) + tl.log(1.0 + e)
            g = tl.where(z >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))
        f = tl.sum(h * v[None, :], axis=1) * inv_sqrt_m
        tl.store(f_k + rows, f, mask=row_ok)
        yv = tl.load(y_k + rows, mask=row_ok, other=0.0)
        r = tl.where(row_ok, f - yv, 0.0)
        sq_acc += r * r
        if GRAD_V:
            gv_acc += tl.sum(h * r[:, None], axis=0)
        if GRAD_W:
            # (∇_W)ᵀ chunk += (r ⊙ X_chunk)ᵀ G, contracting over the block's rows
            if DA > 0:
                acc_a = tl.dot(tl.trans(xa * r[:, None]), g, acc_a, input_precision=PRECISION)
            if DB > 0:
                acc_b = tl.dot(tl.trans(xb * r[:, None]), g, acc_b, input_precision=PRECISION)
            if DT > 0:
                xt = tl.load(x_rows[:, None] + jt[None, :], mask=row_ok[:, None] & (jt[None, :] < D), other=0.0)
                acc_t = tl.dot(tl.trans(xt * r[:, None]), g, acc_t, input_precision=PRECISION)

    slot = k * S + pid
    tl.store(loss_ptr + slot, tl.sum(sq_acc, axis=0))
    if GRAD_V:
        tl.store(gv_ptr + slot * m + cols, gv_acc * gv_scale, mask=col_ok)
    if GRAD_W:
        vs = (v * gw_scale)[None, :]
        gw_slot = gw_ptr + slot * m * D + cols[None, :] * D
        if DA > 0:
            tl.store(gw_slot + ja[:, None], acc_a * vs, mask=col_ok[None, :] & (ja[:, None] < D))
        if DB > 0:
            tl.store(gw_slot + jb[:, None], acc_b * vs, mask=col_ok[None, :] & (jb[:, None] < D))
        if DT > 0:
            tl.store(gw_slot + jt[:, None], acc_t * vs, mask=col_ok[None, :] & (jt[:, None] < D))


@cache
def _build_kernel(interpret: bool) -> Any:
    """Compile-wrap the kernel (once per interpreter mode: triton.jit fixes the mode when it wraps)."""
    del interpret  # only the cache key: triton reads TRITON_INTERPRET when the function is wrapped
    global tl
    import triton
    import triton.language

    tl = triton.language
    return triton.jit(_two_layer_kernel)


class FusedTwoLayerStep:
    """Drop-in for :class:`earlylin.nets.two_layer.TwoLayerStep` on CUDA (fp32): one Triton kernel per call
    plus a sum over S partials. Keyword-only tuning knobs: ``block_m`` (rows per block, a power of
    two ≥ 16), ``num_warps``, ``splits`` (S, programs per seed; default ≈ 2 per SM over all seeds),
    ``input_precision`` of the dots (:data:`DOT_PRECISIONS`; "ieee", exact fp32, unless comparing).

    Raises:
        ConfigError: Triton missing, an activation the kernel lacks, m > 512, a dtype other than
            float32, or a device that is neither CUDA nor CPU under TRITON_INTERPRET=1.
    """

    def __init__(
        self,
        act: Activation,
        X: torch.Tensor,
        y: torch.Tensor,
        grad_W: bool,
        grad_v: bool,
        *,
        block_m: int | None = None,
        num_warps: int | None = None,
        splits: int | None = None,
        input_precision: str = "ieee",
    ) -> None:
        code = _act_code(act)
        if code is None:
            raise ConfigError(
                f"--activation {act.name!r}: the fused GPU step implements {', '.join(FUSED_ACTIVATIONS)}; "
                "use the plain step (earlylin.nets.two_layer.TwoLayerStep)"
            )
        if not _triton_importable():
            raise ConfigError("the fused GPU step needs Triton (pip install triton); "
                              "use earlylin.nets.two_layer.TwoLayerStep")
        if not fused_available(act, X.device):
            raise ConfigError(
                f"the fused step runs on CUDA (or on CPU with TRITON_INTERPRET=1), not on {X.device}"
            )
        if X.dtype != torch.float32 or y.dtype != torch.float32:
            raise ConfigError(f"the fused step is float32 only, got X {X.dtype}, y {y.dtype}")
        if input_precision not in DOT_PRECISIONS:
            raise ConfigError(f"input_precision {input_precision!r}: one of {', '.join(DOT_PRECISIONS)}")
        if block_m is not None and (block_m < 16 or block_m & (block_m - 1)):
            raise ConfigError(f"block_m {block_m}: must be a power of two ≥ 16")
        self.act, self.grad_W, self.grad_v = act, grad_W, grad_v
        self._batched = X.dim() == 3
        self.X = (X if self._batched else X.unsqueeze(0)).contiguous()
        self.y = (y if self._batched else y.unsqueeze(0)).contiguous()
        self._code, self._slope = code, _leaky_slope(act)
        self._block_m, self._num_warps, self._splits = block_m, num_warps, splits
        self._precision = input_precision
        self._sms = torch.cuda.get_device_properties(X.device).multi_processor_count if X.is_cuda else 0
        self._parts: tuple[torch.Tensor, ...] | None = None
        self._launch: dict[str, Any] = {}
        self._compiled: Any = None

    def _launch_config(self, m: int) -> tuple[int, int, int]:
        K, n = self.X.shape[0], self.X.shape[1]
        block_m = self._block_m or default_block_m(m)
        n_blocks = -(-n // block_m)
        if self._splits is not None:
            splits = self._splits
        elif self._sms:
            splits = max(1, (2 * self._sms) // K)
        else:
            splits = 2
        splits = max(1, min(splits, n_blocks))
        num_warps = self._num_warps or (8 if _next_pow2(m) * block_m >= 8192 else 4)
        return block_m, splits, num_warps

    def _get_parts(self, K: int, splits: int, m: int, d: int) -> tuple[torch.Tensor, ...]:
        # a gradient not asked for gets a one-element placeholder (the kernel never touches it)
        shapes = ((K, splits), (K, splits, m, d) if self.grad_W else (1,), (K, splits, m) if self.grad_v else (1,))
        if self._parts is None or any(p.shape != s for p, s in zip(self._parts, shapes, strict=True)):
            self._parts = tuple(self.X.new_empty(s) for s in shapes)
        return self._parts

    def __call__(
        self, W: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        X, y = self.X, self.y
        if not self._batched:
            W, v = W.unsqueeze(0), v.unsqueeze(0)
        K, n, d = X.shape
        m = W.shape[-2]
        if W.shape != (K, m, d) or v.shape != (K, m):
            raise ConfigError(f"W {tuple(W.shape)}, v {tuple(v.shape)} do not match X {tuple(X.shape)}")
        if W.dtype != torch.float32 or v.dtype != torch.float32:
            raise ConfigError(f"the fused step is float32 only, got W {W.dtype}, v {v.dtype}")
        if m > MAX_WIDTH:
            raise ConfigError(f"width m = {m}: the fused step holds the hidden layer in one tile, m ≤ {MAX_WIDTH}")
        W, v = W.contiguous(), v.contiguous()
        block_m, splits, num_warps = self._launch_config(m)
        n_blocks = -(-n // block_m)
        da, db, dt = split_input_dim(d)
        loss_p, gw_p, gv_p = self._get_parts(K, splits, m, d)
        f = X.new_empty((K, n))
        scale = 1.0 / (n * math.sqrt(m))
        kernel = _build_kernel(_interpreting())
        self._launch = {"block_m": block_m, "splits": splits, "num_warps": num_warps, "d_chunks": (da, db, dt),
                        "input_precision": self._precision}
        self._compiled = kernel[(splits, K)](
            X, y, W, v, f, loss_p, gw_p, gv_p,
            n, m, splits,
            1.0 / math.sqrt(d), 1.0 / math.sqrt(m), scale, scale / math.sqrt(d), self._slope,
            D=d, ACT=self._code, GRAD_W=self.grad_W, GRAD_V=self.grad_v,
            BLOCK_M=block_m, M_P=_next_pow2(m), DA=da, DB=db, DT=dt, ITERS=-(-n_blocks // splits),
            PRECISION=self._precision,
            num_warps=num_warps,
        )
        loss = loss_p.sum(dim=1) * (0.5 / n)
        gW = gw_p.sum(dim=1) if self.grad_W else None
        gv = gv_p.sum(dim=1) if self.grad_v else None
        if not self._batched:
            loss, f = loss[0], f[0]
            gW = None if gW is None else gW[0]
            gv = None if gv is None else gv[0]
        return loss, f, gW, gv

    def kernel_info(self) -> dict[str, Any]:
        """The last call's launch configuration, and the compiled kernel's registers and spills per
        thread where Triton reports them (not under the interpreter)."""
        info = dict(self._launch)
        for key in ("n_regs", "n_spills"):
            value = getattr(self._compiled, key, None)
            info[key] = value if isinstance(value, int) else None
        return info
