"""Speed of one full-batch GD step of the two-layer net (workload W1 of the speed issue), per model.

Usage:
    python benchmarks/bench.py                       # W1 (n = 20,000, d = 50, m = 256), K ∈ {1, 16, 64}
    python benchmarks/bench.py --n 4000 --ks 1 4     # a smaller CPU-sized table
    python benchmarks/bench.py --device cuda --out benchmarks/h100.json

Implementations, all erf, both layers, η = 1, fp32 (TF32 off) unless --dtype says otherwise:
- ``naive``   : one seed at a time, plain autograd on the eager module (a Python loop over seeds);
- ``shipped`` : earlylin's trainer step (:class:`earlylin.nets.TwoLayerStep`) on all K seeds at once;
- ``jax``     : ``jit(vmap(lax.scan))`` of the same step at precision "highest", where JAX imports.

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

from earlylin import nets
from earlylin.activations import get_activation
from earlylin.config import resolve_device, set_exact_fp32
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


def bench_shipped(K: int, n: int, d: int, m: int, steps: int, device, dtype) -> float:
    act = get_activation("erf")
    X, y, W, v = make_problem(K, n, d, m, device, dtype)
    step = nets.TwoLayerStep(act, X, y, True, True)

    def run() -> None:
        for _ in range(steps):
            _, _, gW, gv = step(W, v)
            W.sub_(gW)
            v.sub_(gv)

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--d", type=int, default=50)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--skip", nargs="*", default=[], choices=("naive", "shipped", "jax"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/last.json"))
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    set_exact_fp32()
    dtype = getattr(torch, args.dtype)
    rates = measured_rates(device, dtype)
    flops = 4 * args.n * args.width * args.d
    bytes_moved = 3 * args.n * args.width * torch.finfo(dtype).bits // 8
    floor = max(flops / rates["flops_per_s"], bytes_moved / rates["bytes_per_s"])
    rows: list[dict[str, Any]] = []
    for K in args.ks:
        timings = {}
        if "shipped" not in args.skip:
            timings["shipped"] = bench_shipped(K, args.n, args.d, args.width, args.steps, device, dtype)
        if "naive" not in args.skip:
            timings["naive"] = bench_naive(K, args.n, args.d, args.width, args.steps, device, dtype)
        if "jax" not in args.skip:
            timings["jax"] = bench_jax(K, args.n, args.d, args.width, args.steps)
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
    record = {"config": vars(args) | {"out": str(args.out)}, "environment": environment(device, args.dtype),
              "rates": rates, "floor_s": floor, "rows": rows}
    write_json_atomic(args.out, record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
