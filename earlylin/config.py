"""Run configurations of every family (two-layer net, 1D CNN, CIFAR deep nets), and their validation.

Two-layer defaults are the paper's Fig 1 setting (docs/theory.md §5): erf, m = 256, both layers, d = 50,
n = 20,000 train and 2,000 test points, teacher of width 5, η = 1. The paper's step count is
unknown; the default 1,600 steps show the agreement window (T = 5·d·log d/η ≈ 980 steps at d = 50)
and the start of the escape (after T the net's train loss keeps falling below the linear model's
plateau, and its MSE to f^lin reaches its minimum near step 1,600), in ≈ 22 s on a quiet 2-core CPU.
The MSE doubles from its value at T only near step 5,200 at d = 50: ``--steps 6000`` (≈ 2.5 min on
a 2-core CPU) shows that escape.
``--quick`` (:data:`earlylin.studies.presets.QUICK`) shrinks n, n_test and the step count for a smoke run.

A name starting with ``custom:`` (activation, target, inputs) labels a user's own piece, passed to
the experiment beside the config (:mod:`earlylin.experiments`); the config only records its name.

A config checks itself once, when it is constructed (:func:`~earlylin.errors.config_class`): an invalid
field raises :class:`~earlylin.errors.ConfigError` naming the flag, the value and the valid range, before
any work starts, and ``with_`` (a changed copy) checks the copy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import Any

from earlylin.activations import get_activation
from earlylin.data.cifar_classes import check_classes
from earlylin.data.synthetic import INPUT_NAMES, LABEL_TARGETS, SIGMA_NAMES, TARGET_NAMES
from earlylin.errors import CUSTOM, ConfigError, arg, choice, config_class, int_range, positive
from earlylin.linear.features import LAYERS
from earlylin.nets.two_layer import NET_STEPS
from earlylin.runtime.devices import DEVICES, DTYPES
from earlylin.training.losses import LOSSES
from earlylin.training.optim import OPTIMIZERS

ARCHS = ("fc", "cnn")
CIFAR_ACTIVATIONS = ("erf", "relu")
LINEAR_KINDS = ("derived", "fitted")
CIFAR_NORMS = ("coordinate", "sphere")
CIFAR_D = 192

# the families for which a theorem gives the early window T (docs/theory.md §4); the others (deep CIFAR nets,
# a user's network) have only the linear regime measured from the run (earlylin.experiments.regime)
THEOREM_FAMILIES = ("two_layer", "cnn1d")
REGIME_EPS = 0.1  # MSE(net, lin)/mean f_net² above this ends the measured linear regime (relative RMS gap ≈ 0.32)
WINDOW_C = 5.0  # T = c·d·log(d)/η: c = 5 gives ≈ 1,000 steps at d = 50, η = 1 (Fig 1a's window)
MAX_DIM = 100_000
MAX_WINDOW = 10**15  # T = c·d·log(d)/η beyond this many steps is refused (no run could reach it)
# implementations of the two-layer step (earlylin.nets.two_layer.make_step): auto, the whole-matrix reference,
# the row-blocked CPU path, the fused Triton kernel (CUDA, 3×TF32 products)


@config_class
class RunControls:
    """Fields every run shares: the early window T = c·d·log(d)/η (two-layer net and 1D CNN), the escape factor,
    the threshold ε of the measured linear regime (:mod:`earlylin.experiments.regime`), the number of
    log-spaced recorded steps, the network's dtype and the device."""

    window_c: float = WINDOW_C
    escape_factor: float = 2.0
    regime_eps: float = REGIME_EPS  # the linear regime ends where MSE(net, lin)/mean f_net² first exceeds this
    n_log: int = 60
    dtype: str = "float32"
    device: str = "auto"


@config_class
class TwoLayerConfig(RunControls):
    """One two-layer run at one input dimension d (several seeds, batched): the paper's Fig 1 setting by
    default (docs/theory.md §5). Every field is a flag of ``python -m earlylin verify`` (``n_test`` is
    ``--n-test``); unknown fields and invalid values raise :class:`ConfigError` at construction.

    Example::

        import earlylin
        cfg = earlylin.TwoLayerConfig(d=20, n=1000, n_test=500, width=128, steps=300, seeds=(0, 1))
        cfg.with_(layers="second").as_dict()["layers"]
    """

    d: int = 50
    layers: str = "both"
    activation: str = "erf"
    width: int = 256
    n: int = 20_000
    n_test: int = 2_000
    teacher_width: int = 5
    target: str = "teacher"
    sigma: str = "iso"
    inputs: str = "gaussian"
    lr: float = 1.0
    steps: int = 1_600
    seeds: tuple[int, ...] = (0,)
    ntk_lin: bool = False  # also train the θ-linearised network (Lee et al. 2019) and record its MSE
    step: str = "auto"  # the network step's implementation, one of NET_STEPS (results equal to fp32 rounding)
    # how it trains (docs/theory.md §3.3): the paper's full-batch GD on the squared loss by default; any other
    # choice trains the net by autograd and its linear model step by step on the same batches
    loss: str = "squared"
    optimizer: str = "gd"
    batch_size: int | None = None
    batch_seed: int = 0
    momentum: float = 0.9
    alpha: float = 1.0  # the output scale of lazy training: the net trains as α·f on the loss / α² (autograd)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seeds"] = list(self.seeds)
        return out

    def validate(self) -> TwoLayerConfig:
        """Check every field; return self so that calls chain."""
        int_range("d", self.d, 2, MAX_DIM)
        int_range("width", self.width, 2, 10**7)
        if self.width % 2:
            raise ConfigError(
                f"{arg('width', self.width)} is odd; symmetric initialisation pairs neurons, so the width "
                "must be an even integer ≥ 2"
            )
        int_range("n", self.n, 2, 10**8)
        int_range("n_test", self.n_test, 2, 10**8)
        int_range("teacher_width", self.teacher_width, 1, 10**6)
        int_range("steps", self.steps, 1, 10**9)
        _check_controls(self)
        choice("layers", self.layers, LAYERS)
        choice("sigma", self.sigma, SIGMA_NAMES, custom=True)
        choice("target", self.target, TARGET_NAMES, custom=True)
        choice("inputs", self.inputs, INPUT_NAMES, custom=True)
        choice("step", self.step, NET_STEPS)
        if not self.activation.startswith(CUSTOM):
            get_activation(self.activation)
        _check_training(self, self.n)
        if self.loss == "cross_entropy" and self.target in TARGET_NAMES and self.target not in LABEL_TARGETS:
            raise ConfigError(f"{arg('loss', 'cross_entropy')} with {arg('target', self.target)}: the targets must be "
                              f"labels ±1; the built-in target giving labels: {', '.join(LABEL_TARGETS)}")
        if not paper_training(self) and self.ntk_lin:
            raise ConfigError(f"{arg('ntk_lin')}: the θ-linearised two-layer net trains by full-batch GD on the "
                              f"squared loss only; leave it out with {arg('loss', self.loss)}, "
                              f"{arg('optimizer', self.optimizer)}")
        return self

    def with_(self, **changes: Any) -> TwoLayerConfig:
        return replace(self, **changes)


@config_class
class Cnn1dConfig(TwoLayerConfig):
    """A 1D-CNN run (docs/theory.md §5): the two-layer fields (``width`` = number of filters m) plus
    the filter size q.

    Example::

        import earlylin
        cfg = earlylin.Cnn1dConfig(d=64, filter_size=16, width=64, n=500, n_test=200, steps=300)
    """

    filter_size: int = 10

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "model": "cnn1d"}  # "model": the key records have carried

    def validate(self) -> Cnn1dConfig:
        super().validate()
        int_range("filter_size", self.filter_size, 1, self.d,
                   f"the filter size must be an integer in [1, d = {self.d}]")
        if self.ntk_lin:
            raise ConfigError(f"{arg('ntk_lin')} is not available for the 1D CNN; leave it out")

        if self.step not in ("auto", "reference"):
            raise ConfigError(f"{arg('step', self.step)}: the 1D CNN has one step implementation; leave "
                              f"{arg('step')} out")
        return self


@config_class
class CifarConfig(RunControls):
    """One CIFAR-10 cats-vs-horses run (the paper's Fig 3). Defaults: the full 10k/2k set on the sphere, erf,
    width 512 (FC units / CNN channels), η = 1. ReLU on per-coordinate inputs is where the linear model
    fails (docs/results.md). The data: docs/howto.md (the official archive, downloaded with ``download=True``).

    Example::

        import earlylin
        cfg = earlylin.CifarConfig(arch="cnn", width=16, n=500, n_test=200, steps=300)
    """

    arch: str = "fc"
    depth: int = 4
    width: int = 512
    kernel_size: int = 3
    activation: str = "erf"
    lr: float = 1.0
    steps: int = 10_000
    n: int = 10_000
    n_test: int = 2_000
    seeds: tuple[int, ...] = (0,)
    linear: str = "derived"
    n_fit: int = 256
    ntk_model: bool = False  # also compare with kernel GD on the exact infinite-width NTK (n×n)
    cifar_norm: str = "sphere"  # each standardised image rescaled to ‖x‖ = √d; "coordinate": not rescaled
    npz_path: str | None = None
    cifar_root: str | None = None
    download: bool = False
    classes: tuple[int, ...] | None = None  # CIFAR-10 labels, one output each (None: cats vs horses, ±1)
    loss: str = "squared"
    optimizer: str = "gd"
    batch_size: int | None = None
    batch_seed: int = 0
    momentum: float = 0.9
    alpha: float = 1.0  # the output scale of lazy training: the nets train as α·f on the loss / α²

    @property
    def d(self) -> int:
        return CIFAR_D

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seeds"] = list(self.seeds)
        out["d"] = self.d
        if self.classes is not None:
            out["classes"] = list(self.classes)
        return out

    def with_(self, **changes: Any) -> CifarConfig:
        return replace(self, **changes)

    def validate(self) -> CifarConfig:
        choice("arch", self.arch, ARCHS)
        int_range("depth", self.depth, 1, 16)
        int_range("width", self.width, 1, 65536)
        if self.kernel_size not in (1, 3, 5, 7):
            raise ConfigError(f"{arg('kernel_size', self.kernel_size)}: must be one of 1, 3, 5, 7")
        choice("activation", self.activation, CIFAR_ACTIVATIONS)
        int_range("steps", self.steps, 1, 10**9)
        int_range("n", self.n, 2, 10_000)
        int_range("n_test", self.n_test, 2, 2_000)
        choice("linear", self.linear, LINEAR_KINDS)
        choice("cifar_norm", self.cifar_norm, CIFAR_NORMS)
        if self.linear == "fitted":
            int_range("n_fit", self.n_fit, 8, self.n,
                       f"must be an integer in [8, {self.n}] with {arg('linear', 'fitted')}")
        _check_training(self, self.n)
        if self.classes is not None:
            if not isinstance(self.classes, tuple | list):
                raise ConfigError(f"{arg('classes', self.classes)}: give a tuple of CIFAR-10 labels, e.g. 0 … 9")
            check_classes(tuple(self.classes))
            if self.linear == "fitted":
                raise ConfigError(f"{arg('linear', 'fitted')} with {arg('classes')}: the fitted model is for one "
                                  f"output; use {arg('linear', 'derived')}")
        if self.ntk_model and not closed_form(self):
            raise ConfigError(f"{arg('ntk_model')}: the exact-NTK model trains in closed form, with squared loss and "
                              "full-batch GD only")
        _check_controls(self)
        return self


@config_class
class Sweep:
    """Several input dimensions; with ``scale_alpha`` set, n and m grow as (d/d₀)^{1+α} from d₀ = ds[0]."""

    base: TwoLayerConfig
    ds: tuple[int, ...] = (50,)
    scale_alpha: float | None = None

    def validate(self) -> Sweep:
        """Check the dimensions and the scaling exponent (each d's config checks itself in :meth:`configs`)."""
        if not self.ds:
            raise ConfigError(f"{arg('d')}: give at least one dimension")
        if len(set(self.ds)) != len(self.ds):
            raise ConfigError(f"{arg('d', list(self.ds))}: dimensions must be distinct")
        if self.scale_alpha is not None and not 0.0 <= self.scale_alpha < 1.0:
            raise ConfigError(f"{arg('scale_alpha', self.scale_alpha)}: must be in [0, 1)")
        return self

    def configs(self) -> list[TwoLayerConfig]:
        """The config of every d (n and width scaled with ``scale_alpha``)."""
        out = []
        for d in self.ds:
            sizes: dict[str, Any] = {}
            if self.scale_alpha is not None:
                factor = (d / self.ds[0]) ** (1.0 + self.scale_alpha)
                width = 2 * max(1, round(self.base.width * factor / 2))
                sizes = {"n": max(2, round(self.base.n * factor)), "width": width}
            out.append(self.base.with_(d=d, **sizes))
        return out


@config_class
class NetworkConfig(RunControls):
    """A run of a user's network on user arrays (:func:`earlylin.run_network`): GD with learning rate ``lr``
    for ``steps`` steps, the affine model fitted to the empirical NTK on ``n_fit`` training points
    (docs/theory.md §4). ``d``, ``n`` and ``n_test`` are filled in from the data; ``name`` labels the network.

    How it trains (docs/theory.md §3.3; the linear model trains the same way, on the same batches): ``loss``
    "squared" (½·mean, the default) or "cross_entropy" (softmax over K outputs; binary logistic on ±1 labels for
    one output); ``optimizer`` "gd", "sgd", "momentum" (heavy ball, μ = ``momentum``) or "adam" (β₁ =
    ``momentum``, β₂ = 0.999); ``batch_size`` (None: all n points — "gd" always uses all); ``batch_seed`` fixes
    the batch order; ``alpha``, the output scale of lazy training: the network trains as α·f on the loss / α²;
    ``classes``: K for integer class labels (n,) in {0, …, K − 1}, which become one-hot targets (n, K);
    ``ntk_lin``: also train the network's θ-linearisation alongside (:mod:`earlylin.experiments.network_linearized`).

    Example::

        import earlylin
        cfg = earlylin.NetworkConfig(lr=0.1, steps=300, n_fit=128, seeds=(0, 1, 2))
    """

    lr: float = 1.0
    steps: int = 1_000
    seeds: tuple[int, ...] = (0,)
    n_fit: int = 256
    name: str = f"{CUSTOM}network"
    loss: str = "squared"
    optimizer: str = "gd"
    batch_size: int | None = None
    batch_seed: int = 0
    momentum: float = 0.9
    alpha: float = 1.0
    classes: int | None = None
    ntk_lin: bool = False  # also train the θ-linearised network (same loss, optimizer, batches) and record its MSE
    d: int | None = None  # None until filled in from the data (Arrays.sized)
    n: int | None = None
    n_test: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seeds"] = list(self.seeds)
        return out

    def with_(self, **changes: Any) -> NetworkConfig:
        return replace(self, **changes)

    def validate(self) -> NetworkConfig:
        """Check every field; d, n and n_test (and n_fit against n, the window against d) once they are known."""
        for name, hi in (("d", MAX_DIM), ("n", 10**8), ("n_test", 10**8)):
            if getattr(self, name) is not None:
                int_range(name, getattr(self, name), 2, hi)
        int_range("steps", self.steps, 1, 10**9)
        if self.n is None:
            int_range("n_fit", self.n_fit, 8, 10**8)
        else:
            int_range("n_fit", self.n_fit, 8, max(8, self.n), f"must be an integer in [8, n = {self.n}]")
        _check_training(self, self.n)
        if self.classes is not None:
            int_range("classes", self.classes, 2, 10**5, "must be an integer ≥ 2 (the number of classes), or None")
        _check_controls(self)
        return self


def _check_training(cfg: Any, n: int | None) -> None:
    """The fields of how a run trains (docs/theory.md §3.3): loss, optimizer, batch size and seed, momentum,
    the output scale α."""
    choice("loss", cfg.loss, LOSSES)
    choice("optimizer", cfg.optimizer, OPTIMIZERS)
    if cfg.batch_size is not None:
        int_range("batch_size", cfg.batch_size, 1, n or 10**8,
                  None if n is None else f"must be an integer in [1, n = {n}], or None for all n")
        if cfg.optimizer == "gd" and n is not None and cfg.batch_size < n:
            raise ConfigError(f"{arg('batch_size', cfg.batch_size)} with {arg('optimizer', 'gd')}: gd uses all "
                              f"n = {n} points; for mini-batches give {arg('optimizer', 'sgd')} (or momentum, adam)")
    int_range("batch_seed", cfg.batch_seed, 0, 2**63 - 1)
    if not (isinstance(cfg.momentum, int | float) and 0.0 <= cfg.momentum < 1.0):
        raise ConfigError(f"{arg('momentum', cfg.momentum)}: must be a number in [0, 1)")
    if hasattr(cfg, "alpha"):
        positive("alpha", cfg.alpha)


def closed_form(cfg: Any) -> bool:
    """Whether a run trains as the paper's theorems assume — the squared loss, GD or SGD on all n points — so that
    the linear model's trajectory is in closed form (docs/theory.md §3.2); else it trains step by step (§3.3) and
    no theorem gives a window T. ``cfg``: a config, or its ``as_dict()`` (a record's; older records lack the
    fields: the paper's training)."""
    get = cfg.get if isinstance(cfg, dict) else (lambda k, default: getattr(cfg, k, default))
    return (get("loss", "squared") == "squared" and get("optimizer", "gd") in ("gd", "sgd")
            and get("batch_size", None) in (None, get("n", None)))


def paper_training(cfg: Any) -> bool:
    """:func:`closed_form` and the output scale α = 1: the training the paper's theorems (and the built-in nets'
    analytic steps) assume; one output is checked where the targets are known."""
    get = cfg.get if isinstance(cfg, dict) else (lambda k, default: getattr(cfg, k, default))
    return closed_form(cfg) and get("alpha", 1.0) == 1.0


def _check_controls(cfg: Any) -> None:
    """The fields every run shares: lr, window, escape factor, record count, seeds, dtype, device."""
    int_range("n_log", cfg.n_log, 2, 10**5)
    positive("lr", cfg.lr)
    positive("window_c", cfg.window_c)
    positive("regime_eps", cfg.regime_eps)
    _check_window(cfg)
    if not (isinstance(cfg.escape_factor, int | float) and math.isfinite(cfg.escape_factor)
            and cfg.escape_factor > 1.0):
        raise ConfigError(f"{arg('escape_factor', cfg.escape_factor)}: must be a finite number > 1")
    if not isinstance(cfg.seeds, tuple | list) or not cfg.seeds:
        raise ConfigError(f"{arg('seeds', cfg.seeds)}: give a tuple of one or more seeds (integers ≥ 0)")
    for s in cfg.seeds:
        int_range("seeds", s, 0, 2**63 - 1)
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"{arg('seeds', list(cfg.seeds))}: seeds must be distinct")
    choice("dtype", cfg.dtype, tuple(DTYPES))
    choice("device", cfg.device, DEVICES)


def window_scale(d: int, lr: float) -> float:
    """d·log(d)/η: the theorem's time scale (docs/theory.md §4.5); the early window is T = c times it."""
    return d * math.log(d) / lr


def early_window(d: int, lr: float, c: float) -> int:
    """The early window T = c·d·log(d)/η (docs/theory.md §4.5), rounded to a whole step (at least 1)."""
    return max(1, round(c * window_scale(d, lr)))


def theorem_window(family: str, d: int, lr: float, c: float, paper_training: bool = True) -> int | None:
    """T = c·d·log(d)/η for a family a theorem covers (:data:`THEOREM_FAMILIES`) trained as the theorem assumes
    (``paper_training``: :func:`closed_form`), else None (docs/theory.md §4.5)."""
    return early_window(d, lr, c) if family in THEOREM_FAMILIES and paper_training else None


def _check_window(cfg: Any) -> None:
    """Refuse an early window T = c·d·log(d)/η (docs/theory.md §4.5) that overflows or that no run could reach."""
    if cfg.d is None:  # a network config before its data fill in d
        return
    scale = window_scale(cfg.d, cfg.lr)
    window = cfg.window_c * scale
    if not math.isfinite(window) or window > MAX_WINDOW:
        raise ConfigError(
            f"{arg('window_c', cfg.window_c)} with {arg('lr', cfg.lr)} at d = {cfg.d}: the early window "
            f"T = c·d·log(d)/η = {window:.3g} steps; valid: {arg('window_c')} in (0, {MAX_WINDOW / scale:.3g}] "
            f"(T ≤ {MAX_WINDOW:.0e} steps)"
        )
