"""Speed of one full-batch GD step of the two-layer net (workload W1 of the speed issue), per model.

Usage:
    python benchmarks/bench.py                       # W1 (n = 20,000, d = 50, m = 256), K ∈ {1, 16, 64}
    python benchmarks/bench.py --n 4000 --ks 1 4     # a smaller CPU-sized table
    python benchmarks/bench.py --device cuda --out benchmarks/h100.json

Implementations, all erf, both layers, η = 1, fp32 (TF32 off) unless --dtype says otherwise:
- ``naive``   : one seed at a time, plain autograd on the eager module (a Python loop over seeds);
- ``shipped`` : earlylin's trainer step (:class:`earlylin.nets.two_layer.TwoLayerStep`) on all K seeds at once;
- ``jax``     : ``jit(vmap(lax.scan))`` of the same step at precision "highest", where JAX imports;
- ``fused``   : :class:`earlylin.nets.fused.FusedTwoLayerStep`, one Triton kernel per step that never stores
  the n×m hidden activations (CUDA with Triton only). Before it is timed, its loss, f, ∇_W and ∇_v
  are compared with ``shipped`` on the benchmark problem (v moved off the symmetric point, where
  f ≡ 0); the relative errors, the launch configuration and the kernel's registers/spills go into
  the JSON under ``fused_check``. ``--fused-sweep`` also times a few block sizes and warp counts;
- ``compiled``: the ``shipped`` GD step (step, W −= ∇_W, v −= ∇_v) captured once as a CUDA graph and
  replayed (``--compile-with cudagraph``, the default: no launch gaps, same kernels), or the same
  step written functionally under ``torch.compile(mode="max-autotune-no-cudagraphs")``
  (``--compile-with inductor``: fusion by the compiler; its autotuning takes minutes). CUDA only.

Printed per implementation and K: µs per model-step (wall time / (steps·K)), the ratio to the floor,
and the ratio to ``shipped``. The floor is computed from this device's *measured* rates, not a
constant: max(FLOPs / measured matmul FLOP/s, bytes / measured copy bandwidth), with 4·n·m·d FLOPs
(the two GEMMs) and 3·n·m·bytes (one write, two reads of the n×m hidden activation) per model-step.
Writes a JSON with every number and the environment. Nothing here is asserted: speed is measured,
not tested.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earlylin import cli
from earlylin.activations import get_activation
from earlylin.config import DEVICES, resolve_device, set_exact_fp32
from earlylin.errors import ConfigError
from earlylin.nets import fused
from earlylin.nets import two_layer as nets
from earlylin.records import environment, write_json_atomic


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up (allocations, kernels, compilation)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def measured_rates(device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """This device's matmul FLOP/s and copy bandwidth (bytes/s), measured now."""
    n = 4096 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    t_mm = _time(lambda: a @ b, device, 10)
    big = torch.empty(64 * 2**20 // 4, device=device, dtype=torch.float32)
    out = torch.empty_like(big)
    t_cp = _time(lambda: out.copy_(big), device, 10)
    return {"flops_per_s": 2 * n**3 / t_mm, "bytes_per_s": 2 * big.numel() * 4 / t_cp}


def make_problem(K: int, n: int, d: int, m: int, device: torch.device, dtype: torch.dtype):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(K, n, d, generator=g, dtype=torch.float64).to(device, dtype)
    y = torch.sign(torch.randn(K, n, generator=g, dtype=torch.float64)).to(device, dtype)
    inits = [nets.symmetric_init(s, m, d) for s in range(K)]
    W = torch.tensor(np.stack([w for w, _ in inits]), device=device, dtype=dtype)
    v = torch.tensor(np.stack([v for _, v in inits]), device=device, dtype=dtype)
    return X, y, W, v


def _time_gd(step, W: torch.Tensor, v: torch.Tensor, steps: int, device) -> float:
    """Seconds per model-step of ``steps`` GD steps (η = 1) with a step function of the TwoLayerStep contract."""

    def run() -> None:
        for _ in range(steps):
            _, _, gW, gv = step(W, v)
            W.sub_(gW)
            v.sub_(gv)

    return _time(run, device, 1) / (steps * W.shape[0])


def bench_shipped(K: int, n: int, d: int, m: int, steps: int, device, dtype) -> float:
    act = get_activation("erf")
    X, y, W, v = make_problem(K, n, d, m, device, dtype)
    return _time_gd(nets.TwoLayerStep(act, X, y, True, True), W, v, steps, device)


def bench_fused(K: int, n: int, d: int, m: int, steps: int, device, dtype, **knobs) -> float:
    act = get_activation("erf")
    X, y, W, v = make_problem(K, n, d, m, device, dtype)
    return _time_gd(fused.FusedTwoLayerStep(act, X, y, True, True, **knobs), W, v, steps, device)


def check_fused(K: int, n: int, d: int, m: int, device, dtype) -> dict[str, Any]:
    """max |fused − shipped| / max |shipped| for loss, f, ∇_W, ∇_v, one step on the benchmark problem."""
    act = get_activation("erf")
    X, y, W, v = make_problem(K, n, d, m, device, dtype)
    g = torch.Generator().manual_seed(1)
    v = v + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64).to(device, dtype)
    expected = nets.TwoLayerStep(act, X, y, True, True)(W, v)
    step = fused.FusedTwoLayerStep(act, X, y, True, True)
    actual = step(W, v)
    rel_err = {}
    for name, a, e in zip(("loss", "f", "gW", "gv"), actual, expected, strict=True):
        scale = e.abs().max().item()
        rel_err[name] = (a - e).abs().max().item() / scale if scale > 0 else (a - e).abs().max().item()
    worst = max(rel_err.values())
    return {"rel_err": rel_err, "tolerance": FUSED_TOL, "ok": bool(worst <= FUSED_TOL), "kernel": step.kernel_info()}


FUSED_TOL = 1e-4  # fp32 sums over n = 20,000 rows in another order: ~1e-6 expected
FUSED_SWEEP = [{"block_m": bm, "num_warps": w} for bm in (16, 32, 64) for w in (4, 8)]
FUSED_SWEEP.append({"block_m": 32, "num_warps": 8, "input_precision": "tf32x3"})  # not exact fp32: speed only


def _gd_functional(W: torch.Tensor, v: torch.Tensor, X: torch.Tensor, y: torch.Tensor):
    """One GD step (η = 1, erf) in plain tensor ops, the same equations as TwoLayerStep, for torch.compile."""
    n, d, m = X.shape[-2], X.shape[-1], W.shape[-2]
    Z = torch.matmul(X, W.transpose(-1, -2)) * (1.0 / math.sqrt(d))
    H = torch.erf(Z)
    f = torch.matmul(H, v.unsqueeze(-1)).squeeze(-1) * (1.0 / math.sqrt(m))
    r = f - y
    scale = 1.0 / (n * math.sqrt(m))
    gv = torch.matmul(r.unsqueeze(-2), H).squeeze(-2) * scale
    G = (2.0 / math.sqrt(math.pi)) * torch.exp(-Z * Z)
    rX = X * (r * (scale / math.sqrt(d))).unsqueeze(-1)
    gW = torch.matmul(rX.transpose(-1, -2), G).transpose(-1, -2) * v.unsqueeze(-1)
    return W - gW, v - gv


def bench_compiled(K: int, n: int, d: int, m: int, steps: int, device, dtype, how: str) -> float | None:
    if device.type != "cuda":
        return None
    act = get_activation("erf")
    X, y, W, v = make_problem(K, n, d, m, device, dtype)
    if how == "inductor":
        fn = torch.compile(_gd_functional, mode="max-autotune-no-cudagraphs", dynamic=False)
        state = [W, v]

        def run() -> None:
            for _ in range(steps):
                state[0], state[1] = fn(state[0], state[1], X, y)

        return _time(run, device, 1) / (steps * K)

    step = nets.TwoLayerStep(act, X, y, True, True)

    def gd() -> None:
        _, _, gW, gv = step(W, v)
        W.sub_(gW)
        v.sub_(gv)

    side = torch.cuda.Stream(device)  # warm-up (buffers, cuBLAS workspaces) off the capturing stream
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(2):
            gd()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        gd()

    def run() -> None:
        for _ in range(steps):
            graph.replay()

    return _time(run, device, 1) / (steps * K)


def bench_naive(K: int, n: int, d: int, m: int, steps: int, device, dtype) -> float:
    X, y, W, v = make_problem(K, n, d, m, device, dtype)

    def run() -> None:
        for k in range(K):  # one seed at a time
            Wk, vk = W[k].clone().requires_grad_(True), v[k].clone().requires_grad_(True)
            for _ in range(steps):
                f = torch.erf(X[k] @ Wk.T / math.sqrt(d)) @ vk / math.sqrt(m)
                loss = 0.5 * torch.mean((f - y[k]) ** 2)
                gW, gv = torch.autograd.grad(loss, [Wk, vk])
                with torch.no_grad():
                    Wk -= gW
                    vk -= gv

    return _time(run, device, 1) / (steps * K)


def bench_jax(K: int, n: int, d: int, m: int, steps: int) -> float | None:
    try:
        import jax
        import jax.numpy as jnp
    except Exception:  # any import failure means "no JAX reference here"
        return None
    X, y, W, v = (jnp.asarray(a.cpu().numpy()) for a in make_problem(K, n, d, m, torch.device("cpu"),
                                                                        torch.float32))

    def loss(params, x, t):
        w, u = params
        z = jnp.matmul(x, w.T, precision="highest") / math.sqrt(d)
        f = jnp.matmul(jax.scipy.special.erf(z), u, precision="highest") / math.sqrt(m)
        return 0.5 * jnp.mean((f - t) ** 2)

    def train(params, x, t):
        def body(p, _):
            g = jax.grad(loss)(p, x, t)
            return (p[0] - g[0], p[1] - g[1]), None

        return jax.lax.scan(body, params, None, length=steps)[0]

    fn = jax.jit(jax.vmap(train))
    fn((W, v), X, y)[0].block_until_ready()
    start = time.perf_counter()
    fn((W, v), X, y)[0].block_until_ready()
    return (time.perf_counter() - start) / (steps * K)


def check_args(args: argparse.Namespace) -> None:
    """Refuse, before any work, sizes out of range and an --out that cannot be written (exit status 2)."""
    for flag, value, lo in (("--n", args.n, 1), ("--d", args.d, 1), ("--width", args.width, 2),
                            ("--steps", args.steps, 1)):
        if value < lo:
            raise ConfigError(f"{flag} {value}: must be an integer ≥ {lo}")
    if args.width % 2:
        raise ConfigError(f"--width {args.width} is odd; the symmetric initialisation pairs neurons: give it even")
    if bad := [k for k in args.ks if k < 1]:
        raise ConfigError(f"--ks {' '.join(map(str, bad))}: seed-batch sizes must be integers ≥ 1")
    if len(set(args.ks)) != len(args.ks):
        raise ConfigError(f"--ks {' '.join(map(str, args.ks))}: give each batch size once")
    if args.device not in DEVICES:
        raise ConfigError(f"--device {args.device!r} is unknown; valid: {', '.join(DEVICES)}")
    resolve_device(args.device)
    cli.probe_file(args.out, "--out")


@cli.command(hint=None)
def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--d", type=int, default=50)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--skip", nargs="*", default=[], choices=("naive", "shipped", "jax", "fused", "compiled"))
    p.add_argument("--compile-with", choices=("cudagraph", "inductor"), default="cudagraph")
    p.add_argument("--fused-sweep", action="store_true", help="also time the fused step at a few block sizes")
    p.add_argument("--out", type=Path, default=Path("benchmarks/last.json"))
    args = p.parse_args(argv)
    check_args(args)
    device = resolve_device(args.device)
    set_exact_fp32()
    dtype = getattr(torch, args.dtype)
    rates = measured_rates(device, dtype)
    flops = 4 * args.n * args.width * args.d
    bytes_moved = 3 * args.n * args.width * torch.finfo(dtype).bits // 8
    floor = max(flops / rates["flops_per_s"], bytes_moved / rates["bytes_per_s"])
    rows: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    sweeps: dict[str, Any] = {}
    run_fused = "fused" not in args.skip and dtype == torch.float32 and device.type == "cuda"
    run_fused = run_fused and fused.fused_available(get_activation("erf"), device)
    for K in args.ks:
        timings = {}
        if "shipped" not in args.skip:
            timings["shipped"] = bench_shipped(K, args.n, args.d, args.width, args.steps, device, dtype)
        if "naive" not in args.skip:
            timings["naive"] = bench_naive(K, args.n, args.d, args.width, args.steps, device, dtype)
        if "jax" not in args.skip:
            timings["jax"] = bench_jax(K, args.n, args.d, args.width, args.steps)
        if run_fused:
            try:  # a kernel that fails to compile here is recorded, not fatal to the other rows
                checks[str(K)] = check_fused(K, args.n, args.d, args.width, device, dtype)
                if not checks[str(K)]["ok"]:
                    print(f"warning: fused step differs from shipped at K={K}: {checks[str(K)]['rel_err']}")
                timings["fused"] = bench_fused(K, args.n, args.d, args.width, args.steps, device, dtype)
            except Exception as err:
                checks[str(K)] = {"error": f"{type(err).__name__}: {err}"}
                print(f"warning: fused step failed at K={K}: {checks[str(K)]['error']}")
            if args.fused_sweep:
                sweeps[str(K)] = []
                for knobs in FUSED_SWEEP:
                    try:
                        sec = bench_fused(K, args.n, args.d, args.width, args.steps, device, dtype, **knobs)
                        sweeps[str(K)].append(knobs | {"us_per_model_step": 1e6 * sec})
                    except Exception as err:
                        sweeps[str(K)].append(knobs | {"error": f"{type(err).__name__}: {err}"})
        if "compiled" not in args.skip:
            timings["compiled"] = bench_compiled(K, args.n, args.d, args.width, args.steps, device, dtype,
                                                 args.compile_with)
        for impl, sec in timings.items():
            if sec is None:
                continue
            rows.append({"impl": impl, "K": K, "us_per_model_step": sec * 1e6, "ratio_to_floor": sec / floor,
                         "ratio_to_shipped": sec / timings["shipped"] if timings.get("shipped") else None})
    print(f"device {device}, {args.dtype}, n={args.n} d={args.d} m={args.width}; measured "
          f"{rates['flops_per_s'] / 1e9:.1f} GFLOP/s, {rates['bytes_per_s'] / 1e9:.1f} GB/s; "
          f"floor {floor * 1e6:.1f} µs/model-step")
    print(f"{'impl':>8} {'K':>4} {'µs/model-step':>14} {'× floor':>8} {'× shipped':>10}")
    for r in rows:
        rs = "" if r["ratio_to_shipped"] is None else f"{r['ratio_to_shipped']:.2f}"
        print(f"{r['impl']:>8} {r['K']:>4} {r['us_per_model_step']:>14.1f} {r['ratio_to_floor']:>8.2f} {rs:>10}")
    for K, check in checks.items():
        if "error" in check:
            continue
        errs = " ".join(f"{k} {e:.1e}" for k, e in check["rel_err"].items())
        verdict = "ok" if check["ok"] else "FAILED"
        print(f"fused vs shipped, K={K}: relative error {errs} ({verdict}); {check['kernel']}")
    for K, sweep in sweeps.items():
        for entry in sweep:
            knobs = ", ".join(f"{k} {v}" for k, v in entry.items() if k not in ("us_per_model_step", "error"))
            result = entry["error"] if "error" in entry else f"{entry['us_per_model_step']:.1f} µs/model-step"
            print(f"fused sweep K={K}: {knobs}: {result}")
    record = {"config": vars(args) | {"out": str(args.out)}, "environment": environment(device, args.dtype),
              "rates": rates, "floor_s": floor, "rows": rows, "fused_check": checks, "fused_sweep": sweeps}
    write_json_atomic(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
