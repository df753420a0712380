"""CIFAR-10 cats vs horses, pooled to 8×8×3 and standardised: the real data of paper Fig 3 (THEORY §5).

Usage::

    from earlylin.data.cifar import load_cat_horse
    data = load_cat_horse()                                  # the bundled npz, cached after the first call
    data = load_cat_horse(cifar_root="~/data")               # ~/data/cifar-10-batches-py/ (torchvision layout)
    x, y = data.flat("train"), data.y_train                  # (10000, 192) float64, (10000,) ±1
    small = data.subsample(n_train=1000, n_test=500, seed=0) # for --quick runs

Sources (``cifar_root`` takes precedence when given):

- the CIFAR-10 python batches as torchvision writes them, ``<cifar_root>/cifar-10-batches-py/``
  (``data_batch_1..5``, ``test_batch``, ``batches.meta``; ``cifar_root`` may also be that folder
  itself). Each batch is a pickled dict: ``data`` (N, 3072) uint8, each row the image's R plane (1024
  values, row-major), then G, then B; ``labels`` a list of ints 0..9. ``batches.meta`` must name class 3
  ``cat`` and class 7 ``horse``. The pickles are read with a restricted unpickler that admits only
  numpy arrays and plain containers, so a hostile file cannot run code.
- ``cifar10_cat_horse.npz`` (shared/data/README.md): the same images, already selected, uint8 HWC.
  Its sha256 must equal :data:`NPZ_SHA256`; it is looked for, in this order, at the explicit
  ``npz_path`` (then nowhere else), at ``$EARLYLIN_CIFAR_NPZ``, at ``<repo>/../shared/data/`` (``<repo>``
  is the folder that holds the ``earlylin`` package), then at ``./shared/data/`` and
  ``../shared/data/`` below the working directory.
- ``download=True`` (the ``--download`` flag; never implicit) fetches the official archive with
  ``torchvision.datasets.CIFAR10(root, download=True)`` when no data is found: into ``cifar_root`` when
  given, else into ``<cache_dir>/cifar10`` (pass ``--download`` again, or ``--cifar-root`` that folder,
  later). Without torchvision the error says ``pip install torchvision``.

Preprocessing (the paper gives only "4×4 average pooling, d = 192, standardised"; these are our
documented choices):

1. Selection: CIFAR-10 classes 3 (cat) and 7 (horse) from the official training set (data_batch_1..5
   concatenated) and the test set (test_batch), **in the original order**: 10,000 train rows
   (5,000 + 5,000) and 2,000 test rows (1,000 + 1,000) — exactly the rows of the npz.
   ``idx_train`` / ``idx_test`` keep each row's official index.
2. Pooling: the mean of each non-overlapping 4×4 block of raw 0..255 pixel values, per channel, in
   float64: 32×32×3 → 8×8×3, d = 192. (Means of 16 integers are exact in float64.)
3. Standardisation per input coordinate: each of the 192 (channel, row, column) values has the
   training-set mean subtracted and is divided by the training-set standard deviation (population,
   ddof = 0). The statistics come from the training split only and are applied to both splits, so
   every training coordinate has mean 0 and variance 1, and the mean of ‖x‖² over the training set is
   exactly d = 192 (up to rounding): Tr Σ = d, as Assumption 3.1 (THEORY §1) asks. Per-coordinate
   (rather than per-channel) scaling also makes Σ's diagonal exactly 1.
4. Labels: horse = +1, cat = −1 (float64).
5. Layout: ``x_*`` are NCHW (N, 3, 8, 8) float64, C-contiguous; :meth:`CatHorse.flat` gives (N, 192)
   views flattened in C, H, W order (the order a torch ``nn.Flatten`` of NCHW uses).
6. Optional, ``--cifar-norm sphere`` (:meth:`CatHorse.on_sphere`): after step 3, each image is rescaled
   to ‖x‖ = √d (ε = ‖x‖²/d − 1 = 0 for every image). Per-coordinate standardisation alone leaves
   ‖x‖²/d spread from 0.14 to 4.5 over the training set, far from the concentration ‖x‖/√d ≈ 1 of
   Assumption 3.1; on the sphere the norm terms of the deep-net linear models vanish exactly.
7. ``--quick``: :meth:`CatHorse.subsample` draws class-balanced random rows (``default_rng(seed)``) and
   keeps the full set's standardisation, so a quick run sees the same input scale as the full one.

Cache: the pooled, standardised arrays are saved as ``<cache_dir>/cifar_cat_horse_pooled_<sha16>.npz``
(``sha16``: the first 16 hex digits of the npz's sha256, or of a sha256 over the seven batch files),
written atomically and reloaded on later calls (``CatHorse.from_cache``). A cache file that fails to
load, has the wrong shapes or dtypes, or was made by another :data:`CACHE_FORMAT` is ignored and
rebuilt. ``cache_dir=None`` neither reads nor writes it.

Every problem with the data raises :class:`earlylin.errors.DataError` naming the file.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

import earlylin
from earlylin.errors import ConfigError, DataError
from earlylin.records import default_cache_dir, write_bytes_atomic

CAT: Final = 3
HORSE: Final = 7
CLASS_NAMES: Final = {CAT: "cat", HORSE: "horse"}
N_CLASSES: Final = 10
SIDE: Final = 32  # CIFAR images are 32×32×3
CHANNELS: Final = 3
POOL: Final = 4  # 4×4 average pooling → 8×8×3
POOLED_SIDE: Final = SIDE // POOL
D: Final = CHANNELS * POOLED_SIDE * POOLED_SIDE  # 192
N_TRAIN_PER_CLASS: Final = 5000
N_TEST_PER_CLASS: Final = 1000

NPZ_NAME: Final = "cifar10_cat_horse.npz"
NPZ_SHA256: Final = "71401619a6c25cf420174ff37fce50964dfbbfc3ad3c3e889d5459fd13963eb0"
NPZ_ENV: Final = "EARLYLIN_CIFAR_NPZ"
BATCH_DIR: Final = "cifar-10-batches-py"
TRAIN_BATCHES: Final = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH: Final = "test_batch"
META_FILE: Final = "batches.meta"
BATCH_FILES: Final = (*TRAIN_BATCHES, TEST_BATCH, META_FILE)
CIFAR_URL: Final = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CACHE_FORMAT: Final = "earlylin.cifar_cat_horse_pooled/1"
SPLITS: Final = ("train", "test")

_CHUNK = 1 << 20  # bytes per read when hashing
_POOL_ROWS = 1000  # images pooled at a time (bounds the float64 working set to ~25 MB)


class _Default(enum.Enum):
    TOKEN = "default"


DEFAULT: Final = _Default.TOKEN
"""Sentinel for ``cache_dir``: :func:`earlylin.records.default_cache_dir` at call time."""

CacheDir = str | os.PathLike[str] | None | Literal[_Default.TOKEN]


# ----------------------------------------------------------------------------------------------------
# The result


@dataclass(frozen=True, eq=False)
class CatHorse:
    """The pooled, standardised cats-vs-horses set of Fig 3 (THEORY §5); see the module docstring.

    ``x_*`` are (N, 3, 8, 8) float64 NCHW, ``y_*`` (N,) float64 with horse = +1 and cat = −1,
    ``mean``/``std`` the (3, 8, 8) training-set statistics used for standardisation, ``idx_*`` the
    official CIFAR-10 index of each row, ``source`` the file or folder read, ``from_cache`` whether the
    arrays came from the pooled cache. Treat the arrays as read-only (copy before changing them).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    idx_train: np.ndarray
    idx_test: np.ndarray
    source: str
    from_cache: bool = False

    @property
    def d(self) -> int:
        """Input dimension, 3·8·8 = 192."""
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def flat(self, split: str) -> np.ndarray:
        """The inputs of ``split`` ("train" or "test") as an (N, 192) view, flattened in C, H, W order."""
        if split == "train":
            x = self.x_train
        elif split == "test":
            x = self.x_test
        else:
            raise ConfigError(f"split {split!r} is unknown; valid: {', '.join(SPLITS)}")
        return x.reshape(x.shape[0], -1)

    def on_sphere(self) -> CatHorse:
        """The same images rescaled to ‖x‖ = √d each (module docstring, step 6); directions unchanged."""

        def scale(x: np.ndarray) -> np.ndarray:
            flat = x.reshape(x.shape[0], -1)
            return x * np.sqrt(flat.shape[1] / np.sum(flat * flat, axis=1)).reshape(-1, 1, 1, 1)

        return replace(self, x_train=scale(self.x_train), x_test=scale(self.x_test),
                       source=f"{self.source} [on the sphere ‖x‖ = √d]")

    def subsample(self, n_train: int, n_test: int, seed: int) -> CatHorse:
        """A smaller set for ``--quick`` runs: random rows, half horses and half cats where possible.

        Rows are drawn without replacement with ``numpy.random.default_rng(seed)`` (train first, then
        test), per class (cats get the extra row when n is odd; a class that runs short is filled from
        the other), and kept in their original order. The standardisation of the full set is kept, so
        the subset's statistics are only approximately 0 and 1.
        """
        rng = np.random.default_rng(seed)
        tr = _balanced_rows(rng, self.y_train, n_train, "n_train")
        te = _balanced_rows(rng, self.y_test, n_test, "n_test")
        return replace(
            self,
            x_train=self.x_train[tr],
            y_train=self.y_train[tr],
            x_test=self.x_test[te],
            y_test=self.y_test[te],
            idx_train=self.idx_train[tr],
            idx_test=self.idx_test[te],
            source=f"{self.source} [subsample n_train={n_train} n_test={n_test} seed={seed}]",
        )


def _balanced_rows(rng: np.random.Generator, y: np.ndarray, n: int, name: str) -> np.ndarray:
    if not 1 <= n <= y.size:
        raise ConfigError(f"{name}={n} is out of range; valid: 1..{y.size}")
    pos, neg = np.flatnonzero(y > 0), np.flatnonzero(y < 0)
    n_pos = min(n // 2, pos.size)
    n_neg = min(n - n_pos, neg.size)
    n_pos = n - n_neg  # fill from horses if cats run short
    rows = np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)])
    return np.sort(rows)


# ----------------------------------------------------------------------------------------------------
# Raw readers


@dataclass(frozen=True, eq=False)
class RawCatHorse:
    """The selected uint8 images before pooling: ``x_*`` (N, 32, 32, 3) HWC RGB, ``labels_*`` 3 or 7."""

    x_train: np.ndarray
    labels_train: np.ndarray
    idx_train: np.ndarray
    x_test: np.ndarray
    labels_test: np.ndarray
    idx_test: np.ndarray


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    return h.hexdigest()


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what CIFAR-10 batches hold: numpy arrays/dtypes and (for protocol-2 bytes) codecs."""

    _ALLOWED: Final = {
        ("numpy.core.multiarray", "_reconstruct"),  # numpy 1.x pickles (the official batches)
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # numpy ≥ 2 renamed numpy.core
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            obj = _BatchUnpickler(fh, encoding="latin1").load()
    except FileNotFoundError as exc:
        raise DataError(f"{path} is missing (expected the CIFAR-10 python batches in {path.parent})") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    except Exception as exc:  # truncated or foreign files raise EOFError, UnpicklingError, ValueError, …
        raise DataError(
            f"{path} is truncated or not a CIFAR-10 python batch ({type(exc).__name__}: {exc}); "
            "delete it and download the data again"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path} holds a {type(obj).__name__}, not the dict of a CIFAR-10 python batch")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def read_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch → images (N, 32, 32, 3) uint8 HWC and labels (N,) int64.

    Each row of ``data`` is R(1024) G(1024) B(1024), each plane row-major, so the row reshapes to
    (3, 32, 32) CHW and is transposed to HWC. Raises :class:`DataError` naming the file for a missing,
    truncated or malformed batch, a wrong shape or dtype, or labels outside 0..9.
    """
    path = Path(path)
    batch = _unpickle(path)
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DataError(f"{path} lacks the key(s) {', '.join(missing)} of a CIFAR-10 batch (has {sorted(batch)})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE**2:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' is {desc}; expected uint8 (N, {3 * SIDE**2})")
    try:
        labels = np.asarray(batch["labels"])
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: 'labels' is not a list of integers ({exc})") from exc
    if labels.ndim != 1 or labels.size != data.shape[0] or (labels.size and labels.dtype.kind not in "iu"):
        raise DataError(
            f"{path}: 'labels' has shape {labels.shape} dtype {labels.dtype}; expected {data.shape[0]} ints"
        )
    labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= N_CLASSES)
    if bad.any():
        raise DataError(f"{path}: label {labels[bad][0]} at row {np.flatnonzero(bad)[0]} is outside 0..{N_CLASSES - 1}")
    images = data.reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def batch_dir(cifar_root: str | os.PathLike[str]) -> Path:
    """``<cifar_root>/cifar-10-batches-py``, or ``cifar_root`` itself if it holds the batches directly."""
    root = Path(cifar_root).expanduser()
    if not (root / BATCH_DIR).is_dir() and (root / TRAIN_BATCHES[0]).is_file():
        return root
    return root / BATCH_DIR


def _check_meta(path: Path) -> None:
    meta = _unpickle(path)
    names = meta.get("label_names")
    if not isinstance(names, Sequence) or len(names) != N_CLASSES:
        raise DataError(f"{path}: 'label_names' is missing or not {N_CLASSES} names; is this CIFAR-10?")
    decoded = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
    for label, name in CLASS_NAMES.items():
        if decoded[label] != name:
            raise DataError(f"{path}: class {label} is {decoded[label]!r}, expected {name!r}; is this CIFAR-10?")


def read_batches(cifar_root: str | os.PathLike[str]) -> RawCatHorse:
    """The cats and horses of the python batches under ``cifar_root``, in the official order.

    Train: rows of data_batch_1..5 (concatenated, official indices 0..) with label 3 or 7; test: those
    of test_batch. No count check (small test folders are allowed); at least one image of each class
    per split is required.
    """
    folder = batch_dir(cifar_root)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; --cifar-root must hold {BATCH_DIR}/ ({', '.join(BATCH_FILES)})")
    _check_meta(folder / META_FILE)

    def select(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs, ys, idx, offset = [], [], [], 0
        for name in names:
            images, labels = read_batch(folder / name)
            keep = np.flatnonzero((labels == CAT) | (labels == HORSE))
            xs.append(images[keep])
            ys.append(labels[keep])
            idx.append(keep + offset)
            offset += labels.size
        y = np.concatenate(ys)
        for label, cname in CLASS_NAMES.items():
            if not (y == label).any():
                raise DataError(f"{folder}: no {cname} (label {label}) in {', '.join(names)}")
        return np.concatenate(xs), y, np.concatenate(idx).astype(np.int64)

    x_tr, y_tr, i_tr = select(TRAIN_BATCHES)
    x_te, y_te, i_te = select((TEST_BATCH,))
    return RawCatHorse(x_tr, y_tr, i_tr, x_te, y_te, i_te)


def _checksum_error(path: Path, got: str, expected: str) -> DataError:
    return DataError(
        f"{path} fails its checksum: sha256 {got}, expected {expected}; the file is corrupted or not the one "
        "described in shared/data/README.md (get it again, or pass --cifar-root DIR with the CIFAR-10 batches)"
    )


def read_npz(path: str | os.PathLike[str], sha256: str | None = NPZ_SHA256) -> RawCatHorse:
    """Read and check ``cifar10_cat_horse.npz`` (shared/data/README.md).

    Checks, each failure a :class:`DataError` naming the file: the sha256 (skipped if ``sha256`` is
    None), the keys, shapes and dtypes, labels in {3, 7}, and 5,000/5,000 train and 1,000/1,000 test.
    """
    path = Path(path)
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise _checksum_error(path, got, sha256)
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in ("x_train", "y_train", "idx_train", "x_test", "y_test", "idx_test"):
                if key not in z.files:
                    raise DataError(f"{path} lacks the array {key!r} (has {', '.join(z.files)})")
                arrays[key] = z[key]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is unreadable or truncated ({type(exc).__name__}: {exc})") from exc
    for split in SPLITS:
        x, y, idx = arrays[f"x_{split}"], arrays[f"y_{split}"], arrays[f"idx_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (SIDE, SIDE, CHANNELS):
            raise DataError(f"{path}: x_{split} is {x.dtype} {x.shape}; expected uint8 (N, 32, 32, 3)")
        for name, a in ((f"y_{split}", y), (f"idx_{split}", idx)):
            if a.shape != (x.shape[0],) or a.dtype.kind not in "iu":
                raise DataError(f"{path}: {name} is {a.dtype} {a.shape}; expected integers of shape ({x.shape[0]},)")
        bad = (y != CAT) & (y != HORSE)
        if bad.any():
            raise DataError(
                f"{path}: y_{split} holds label {y[bad][0]} at row {np.flatnonzero(bad)[0]}; expected 3 or 7"
            )
    for split, per_class in (("train", N_TRAIN_PER_CLASS), ("test", N_TEST_PER_CLASS)):
        y = arrays[f"y_{split}"]
        counts = {name: int((y == label).sum()) for label, name in CLASS_NAMES.items()}
        if any(c != per_class for c in counts.values()):
            raise DataError(f"{path}: {split} class counts are {counts}; expected {per_class} of each")
    return RawCatHorse(
        arrays["x_train"],
        arrays["y_train"].astype(np.int64),
        arrays["idx_train"].astype(np.int64),
        arrays["x_test"],
        arrays["y_test"].astype(np.int64),
        arrays["idx_test"].astype(np.int64),
    )


# ----------------------------------------------------------------------------------------------------
# Locating the data


class _NotFound(DataError):
    """No npz at any searched place (the one case where ``download=True`` may fetch the data)."""


def npz_candidates(
    npz_path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    repo_root: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> list[tuple[str, Path]]:
    """The places searched for the npz, in order, as (how it was chosen, path) pairs.

    ``environ``, ``repo_root`` and ``cwd`` default to ``os.environ``, the folder that holds the
    ``earlylin`` package and ``Path.cwd()``; they are parameters so the search can be tested.
    """
    if npz_path is not None:
        return [("npz_path argument", Path(npz_path).expanduser())]
    env = os.environ if environ is None else environ
    repo = Path(earlylin.__file__).resolve().parents[1] if repo_root is None else Path(repo_root)
    here = Path.cwd() if cwd is None else Path(cwd)
    out: list[tuple[str, Path]] = []
    if env.get(NPZ_ENV):
        out.append((f"${NPZ_ENV}", Path(env[NPZ_ENV]).expanduser()))
    out.append(("beside the repository", repo.parent / "shared" / "data" / NPZ_NAME))
    out.append(("below the working directory", here / "shared" / "data" / NPZ_NAME))
    out.append(("beside the working directory", here.parent / "shared" / "data" / NPZ_NAME))
    return out


def _torchvision_available() -> bool:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return False
    return True


def _how_to_get_data() -> str:
    how = (
        f"To get the data: pass --cifar-root DIR where DIR holds {BATCH_DIR}/ (the CIFAR-10 python batches, "
        f"from {CIFAR_URL}), set ${NPZ_ENV} to {NPZ_NAME}, or run with --download"
    )
    if _torchvision_available():
        return how + " (downloads ~170 MB with torchvision.datasets.CIFAR10; needs internet)."
    return how + " — which needs torchvision, and torchvision is not installed: pip install torchvision."


def find_npz(
    npz_path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    repo_root: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Path:
    """The first existing place of :func:`npz_candidates`; else :class:`DataError` listing them all."""
    places = npz_candidates(npz_path, environ=environ, repo_root=repo_root, cwd=cwd)
    for _, path in places:
        if path.is_file():
            return path
    lines = [f"  - {path}  ({how})" for how, path in places]
    if npz_path is None and not (os.environ if environ is None else environ).get(NPZ_ENV):
        lines.insert(0, f"  - ${NPZ_ENV}  (unset)")
    listed = "\n".join(lines)
    raise _NotFound(f"CIFAR-10 cats/horses data not found. Looked for {NPZ_NAME} at:\n{listed}\n{_how_to_get_data()}")


def download_cifar(root: str | os.PathLike[str]) -> Path:
    """Fetch the CIFAR-10 python batches into ``root`` with torchvision; returns the batch folder."""
    root = Path(root).expanduser()
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as exc:
        raise DataError(
            f"--download needs torchvision, which is not installed: pip install torchvision (or fetch {CIFAR_URL}, "
            f"extract it into {root} and pass --cifar-root {root})"
        ) from exc
    try:
        CIFAR10(str(root), train=True, download=True)
    except Exception as exc:  # URLError, RuntimeError on a bad md5, OSError on a full disk, …
        raise DataError(
            f"downloading CIFAR-10 into {root} failed ({type(exc).__name__}: {exc}); check the internet "
            f"connection, or fetch {CIFAR_URL} by hand, extract it into {root} and pass --cifar-root {root}"
        ) from exc
    return root / BATCH_DIR


# ----------------------------------------------------------------------------------------------------
# Preprocessing


def pool_images(images: np.ndarray, k: int = POOL) -> np.ndarray:
    """Average-pool (N, H, W, C) images over non-overlapping k×k blocks → (N, C, H/k, W/k) float64 NCHW."""
    n, h, w, c = images.shape
    if h % k or w % k:
        raise ConfigError(f"pooling size {k} does not divide the image size {h}×{w}")
    out = np.empty((n, c, h // k, w // k))
    for start in range(0, n, _POOL_ROWS):
        block = images[start : start + _POOL_ROWS].astype(np.float64)
        pooled = block.reshape(-1, h // k, k, w // k, k, c).mean(axis=(2, 4))
        out[start : start + _POOL_ROWS] = pooled.transpose(0, 3, 1, 2)
    return out


def standardise(
    x_train: np.ndarray, x_test: np.ndarray, source: str = "data"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-coordinate standardisation with training statistics: (z_train, z_test, mean, std).

    mean and std (ddof = 0) are taken over axis 0 of ``x_train`` only; ``z = (x − mean)/std`` for both
    splits. Then each training coordinate has mean 0 and variance 1, so mean‖z‖² = d (Tr Σ = d).
    """
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    if not (std > 0).all():
        raise DataError(f"{source}: {int((std <= 0).sum())} input coordinate(s) are constant over the training set")
    return (x_train - mean) / std, (x_test - mean) / std, mean, std


def labels_pm1(labels: np.ndarray) -> np.ndarray:
    """Original labels 3/7 → float64 −1 (cat) / +1 (horse)."""
    return np.where(labels == HORSE, 1.0, -1.0)


def preprocess(raw: RawCatHorse, source: str) -> CatHorse:
    """Pool 4×4, standardise with training statistics, encode labels ±1 (module docstring, steps 2–4)."""
    z_tr, z_te, mean, std = standardise(pool_images(raw.x_train), pool_images(raw.x_test), source)
    return CatHorse(
        x_train=z_tr,
        y_train=labels_pm1(raw.labels_train),
        x_test=z_te,
        y_test=labels_pm1(raw.labels_test),
        mean=mean,
        std=std,
        idx_train=raw.idx_train,
        idx_test=raw.idx_test,
        source=source,
    )


# ----------------------------------------------------------------------------------------------------
# Cache

_CACHE_KEYS = ("x_train", "y_train", "x_test", "y_test", "mean", "std", "idx_train", "idx_test")


def cache_path(cache_dir: str | os.PathLike[str], source_sha256: str) -> Path:
    return Path(cache_dir).expanduser() / f"cifar_cat_horse_pooled_{source_sha256[:16]}.npz"


def _batch_dir_sha256(folder: Path) -> str:
    """sha256 over the names and contents of the seven batch files (the cache key of a batch folder)."""
    h = hashlib.sha256()
    for name in BATCH_FILES:
        h.update(f"{name}\0{sha256_file(folder / name)}\0".encode())
    return h.hexdigest()


def _load_cache(path: Path, source_sha256: str, source: str) -> CatHorse | None:
    """The cached arrays, or None if absent, unreadable, of another format/source or mis-shaped."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            a = {k: z[k] for k in _CACHE_KEYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if meta.get("format") != CACHE_FORMAT or meta.get("source_sha256") != source_sha256:
        return None
    stat_shape = (CHANNELS, POOLED_SIDE, POOLED_SIDE)
    for split in SPLITS:
        x, y, idx = a[f"x_{split}"], a[f"y_{split}"], a[f"idx_{split}"]
        if x.dtype != np.float64 or x.ndim != 4 or x.shape[1:] != stat_shape or x.shape[0] < 1:
            return None
        if y.dtype != np.float64 or y.shape != x.shape[:1] or not np.isin(y, (-1.0, 1.0)).all():
            return None
        if idx.shape != x.shape[:1] or idx.dtype.kind not in "iu" or not np.isfinite(x).all():
            return None
    if any(a[k].shape != stat_shape or a[k].dtype != np.float64 for k in ("mean", "std")):
        return None
    return CatHorse(**a, source=source, from_cache=True)


def _store_cache(path: Path, data: CatHorse, source_sha256: str) -> None:
    meta = json.dumps({"format": CACHE_FORMAT, "source_sha256": source_sha256, "source": data.source})
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(meta), **{k: getattr(data, k) for k in _CACHE_KEYS})
    try:
        write_bytes_atomic(path, buf.getvalue())
    except OSError as exc:  # a read-only cache must not stop a run
        warnings.warn(f"could not write the CIFAR cache {path}: {exc}", RuntimeWarning, stacklevel=3)


# ----------------------------------------------------------------------------------------------------
# Entry point


def load_cat_horse(
    npz_path: str | os.PathLike[str] | None = None,
    cifar_root: str | os.PathLike[str] | None = None,
    download: bool = False,
    cache_dir: CacheDir = DEFAULT,
) -> CatHorse:
    """The Fig 3 data set (THEORY §5): 10,000/2,000 cats vs horses, 4×4-pooled, standardised, labels ±1.

    Args:
        npz_path: ``cifar10_cat_horse.npz``; None searches ``$EARLYLIN_CIFAR_NPZ``, ``<repo>/../shared/data``,
            ``./shared/data`` and ``../shared/data``.
        cifar_root: a folder holding ``cifar-10-batches-py/`` (``--cifar-root``); takes precedence.
        download: ``--download``: fetch CIFAR-10 with torchvision into ``cifar_root`` when its batches
            are missing, or, without ``cifar_root``, into ``<cache_dir>/cifar10`` (default cache dir if
            ``cache_dir`` is None) when no npz is found. An explicit ``npz_path`` is never replaced.
            Never implicit.
        cache_dir: where the pooled arrays are cached; default :func:`earlylin.records.default_cache_dir`;
            None disables the cache.

    Returns:
        :class:`CatHorse`. Raises :class:`DataError` when the data is missing or fails a check.
    """
    if cache_dir is DEFAULT:
        cache_dir = default_cache_dir()
    if cifar_root is not None:
        folder = batch_dir(cifar_root)
        if download and _missing_batch_files(folder):
            folder = download_cifar(cifar_root)
        return _load(folder, "batches", cache_dir)
    try:
        location = find_npz(npz_path)
    except _NotFound as not_found:
        if not download or npz_path is not None:
            raise
        root = Path(cache_dir if cache_dir is not None else default_cache_dir()).expanduser() / "cifar10"
        folder = root / BATCH_DIR
        if _missing_batch_files(folder):
            try:
                folder = download_cifar(root)
            except DataError as exc:
                raise DataError(f"{not_found}\n--download failed: {exc}") from exc
        return _load(folder, "batches", cache_dir)
    return _load(location, "npz", cache_dir)


def _missing_batch_files(folder: Path) -> list[str]:
    return [name for name in BATCH_FILES if not (folder / name).is_file()]


def _load(location: Path, kind: Literal["npz", "batches"], cache_dir: str | os.PathLike[str] | None) -> CatHorse:
    if kind == "npz":
        digest = sha256_file(location)
        if digest != NPZ_SHA256:
            raise _checksum_error(location, digest, NPZ_SHA256)
    else:
        missing = _missing_batch_files(location)
        if missing:
            raise DataError(
                f"{location} lacks {', '.join(missing)}: --cifar-root DIR must hold {BATCH_DIR}/ with "
                f"{', '.join(BATCH_FILES)}. {_how_to_get_data()}"
            )
        digest = _batch_dir_sha256(location)
    source = str(location)
    path = cache_path(cache_dir, digest) if cache_dir is not None else None
    if path is not None and (cached := _load_cache(path, digest, source)) is not None:
        return cached
    raw = read_npz(location, sha256=None) if kind == "npz" else read_batches(location)
    data = preprocess(raw, source)
    if path is not None:
        _store_cache(path, data, digest)
    return data
