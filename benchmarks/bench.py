"""Speed of one full-batch GD step of the two-layer net (workload W1 of the speed issue), per model.

Usage:
    python benchmarks/bench.py                       # W1 (n = 20,000, d = 50, m = 256), K ∈ {1, 16, 64}
    python benchmarks/bench.py --n 4000 --ks 1 4     # a smaller CPU-sized table
    python benchmarks/bench.py --ks 1 --repeats 7 --fast-sweep --out benchmarks/cpu.json   # the CPU table
    python benchmarks/bench.py --device cuda --fused-autotune --out $OUT/gpu.json          # the GPU table

Implementations, all erf, both layers, η = 1, fp32 (TF32 off) unless --dtype says otherwise:
- ``naive``    : one seed at a time, plain autograd on the eager module (a Python loop over seeds);
- ``reference``: :class:`earlylin.nets.two_layer.TwoLayerStep` on all K seeds at once (whole n×m matrices;
  the trainer's step before the fast paths, and still its ``--step reference``);
- ``shipped``  : the trainer's default step on this device (``--step auto``: ``fast`` on a CPU,
  ``reference`` on CUDA); the JSON's ``shipped_impl`` says which;
- ``fast``     : :class:`earlylin.nets.two_layer.BlockedTwoLayerStep`, blocks of rows kept in cache, shared
  among as many worker threads as torch has intra-op threads, each running single-threaded ops;
  ``fast_omp``: one worker, each op on torch's intra-op (OpenMP) threads (CPU only); ``fast_torch_phi``:
  ``fast`` with torch's erf, φ′ and readout instead of the compiled pass of earlylin.nets.native (CPU only; the
  same as ``fast`` where that pass is not built); ``--fast-sweep`` adds block sizes;
- ``jax``      : ``jit(vmap(lax.scan))`` of the same step at precision "highest", where JAX imports;
- ``fused``    : :class:`earlylin.nets.fused.FusedTwoLayerStep`, two Triton kernels with 3×TF32 products
  that never store an n×m matrix (CUDA with Triton only; ``--fused-autotune`` picks its tiles by
  timing). Before it is timed, its loss, f, ∇_W and ∇_v are compared with ``reference`` on the
  benchmark problem (v moved off the symmetric point, where f ≡ 0); the relative errors, the tiles and
  the kernels' registers/spills go into the JSON under ``fused_check``. ``fused_ieee``: fp32 products;
- ``compiled`` : CUDA: the ``reference`` GD step captured once as a CUDA graph and replayed
  (``--compile-with cudagraph``) or the step written functionally under ``torch.compile``
  (``--compile-with inductor``); CPU: that functional step under ``torch.compile`` (inductor's C++
  code), whose compile time goes into the JSON under ``compile_s``. Off unless named in ``--only``.

Each implementation is built and warmed up once per K; then ``--repeats`` rounds time ``--steps`` GD steps
of every implementation in turn (interleaved, so that a change in the machine's load hits all of them
alike) and the median round is reported. Printed per implementation and K: µs per model-step (wall
time / (steps·K)), the ratio to the floor, to ``reference`` and to ``jax`` (of the medians, and the median of
the per-round ratios: "paired", each round's two timings under the same load). The floor is computed from
this device's *measured* rates, not a constant: max(FLOPs / measured matmul FLOP/s, bytes / measured
copy bandwidth), with 4·n·m·d FLOPs (the two GEMMs) and 3·n·m·bytes (one write, two reads of the n×m
hidden activation) per model-step. Writes a JSON with every number and the environment. Nothing here
is asserted: speed is measured, not tested.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earlylin import cli
from earlylin.activations import get_activation
from earlylin.errors import ConfigError
from earlylin.nets import deep, fused, native, providers
from earlylin.nets import two_layer as nets
from earlylin.runtime.devices import DEVICES, exact_fp32, resolve_device
from earlylin.runtime.records import environment, write_json_atomic
from earlylin.training.autograd import autograd_step
from earlylin.training.batches import Batches


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


def measured_rates(device: torch.device, dtype: torch.dtype, n: int, d: int, m: int) -> dict[str, Any]:
    """This device's matmul FLOP/s on the benchmark's own two products (X Wᵀ: (n × d)·(d × m) and (r ⊙ X)ᵀ φ′:
    (d × n)·(n × m)) by each GEMM provider of the fast step (earlylin.nets.providers: torch, numpy; on CUDA
    torch), each with its library's own threads, the best provider's rate kept; its copy bandwidth (bytes/s);
    and the transcendental work of a step timed apart: erf and φ′ = (2/√π) e^{−z²} by torch (the reference
    step's functions) on n × m values each, and both in the fast step's compiled pass (earlylin.nets.native, one
    thread) where it is built. Best of 10 timings each (the machine's capability; on a shared machine a mean would
    measure the other processes)."""
    g = torch.Generator().manual_seed(0)
    X, Wt = (torch.randn(*s, generator=g).to(device, dtype) for s in ((n, d), (d, m)))
    Z, gw = torch.empty(n, m, device=device, dtype=dtype), torch.empty(d, m, device=device, dtype=dtype)
    gemms = {"torch": providers.GEMMS["torch"]} if device.type != "cpu" else providers.GEMMS
    gemm_flops = {}
    for name, p in gemms.items():
        t = min(_time(lambda p=p: (p.mm(X, Wt, Z), p.mm(X.transpose(0, 1), Z, gw)), device, 1) for _ in range(10))
        gemm_flops[name] = 4 * n * d * m / t
    big = torch.empty(64 * 2**20 // 4, device=device, dtype=torch.float32)
    out = torch.empty_like(big)
    t_cp = min(_time(lambda: out.copy_(big), device, 1) for _ in range(10))
    Z.copy_(torch.randn(n, m, generator=g))
    H, act = torch.empty_like(Z), get_activation("erf")
    erf_s = min(_time(lambda: act.phi_out(Z, H), device, 1) for _ in range(10))
    dphi_s = min(_time(lambda: act.dphi_out(Z, H), device, 1) for _ in range(10))
    native_s = None  # the compiled pass of the fast step (earlylin.nets.native): erf and φ′ together
    if device.type == "cpu" and dtype == torch.float32 and native.available():
        G = torch.empty_like(Z)
        native_s = min(_time(lambda: native.erf_dphi(Z, H, G), device, 1) for _ in range(10))
    best = max(gemm_flops, key=lambda name: gemm_flops[name])
    return {"flops_per_s": gemm_flops[best], "gemm_provider": best, "gemm_flops_per_s": gemm_flops,
            "bytes_per_s": 2 * big.numel() * 4 / t_cp, "erf_s": erf_s, "dphi_s": dphi_s, "native_erf_dphi_s": native_s,
            "transcendental_values": 2 * n * m}


def make_problem(K: int, n: int, d: int, m: int, device: torch.device, dtype: torch.dtype):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(K, n, d, generator=g, dtype=torch.float64).to(device, dtype)
    y = torch.sign(torch.randn(K, n, generator=g, dtype=torch.float64)).to(device, dtype)
    inits = [nets.symmetric_init(s, m, d) for s in range(K)]
    W = torch.tensor(np.stack([w for w, _ in inits]), device=device, dtype=dtype)
    v = torch.tensor(np.stack([v for _, v in inits]), device=device, dtype=dtype)
    return X, y, W, v


Runner = Callable[[], None]  # runs ``steps`` GD steps of one implementation on its own copy of the problem


def _step_runner(step, W: torch.Tensor, v: torch.Tensor, steps: int, device: torch.device) -> Runner:
    """GD (η = 1) with a step function of the TwoLayerStep contract, warmed up once."""

    def run() -> None:
        for _ in range(steps):
            _, _, gW, gv = step(W, v)
            W.sub_(gW)
            v.sub_(gv)

    run()
    _sync(device)
    return run


def build_step(impl: str, K: int, n: int, d: int, m: int, steps: int, device, dtype, **knobs) -> Runner:
    """``reference``, ``shipped`` (the trainer's ``--step auto``), ``fast`` / ``fast_omp`` / ``fast_torch_phi`` or
    ``fused``."""
    act = get_activation("erf")
    X, y, W, v = make_problem(K, n, d, m, device, dtype)
    if impl == "fused":
        step = fused.FusedTwoLayerStep(act, X, y, True, True, **knobs)
    elif impl in ("fast", "fast_omp", "fast_torch_phi"):
        step = nets.BlockedTwoLayerStep(act, X, y, True, True, threads=1 if impl == "fast_omp" else None,
                                        phi="torch" if impl == "fast_torch_phi" else None, **knobs)
    else:
        step = nets.make_step("auto" if impl == "shipped" else "reference", act, X, y, True, True)
    return _step_runner(step, W, v, steps, device)


def check_fused(K: int, n: int, d: int, m: int, device, dtype, **knobs) -> dict[str, Any]:
    """max |fused − reference| / max |reference| for loss, f, ∇_W, ∇_v, one step on the benchmark problem."""
    act = get_activation("erf")
    X, y, W, v = make_problem(K, n, d, m, device, dtype)
    g = torch.Generator().manual_seed(1)
    v = v + 0.1 * torch.randn(v.shape, generator=g, dtype=torch.float64).to(device, dtype)
    expected = nets.TwoLayerStep(act, X, y, True, True)(W, v)
    step = fused.FusedTwoLayerStep(act, X, y, True, True, **knobs)
    actual = step(W, v)
    rel_err = {}
    for name, a, e in zip(("loss", "f", "gW", "gv"), actual, expected, strict=True):
        scale = e.abs().max().item()
        rel_err[name] = (a - e).abs().max().item() / scale if scale > 0 else (a - e).abs().max().item()
    worst = max(rel_err.values())
    return {"rel_err": rel_err, "tolerance": FUSED_TOL, "ok": bool(worst <= FUSED_TOL), "kernel": step.kernel_info()}


FUSED_TOL = 1e-4  # fp32 sums over n = 20,000 rows in another order: ~1e-6 expected
FAST_SWEEP = (512, 1024, 4096)  # --fast-sweep: block sizes besides the default (2,048 rows at m = 256)


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


def build_compiled(K: int, n: int, d: int, m: int, steps: int, device, dtype, how: str,
                   info: dict[str, Any]) -> Runner:
    """The compiled step (see the module docstring); the first call's wall time goes to info["compile_s"]."""
    X, y, W, v = make_problem(K, n, d, m, device, dtype)
    if how == "inductor" or device.type == "cpu":
        mode = "max-autotune-no-cudagraphs" if device.type == "cuda" else None
        fn = torch.compile(_gd_functional, mode=mode, dynamic=False)
        state = [W, v]
        start = time.perf_counter()
        state[0], state[1] = fn(state[0], state[1], X, y)
        _sync(device)
        info["compile_s"] = time.perf_counter() - start

        def run() -> None:
            for _ in range(steps):
                state[0], state[1] = fn(state[0], state[1], X, y)

        return run

    step = nets.TwoLayerStep(get_activation("erf"), X, y, True, True)

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

    def run_graph() -> None:
        for _ in range(steps):
            graph.replay()

    return run_graph


def build_naive(K: int, n: int, d: int, m: int, steps: int, device, dtype) -> Runner:
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

    run()
    return run


def build_jax(K: int, n: int, d: int, m: int, steps: int) -> Runner | None:
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

    def run() -> None:
        fn((W, v), X, y)[0].block_until_ready()

    run()  # compilation
    return run


IMPLS = ("naive", "reference", "shipped", "fast", "fast_omp", "fast_torch_phi", "jax", "fused", "fused_ieee",
         "compiled")
DEFAULT_SKIP = ("compiled",)  # its compilation takes minutes; name it in --only to time it


def build_all(K: int, args: argparse.Namespace, device, dtype, impls: list[str],
              extras: dict[str, Any]) -> dict[str, Runner]:
    """A warmed-up runner per implementation (fast-sweep variants included); failures are recorded."""
    size = (K, args.n, args.d, args.width, args.steps)
    runners: dict[str, Runner] = {}
    builders: dict[str, Callable[[], Runner | None]] = {
        "naive": lambda: build_naive(*size, device, dtype),
        "jax": lambda: build_jax(*size),
        "compiled": lambda: build_compiled(*size, device, dtype, args.compile_with,
                                           extras.setdefault("compiled", {}).setdefault(str(K), {})),
    }
    tune: dict[str, Any] = {"autotune": True} if args.fused_autotune else {}
    kernel = extras["fused_check"].get(str(K), {}).get("kernel")
    if args.fused_autotune and kernel:  # the tiles the check's autotuning chose: tune once per K
        tune = {"block_m": kernel["block_m"], "block_n": kernel["block_n"], "num_warps": kernel["num_warps"],
                "splits": kernel["splits"]}
    for impl in impls:
        if impl in builders:
            continue
        knobs = {"input_precision": "ieee"} if impl == "fused_ieee" else tune if impl == "fused" else {}
        name = "fused" if impl.startswith("fused") else impl
        builders[impl] = lambda name=name, knobs=knobs: build_step(name, *size, device, dtype, **knobs)
    if "fast" in impls and args.fast_sweep:
        for rows in FAST_SWEEP:
            builders[f"fast_b{rows}"] = lambda rows=rows: build_step("fast", *size, device, dtype, block_rows=rows)
            impls = [*impls, f"fast_b{rows}"]
    for impl in impls:
        try:
            runner = builders[impl]()
        except Exception as err:  # an implementation that fails here is recorded, not fatal to the others
            extras.setdefault("errors", {})[f"{impl} K={K}"] = f"{type(err).__name__}: {err}"[:300]
            print(f"warning: {impl} failed at K={K}: {type(err).__name__}: {err}")
            continue
        if runner is not None:
            runners[impl] = runner
    return runners


def time_interleaved(runners: dict[str, Runner], device, repeats: int) -> dict[str, list[float]]:
    """Seconds of each runner's ``steps`` GD steps, ``repeats`` rounds, the runners in turn each round.
    JAX goes last in a round and every run is followed by a short untimed pause: XLA's CPU threads
    spin for a while after their work, which would slow whatever ran next."""
    order = sorted(runners, key=lambda impl: impl == "jax")
    times: dict[str, list[float]] = {impl: [] for impl in runners}
    for _ in range(repeats):
        for impl in order:
            _sync(device)
            start = time.perf_counter()
            runners[impl]()
            _sync(device)
            times[impl].append(time.perf_counter() - start)
            if device.type == "cpu":
                time.sleep(0.2)
    return times


def time_sgd(K: int, args: argparse.Namespace, device, dtype) -> dict[str, Any]:
    """An SGD step on a batch of ``args.sgd_batch`` against a GD step on all n points, interleaved in one run: the
    autograd step (earlylin.training.autograd) of earlylin.nets.deep, FC with one hidden layer of ``width`` (the
    benchmark's shapes), which the CIFAR nets, a user's network and the synthetic nets outside the paper's training
    train with (docs/theory.md §3.3)."""
    spec = deep.DeepSpec(arch="fc", depth=1, width=args.width, in_shape=(args.d, 1, 1))
    g = torch.Generator(device="cpu").manual_seed(0)
    X = torch.randn(K, args.n, args.d, 1, 1, generator=g).to(device=device, dtype=dtype)
    y = torch.sign(torch.randn(K, args.n, generator=g)).to(device=device, dtype=dtype)
    params = deep.init_params(spec, list(range(K)), dtype, device)
    act = get_activation("erf")
    step = autograd_step(lambda ps, A: deep.forward(spec, act, ps, A), X, y, "squared", [True] * len(params))
    batches = Batches(args.n, args.sgd_batch, 0)
    runners = {"gd_step": lambda: [step(params) for _ in range(args.steps)],
               "sgd_step": lambda: [step(params, batches.indices(t)) for t in range(args.steps)]}
    times = time_interleaved(runners, device, args.repeats)
    med = {k: float(np.median(v)) / (args.steps * K) for k, v in times.items()}
    return {"K": K, "batch_size": args.sgd_batch, "us_per_model_step": {k: 1e6 * v for k, v in med.items()},
            "sgd_over_gd": med["sgd_step"] / med["gd_step"], "batch_over_n": args.sgd_batch / args.n}


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
    if args.repeats < 1:
        raise ConfigError(f"--repeats {args.repeats}: must be an integer ≥ 1")
    if args.sgd_batch is not None and not 1 <= args.sgd_batch <= args.n:
        raise ConfigError(f"--sgd-batch {args.sgd_batch}: must be an integer in [1, n = {args.n}]")
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
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (interleaved); the median is reported")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--skip", nargs="*", default=[], choices=IMPLS)
    p.add_argument("--only", nargs="*", default=None, choices=IMPLS, help="time these implementations only")
    p.add_argument("--compile-with", choices=("cudagraph", "inductor"), default="cudagraph")
    p.add_argument("--fast-sweep", action="store_true", help="also time the fast step at other block sizes")
    p.add_argument("--fused-sweep", action="store_true", help="also time the fused step at each candidate tile")
    p.add_argument("--fused-autotune", action="store_true", help="the fused step picks its tiles by timing")
    p.add_argument("--sgd-batch", type=int, default=None,
                   help="also time an SGD step on a batch of this size against a GD step (autograd deep-net step)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/last.json"))
    args = p.parse_args(argv)
    check_args(args)
    device = resolve_device(args.device)
    with exact_fp32():  # fp32 means fp32, as in every run; torch's settings restored after
        dtype = getattr(torch, args.dtype)
        rates = measured_rates(device, dtype, args.n, args.d, args.width)
        flops = 4 * args.n * args.width * args.d
        bytes_moved = 3 * args.n * args.width * torch.finfo(dtype).bits // 8
        floor = max(flops / rates["flops_per_s"], bytes_moved / rates["bytes_per_s"])
        impls = list(args.only) if args.only is not None else [i for i in IMPLS if i not in DEFAULT_SKIP]
        impls = [i for i in impls if i not in args.skip]
        # on a CPU the fused step needs TRITON_INTERPRET=1
        if dtype != torch.float32 or not fused.fused_available(get_activation("erf"), device):
            impls = [i for i in impls if not i.startswith("fused")]
        if device.type != "cpu":
            impls = [i for i in impls if i not in ("fast_omp", "fast_torch_phi")]
        rows: list[dict[str, Any]] = []
        extras: dict[str, Any] = {"fused_check": {}, "fused_sweep": {}}
        for K in args.ks:
            if "fused" in impls:
                try:  # a kernel that fails to compile here is recorded, not fatal to the other rows
                    knobs = {"autotune": True} if args.fused_autotune else {}
                    check = extras["fused_check"][str(K)] = check_fused(K, args.n, args.d, args.width, device, dtype,
                                                                        **knobs)
                    if not check["ok"]:
                        print(f"warning: fused step differs from reference at K={K}: {check['rel_err']}")
                except Exception as err:
                    extras["fused_check"][str(K)] = {"error": f"{type(err).__name__}: {err}"}
                    print(f"warning: fused step failed at K={K}: {extras['fused_check'][str(K)]['error']}")
            runners = build_all(K, args, device, dtype, impls, extras)
            times = time_interleaved(runners, device, args.repeats)
            if args.fused_sweep and "fused" in runners:
                extras["fused_sweep"][str(K)] = sweep_fused(K, args, device, dtype)
            med = {impl: float(np.median(t)) / (args.steps * K) for impl, t in times.items()}
            for impl, sec in med.items():
                rows.append({"impl": impl, "K": K, "us_per_model_step": sec * 1e6, "ratio_to_floor": sec / floor,
                             "ratio_to_reference": sec / med["reference"] if "reference" in med else None,
                             "ratio_to_jax": sec / med["jax"] if "jax" in med else None,
                             "ratio_to_jax_paired": (float(np.median(np.array(times[impl]) / np.array(times["jax"])))
                                                     if "jax" in times else None),
                             "us_per_model_step_rounds": [1e6 * t / (args.steps * K) for t in times[impl]]})
        shipped_impl = nets.resolve_step("auto", device)
        print(f"device {device}, {args.dtype}, n={args.n} d={args.d} m={args.width}, "
              f"{torch.get_num_threads()} threads; "
              f"{providers.cpu_model() if device.type == 'cpu' else torch.cuda.get_device_name(device)}; measured "
              f"{rates['flops_per_s'] / 1e9:.1f} GFLOP/s ({rates['gemm_provider']}, the best of "
              + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in rates["gemm_flops_per_s"].items())
              + f"), {rates['bytes_per_s'] / 1e9:.1f} GB/s; floor "
              f"{floor * 1e6:.1f} µs/model-step; medians of {args.repeats} interleaved rounds of {args.steps} steps; "
              f"shipped = {shipped_impl}")
        compiled = ("" if rates["native_erf_dphi_s"] is None else
                    f"; both in the fast step's compiled pass {rates['native_erf_dphi_s'] * 1e6:.0f} µs (1 thread)")
        print(f"transcendentals apart (not in the floor), n·m = {args.n * args.width:,} values each: erf "
              f"{rates['erf_s'] * 1e6:.0f} µs, φ′ = (2/√π)e^(−z²) {rates['dphi_s'] * 1e6:.0f} µs per model-step "
              f"({torch.get_num_threads()} threads, torch){compiled}")
        print(f"{'impl':>14} {'K':>4} {'µs/model-step':>14} {'× floor':>8} {'× reference':>12} {'× jax':>7} "
              f"{'× jax, paired':>14}")
        for r in rows:
            ratios = [("" if r[k] is None else f"{r[k]:.2f}")
                      for k in ("ratio_to_reference", "ratio_to_jax", "ratio_to_jax_paired")]
            print(f"{r['impl']:>14} {r['K']:>4} {r['us_per_model_step']:>14.1f} {r['ratio_to_floor']:>8.2f} "
                  f"{ratios[0]:>12} {ratios[1]:>7} {ratios[2]:>14}")
        for K, check in extras["fused_check"].items():
            if "error" in check:
                continue
            errs = " ".join(f"{k} {e:.1e}" for k, e in check["rel_err"].items())
            verdict = "ok" if check["ok"] else "FAILED"
            print(f"fused vs reference, K={K}: relative error {errs} ({verdict}); {check['kernel']}")
        for K, info in extras.get("compiled", {}).items():
            if "compile_s" in info:
                print(f"compiled, K={K}: first call (compilation) {info['compile_s']:.1f} s")
        for K, sweep in extras["fused_sweep"].items():
            for entry in sweep:
                result = entry.get("error") or f"{entry['us_per_model_step']:.1f} µs/model-step"
                print(f"fused sweep K={K}: tiles {entry['tiles']}: {result}")
        if args.sgd_batch is not None:
            extras["sgd"] = [time_sgd(K, args, device, dtype) for K in args.ks]
            for e in extras["sgd"]:
                us = e["us_per_model_step"]
                print(f"sgd vs gd, K={e['K']}: batch {e['batch_size']} {us['sgd_step']:.1f} µs/model-step, all n "
                      f"{us['gd_step']:.1f}: ratio {e['sgd_over_gd']:.3f} (b/n = {e['batch_over_n']:.4f})")
        X1, y1, *_ = make_problem(1, args.n, args.d, args.width, device, dtype)  # whose products the shipped step uses
        shipped = nets.fast_choices(nets.make_step("auto", get_activation("erf"), X1, y1, True, True), args.width)
        print(f"shipped step's products: {shipped.get('gemm', 'torch')}; its erf and φ′: {shipped.get('phi', 'torch')}")
        env = environment(device, args.dtype, net_step=nets.step_info(shipped_impl, **shipped))
        env["cpu_model"] = providers.cpu_model()
        record = {"config": vars(args) | {"out": str(args.out)}, "environment": env, "shipped_impl": shipped_impl,
                  "rates": rates, "floor_s": floor, "rows": rows, **extras}
        write_json_atomic(args.out, record)
        print(f"wrote {args.out}")
        return 0


def sweep_fused(K: int, args: argparse.Namespace, device, dtype) -> list[dict[str, Any]]:
    """The fused step at each candidate tile (block_m, block_n, num_warps), median of --repeats rounds."""
    out: list[dict[str, Any]] = []
    for bm, bn, warps in fused.TUNE_CANDIDATES:
        entry: dict[str, Any] = {"tiles": [bm, bn, warps]}
        try:
            run = build_step("fused", K, args.n, args.d, args.width, args.steps, device, dtype, block_m=bm,
                             block_n=bn, num_warps=warps)
            sec = float(np.median(time_interleaved({"f": run}, device, args.repeats)["f"]))
            entry["us_per_model_step"] = 1e6 * sec / (args.steps * K)
        except Exception as err:
            entry["error"] = f"{type(err).__name__}: {err}"[:300]
        out.append(entry)
    return out


if __name__ == "__main__":
    cli.exit(main())
