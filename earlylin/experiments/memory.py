"""How much memory a run will need, and the check that refuses one that cannot fit, before any work.

:func:`estimate_bytes` counts what one run of a :class:`~earlylin.config.TwoLayerConfig`,
:class:`~earlylin.config.Cnn1dConfig` or :class:`~earlylin.config.CifarConfig` allocates, with all its
seeds trained as one batch (K = len(seeds)). It follows the code paths: the data (float64), the linear
models (float64: feature matrices, the eigenvectors of their p×p covariances, the V_lin basis), the
network (the config's dtype: inputs, weights, gradients, the step's buffers, a checkpoint's copies when the
cache is on) and the temporaries. The peak is counted as what the run keeps, plus the largest temporary of
the set-up (features, eigendecompositions, exact NTK kernels, empirical NTK), plus the larger of the
training step's and a recorded step's temporaries: the set-up's temporaries are freed before training, but
the allocator keeps blocks below its mmap threshold (glibc: up to 32 MiB) resident, so they are not counted
as reusable. The estimate errs on the generous side; tests/experiments/test_memory.py checks it against the peak RSS of
real runs. :func:`check_fits` turns an estimate over the limit into a
:class:`~earlylin.errors.ConfigError` that names the sizes, the estimate, the limit and what to change.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

import torch

from earlylin.config import CIFAR_D, CifarConfig, Cnn1dConfig, TwoLayerConfig, paper_training
from earlylin.errors import ConfigError, arg
from earlylin.runtime.devices import DTYPES

F64 = 8  # bytes of a float64: data and linear models are float64 whatever the network's dtype
GIB = 2**30
# library code paged in by the first kernels, thread pools and arenas, quadrature tables, recorded rows
# (a two-layer run at d = 5, n = 20 raises the peak RSS by ≈ 55 MB)
OVERHEAD = 128 * 2**20
# CIFAR loading, when the pooled cache misses: the 12,000 uint8 images, three float64 copies of the pooled
# set (pooled, standardised, cached) and one 1,000-image float64 pooling block with its reshaped mean
CIFAR_LOAD = 12_000 * 3072 + 3 * F64 * 12_000 * CIFAR_D + 2 * F64 * 1000 * 3072
# the derived CNN coefficients (earlylin.ntk.jets): bivariate quadrature in blocks of ≤ 2·10⁶ points, about a
# dozen float64 arrays of them alive at once (and, each below glibc's mmap threshold, resident afterwards)
CNN_COEFFS = 12 * F64 * 2_000_000
JACREV_IMPORT = 128 * 2**20  # torch.func.jacrev's first call imports torch._dynamo (≈ 90 MB)
PAIR_BLOCK = 1_000_000  # input pairs per block of earlylin.ntk.exact.fc_kernel


def _device_type(config: Any, device: torch.device | str | None) -> str:
    if device is not None:
        return torch.device(device).type
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(config.device)


def _linear(K: int, n: int, nt: int, kept: list[int], fits: list[int]) -> tuple[int, int]:
    """(kept, temporary) bytes of :class:`earlylin.experiments.comparison.LinearComparison`: train and test
    feature matrices of the widths ``kept``, one closed-form trajectory per width in ``fits`` (f^lin first)."""
    p = fits[0]
    keep = F64 * K * ((n + nt) * sum(kept)  # Ψ and Ψ_test of every model
                      + sum(q * q for q in fits)  # eigenvectors U (p×p) of each trajectory
                      + nt * p)  # Q of the V_lin split (thin SVD of f^lin's Ψ_test)
    temp = F64 * K * max(6 * max(fits) ** 2,  # ΨᵀΨ, /n, eigh's copy, U and its 2p² workspace
                         3 * nt * p + 5 * p * p)  # SVD of Ψ_test: its copy, U, the masked Q; gesdd workspace
    return keep, temp


def _ablations(cfg: TwoLayerConfig, p: int, norm_cols: int) -> list[int]:
    """Widths of the f^lin ablations (Fig 2) that are not f^lin itself: dropping the norm columns or the constants."""
    from earlylin.activations import gaussian_constants, get_activation
    from earlylin.linear.features import ablation_is_lin

    if cfg.activation.startswith("custom:"):
        return [p - norm_cols, p - 2]  # unknown constants: count both
    consts = gaussian_constants(get_activation(cfg.activation))
    drops = {"norm": p - norm_cols, "const": p - (2 if cfg.layers == "both" else 1)}
    nu, nu2 = consts.nu(), consts.nu2()
    return [w for drop, w in drops.items() if not ablation_is_lin(consts, nu, cfg.layers, drop, nu2=nu2)]


def _two_layer(cfg: TwoLayerConfig, dev: str) -> int:
    from earlylin.nets.two_layer import default_block_rows, resolve_step

    K, n, nt, d, m, b = len(cfg.seeds), cfg.n, cfg.n_test, cfg.d, cfg.width, DTYPES[cfg.dtype].itemsize
    train_W, train_v = cfg.layers in ("first", "both"), cfg.layers in ("second", "both")
    p = {"first": d + 1, "second": d + 2, "both": 2 * d + 3}[cfg.layers]
    stripped = 2 * d if cfg.layers == "both" else d
    widths = [p, stripped, p, *_ablations(cfg, p, 1)]  # f^lin, stripped, finite-width, ablations
    data = F64 * K * (n + nt) * (d + 1)  # X, Xt, y, yt
    stacking = 2 * data + F64 * n * d  # per-seed arrays and their stacked copy; one x̄ draw before Σ^½
    kept, lin_tmp = _linear(K, n, nt, widths, widths)
    lin_tmp += F64 * K * (n * (p + 3 * d) + 3 * m * (d + 1))  # x-part temporaries; W(0) (draws, stack, B = [1, W])
    net = b * K * ((n + nt) * (d + 1) * (b != F64)  # inputs cast to the dtype (float64 shares the data)
                   + 6 * m * (d + 1))  # W, v; their gradients; W/√d; a checkpoint's copy, torch.save's buffer, bytes
    record = 3 * b * K * nt * m  # test outputs: XtWᵀ/√d, φ of it and φ's temporary (ReLU: a·z)
    step = resolve_step(cfg.step, dev)
    if not train_W:  # second layer alone: H = φ(XWᵀ/√d) computed once and kept; XWᵀ/√d and φ's temporary
        keep, temp = b * K * n * m, 2 * b * K * n * m
    elif step == "reference":  # whole K×n×m buffers Z, φ(Z), φ′(Z); r⊙X; ∇_W and its transpose
        keep, temp = 3 * b * K * n * m, b * K * (n * d + 2 * m * d)
    elif step == "fast":  # per-thread row-block tiles Z_b, φ(Z_b), r_b⊙X_b; every block's partial gradients
        rows = min(n, default_block_rows(m))
        blocks = -(-n // rows)
        keep = b * (torch.get_num_threads() * rows * (2 * m + d) + K * blocks * m * (d * train_W + train_v))
        temp = b * K * (3 * d * m + 2 * n)  # Wᵀ/√d, the ordered sum of the partials, ∇_W; f, r
    else:  # fused (CUDA): S split partial gradients per seed, S ≤ 2·SMs
        sms = torch.cuda.get_device_properties(0).multi_processor_count if torch.cuda.is_available() else 1
        keep, temp = 0, b * K * (min(-(-n // 64), 2 * sms) * m * (d + 1) + m * d + 2 * n)
    if cfg.ntk_lin:  # θ-linearised net: H₀ (second layer), G₀·diag(v₀) and the ΔZ buffer (first); θ₀, own θ
        keep += b * K * (n * m * (train_v + 2 * train_W) + 2 * m * (d + 1))
        temp = max(temp, (2 + train_W) * b * K * n * m)  # building them: Z₀, XW₀ᵀ, φ′(Z₀)'s temporaries
        record += 7 * b * K * nt * m  # f^ntk(Xt): Z₀, φ(Z₀), ΔZ, φ′(Z₀) and two temporaries, the product
    return max(stacking, data + kept + lin_tmp + net + keep + max(temp, record))


def _cnn1d(cfg: Cnn1dConfig) -> int:
    K, n, nt, d, m, b = len(cfg.seeds), cfg.n, cfg.n_test, cfg.d, cfg.width, DTYPES[cfg.dtype].itemsize
    q, train_W = cfg.filter_size, cfg.layers in ("first", "both")
    p = {"first": d + 1, "second": 2 * d + 1, "both": 3 * d + 2}[cfg.layers]
    stripped = 2 * d if cfg.layers == "both" else d
    widths = [p, stripped, *_ablations(cfg, p, d)]  # f^lin, stripped, ablations (the d patch-norm columns)
    data = F64 * K * (n + nt) * (d + 1)  # X, Xt, y, yt
    stacking = 2 * data + F64 * n * d  # per-seed arrays and their stacked copy; one x̄ draw before Σ^½
    kept, lin_tmp = _linear(K, n, nt, widths, widths)
    lin_tmp += F64 * K * n * (d * q + p + 3 * d)  # patches x_[p] (for the patch norms), x-part temporaries
    net = b * K * ((n + nt) * (d + 1) * (b != F64)  # inputs cast to the dtype
                   + 5 * m * (q + d)  # W, v and their gradients; a checkpoint (copy, torch.save's buffer, bytes)
                   + n * d * q)  # patches of the training inputs, kept by the step
    if train_W:  # Z, φ(Z), φ′(Z) (with its temporaries) and its products with v and r
        keep, temp = 0, 6 * b * K * n * d * m
    else:  # φ(Z) computed once and kept; Z and φ's temporary (ReLU: a·z) while it is made
        keep, temp = b * K * n * d * m, 2 * b * K * n * d * m
    record = b * K * nt * d * (q + 3 * m)  # test outputs: patches, Z, φ(Z) and φ's temporary
    return max(stacking, data + kept + lin_tmp + net + keep + max(temp, record))


def _cifar(cfg: CifarConfig) -> int:
    from earlylin.nets.deep import DeepSpec

    K, n, nt, N, L, b = len(cfg.seeds), cfg.n, cfg.n_test, cfg.width, cfg.depth, DTYPES[cfg.dtype].itemsize
    d, P, C = CIFAR_D, 64, 3  # pooled 3×8×8 images
    shapes = DeepSpec(cfg.arch, L, N, cfg.kernel_size).shapes()
    weights = sum(math.prod(s) for s in shapes)  # one copy of the network
    units = N if cfg.arch == "fc" else N * P  # hidden activations per image per copy and layer
    data = F64 * (K + 1) * (n + nt) * (d + 1)  # the loaded images and labels; X, Xt, y, yt per seed
    net = (b * K * 2 * (5 * weights + (n + nt) * d * (b != F64))  # weights, gradients, a checkpoint (×3); inputs
           + F64 * K * 2 * 2 * max(math.prod(s) for s in shapes))  # float64 draws of the largest layer, doubled
    # autograd's graph (each layer's pre-activation and φ) and backward's gradients, in layer-sized activations per
    # image and copy: measured 10 (FC) and 12 (CNN) at depth 2, 15 and 16–22 at depth 4 (conv buffers)
    train = b * K * 2 * n * units * (3 * L + 5 if cfg.arch == "fc" else 5 * L + 8)
    record = 3 * b * K * 2 * nt * units  # test outputs, no graph: a layer's input, output and φ
    coef = CNN_COEFFS if cfg.arch == "cnn" else 0  # the derived CNN coefficients' quadrature (stays resident)
    p = d + 2 if cfg.arch == "fc" or cfg.linear == "fitted" else d + 1 + P  # [x-part ; g(x) ; norm columns]
    kept, lin_tmp = _linear(K, n, nt, [p, d] if cfg.linear == "fitted" else [p], [p, d])  # stripped: a view
    lin_tmp += F64 * K * n * 3 * d  # x-part temporaries
    if cfg.linear == "fitted":  # empirical NTK of one network on n_fit images by torch.func.jacrev
        f, widest = cfg.n_fit, max(math.prod(s) for s in shapes)
        jac = JACREV_IMPORT + b * (2 * 2 * weights  # the fitted network's weights (both copies)
                                   + 2 * f * units * (2 * L + 5)  # its forward graph on n_fit images
                                   + (L + 4) * f * 2 * f * units  # vmapped backward: every output's layer gradients
                                   + 3 * f * 2 * widest  # one weight tensor's Jacobian, batched products, reshape
                                   + 2 * f * f)  # Θ and JJᵀ
        lin_tmp = max(lin_tmp, jac, F64 * (2 * f * f + 9 * f * f))  # least squares on the f(f−1)/2 off-diagonal pairs
    if cfg.ntk_model:  # kernel GD on the exact infinite-width NTK: (n+n_test)×n kernels, n×n eigh
        kept += F64 * (n * n + nt * n + K * n * n)  # kernel features of train and test; the trajectory's U
        pairs, cross = n * (n + 1) // 2, nt * n
        if cfg.arch == "fc":  # pair indices, values of NNGP and NTK; ρ; both filled matrices; a block
            kernel = F64 * max(4 * pairs + 3 * n * n + 15 * min(pairs, PAIR_BLOCK),
                               n * n + 7 * cross + 15 * min(cross, PAIR_BLOCK))
        else:  # per pair: the gathered pixels and their product, or the recursion's ~14 per-pixel arrays; indices
            per_pair = max(3 * P * C + 2 * P, 14 * P) + 4
            kernel = F64 * max(pairs * per_pair + 3 * n * n, n * n + cross * per_pair)
        eig = F64 * max(5 * n * n + 3 * nt * n,  # eigh of k(X, X) beside both kernels; Ψ = UΛ^½, Ψ* = k(X*, X)UΛ^-½
                        7 * K * n * n)  # the trajectory's fit: the expanded Ψ copied, ΨᵀΨ/n, eigh's copy, U, workspace
        lin_tmp = max(lin_tmp, kernel, eig)
    return max(CIFAR_LOAD, data + kept + coef + lin_tmp + net + max(train, record))


def covers(config: Any) -> bool:
    """Whether :func:`estimate_bytes` knows the family of ``config`` (a user's own network it does not)."""
    return isinstance(config, TwoLayerConfig | CifarConfig)


def estimate_bytes(config: Any, device: torch.device | str | None = None) -> int:
    """A generous estimate of the peak memory (bytes) of one run of ``config``, all its seeds batched.

    ``device`` (default: the config's, ``auto`` resolved) only picks the two-layer step that ``step="auto"``
    runs there. Every allocation is counted, wherever it lives; the estimate includes :data:`OVERHEAD`."""
    if isinstance(config, CifarConfig):
        return OVERHEAD + _cifar(config)
    if isinstance(config, Cnn1dConfig):
        return OVERHEAD + _cnn1d(config)
    if isinstance(config, TwoLayerConfig):
        return OVERHEAD + _two_layer(config, _device_type(config, device))
    raise ConfigError(f"no memory estimate for a {type(config).__name__}; valid: TwoLayerConfig, Cnn1dConfig, "
                      "CifarConfig")


def available_bytes(device: torch.device | str) -> int:
    """The memory a run may use on ``device``: the free memory of a CUDA device (``torch.cuda.mem_get_info``);
    on the CPU ``MemAvailable`` of /proc/meminfo where it exists, else all physical memory."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _sizes(cfg: Any) -> tuple[str, list[str], list[str]]:
    """The family's name, its sizes as the caller names them, and the fields that shrink it."""
    if isinstance(cfg, CifarConfig):
        sizes = [arg("arch", cfg.arch), arg("depth", cfg.depth), arg("n", cfg.n), arg("n_test", cfg.n_test),
                 arg("width", cfg.width), arg("seeds", cfg.seeds)]
        if cfg.ntk_model:  # a switch on the command line (--ntk-model), a field from Python (ntk_model=True)
            sizes.append(arg("ntk_model") if arg("ntk_model").startswith("--") else arg("ntk_model", True))
        if cfg.linear == "fitted":
            sizes += [arg("linear", cfg.linear), arg("n_fit", cfg.n_fit)]
        return "CIFAR", sizes, ["n", "width", "n_fit" if cfg.linear == "fitted" else "depth"]
    family = "1D-CNN" if isinstance(cfg, Cnn1dConfig) else "two-layer"
    sizes = [arg("d", cfg.d), arg("n", cfg.n), arg("n_test", cfg.n_test), arg("width", cfg.width),
             arg("seeds", cfg.seeds)]
    return family, sizes, ["n", "width", "d"]


def _limit(device: torch.device, max_gb: float | None) -> tuple[int, str]:
    """(bytes, how the message names it): ``max_gb`` GiB if given (checked: a finite number > 0), else what
    ``device`` has available now."""
    if max_gb is not None and (isinstance(max_gb, bool) or not isinstance(max_gb, int | float)
                               or not math.isfinite(max_gb) or max_gb <= 0):
        raise ConfigError(f"{arg('max_gb', max_gb)}: must be a finite number of GiB > 0")
    if max_gb is not None:
        return int(max_gb * GIB), f"the limit {arg('max_gb', max_gb)}"
    limit = available_bytes(device)
    return limit, f"the {limit / GIB:.1f} GiB {'free on' if device.type == 'cuda' else 'available on'} {device}"


def check_fits(configs: Iterable[Any] | Any, device: torch.device | str, max_gb: float | None = None) -> None:
    """Refuse, before any work, a config whose :func:`estimate_bytes` exceeds the limit: ``max_gb`` GiB if
    given, else :func:`available_bytes` of ``device``. ``configs``: one config or several.

    Raises:
        ConfigError: naming the config's sizes, the estimate, the limit and what to change; or a ``max_gb``
            that is not a finite number > 0.
    """
    device = torch.device(device)
    limit, where = _limit(device, max_gb)
    for cfg in [configs] if hasattr(configs, "seeds") else configs:
        need = estimate_bytes(cfg, device)
        if need > limit:
            family, sizes, shrink = _sizes(cfg)
            names = [arg(f).removesuffix("=") for f in shrink]
            smaller = f"{', '.join(names[:-1])} or {names[-1]}"
            raise ConfigError(
                f"the {family} run {', '.join(sizes)} needs about {need / GIB:.1f} GiB of memory, more than {where}; "
                f"use a smaller {smaller} (or fewer seeds), or raise the limit to "
                f"{arg('max_gb', float(math.ceil(need / GIB)))} if the estimate is too cautious for this machine"
            )


# ---------------------------------------------------------------------------------------------- keep_outputs
def output_names(config: Any) -> tuple[list[str], list[str]]:
    """The arrays ``keep_outputs`` stores for ``config``, as (train arrays, test arrays): the network, f^lin and
    the stripped model on both sets (:meth:`earlylin.experiments.comparison.LinearComparison.outputs`); on the
    test set also the finite-width model (two-layer net), the θ-linearised net (``ntk_lin``) and the exact NTK
    model (CIFAR, ``ntk_model``)."""
    train, test = ["train_net", "train_lin", "train_stripped"], ["test_net", "test_lin", "test_stripped"]
    if isinstance(config, TwoLayerConfig) and not isinstance(config, Cnn1dConfig):
        test += ["test_fw", *(["test_ntk_lin"] if config.ntk_lin else [])]
    if isinstance(config, CifarConfig) and config.ntk_model:
        test.append("test_ntk_inf")
    return train, test


def recorded_steps(config: Any) -> int:
    """How many steps a run of ``config`` records (:func:`earlylin.experiments.train.record_schedule`, T included
    where a theorem gives it)."""
    from earlylin.config import theorem_window
    from earlylin.experiments.train import record_schedule

    family = ("cnn1d" if isinstance(config, Cnn1dConfig) else "two_layer" if isinstance(config, TwoLayerConfig)
              else "cifar" if isinstance(config, CifarConfig) else "network")
    window = theorem_window(family, config.d, config.lr, config.window_c, paper_training(config))
    return len(record_schedule(config.steps, config.n_log, extra=[] if window is None else [window]))


def outputs_bytes(config: Any) -> int:
    """Bytes of the outputs ``keep_outputs`` stores: seeds × recorded steps × points × 8 for every array of
    :func:`output_names` (float64; points: n on the training set, n_test on the test set)."""
    train, test = output_names(config)
    return F64 * len(config.seeds) * recorded_steps(config) * (len(train) * config.n + len(test) * config.n_test)


def check_outputs_fit(configs: Iterable[Any] | Any, device: torch.device | str, max_gb: float | None = None) -> None:
    """Refuse, before any work, ``keep_outputs`` for a config whose stored outputs would not fit in memory. They
    are gathered in host memory and held twice while they are stacked and written (:func:`outputs_bytes` × 2);
    on a CPU device beside the run itself (:func:`estimate_bytes`). The limit is ``max_gb`` GiB if given, else
    the memory available on the CPU now. ``configs``: one config or several (each run's outputs are written and
    freed before the next starts).

    Raises:
        ConfigError: naming the value (``keep_outputs=True`` or ``--keep-outputs``), the sizes, the estimate
            and the limit, and what to change.
    """
    device = torch.device(device)
    limit, where = _limit(torch.device("cpu"), max_gb)
    flag = arg("keep_outputs") if arg("keep_outputs").startswith("--") else arg("keep_outputs", True)
    for cfg in [configs] if hasattr(configs, "seeds") else configs:
        raw = outputs_bytes(cfg)
        run = estimate_bytes(cfg, device) if device.type == "cpu" and covers(cfg) else 0
        need = 2 * raw + run
        if need > limit:
            train, test = output_names(cfg)
            beside = f" beside the run's own ≈ {_size(run)}" if run else ""
            raise ConfigError(
                f"{flag}: the full outputs of this run ({len(cfg.seeds)} seed(s) × {recorded_steps(cfg)} recorded "
                f"steps × ({len(train)} arrays × {arg('n', cfg.n)} + {len(test)} arrays × {arg('n_test', cfg.n_test)})"
                f" × 8 bytes) take ≈ {_size(raw)}, held twice while they are written{beside}: ≈ {_size(need)}, more "
                f"than {where}; leave {flag.split('=')[0] if '=' in flag else flag} out, or record fewer steps "
                f"({arg('n_log')}), fewer seeds or a smaller n or n_test"
            )


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.1f} MiB" if nbytes < GIB else f"{nbytes / GIB:,.2f} GiB"
