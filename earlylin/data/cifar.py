"""CIFAR-10 cats vs horses, pooled to 8×8×3 and standardised: the real data of paper Fig 3 (docs/theory.md §5).

Usage::

    from earlylin.data.cifar import load_cat_horse
    data = load_cat_horse()                                  # found on disk, cached after the first call
    data = load_cat_horse(cifar_root="~/data")               # ~/data/cifar-10-batches-py/ (torchvision layout)
    data = load_cat_horse(download=True)                     # fetch the official archive if nothing is found
    x, y = data.flat("train"), data.y_train                  # (10000, 192) float64, (10000,) ±1
    small = data.subsample(n_train=1000, n_test=500, seed=0) # for --quick runs

Where the images come from (the npz, the official python batches or archive, the download) is
:mod:`earlylin.data.cifar_files`; this module selects, pools, standardises and caches them.

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
   exactly d = 192 (up to rounding): Tr Σ = d, as Assumption 3.1 (docs/theory.md §1) asks. Per-coordinate
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
(``sha16``: the first 16 hex digits of the source's sha256: the npz's, the archive's, or one over the
seven batch files; the full sha256 is stored inside and checked), written atomically and reloaded on
later calls (``CatHorse.from_cache``). A cache file that fails to load, has the wrong shapes or
dtypes, or was made by another :data:`CACHE_FORMAT` or source is ignored and rebuilt. ``cache_dir=None``
neither reads nor writes it (nor anything else, unless ``download=True`` must fetch the data).

Every problem with the data raises :class:`earlylin.errors.DataError` naming the file.
"""

from __future__ import annotations

import enum
import io
import json
import os
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal, TypeVar

import numpy as np

from earlylin.data import cifar_batches
from earlylin.data import cifar_files as files
from earlylin.data.cifar_files import (
    CAT,
    CHANNELS,
    CLASS_NAMES,
    HORSE,
    SIDE,
    SPLITS,
    TEST_BATCH,
    TRAIN_BATCHES,
    RawCatHorse,
    Source,
)
from earlylin.errors import ConfigError, DataError
from earlylin.runtime.records import default_cache_dir, write_bytes_atomic

POOL: Final = 4  # 4×4 average pooling → 8×8×3
POOLED_SIDE: Final = SIDE // POOL
D: Final = CHANNELS * POOLED_SIDE * POOLED_SIDE  # 192
CACHE_FORMAT: Final = "earlylin.cifar_cat_horse_pooled/1"

_POOL_ROWS = 1000  # images pooled at a time (bounds the float64 working set to ~25 MB)


class _Default(enum.Enum):
    TOKEN = "default"


DEFAULT: Final = _Default.TOKEN
"""Sentinel for ``cache_dir``: :func:`earlylin.runtime.records.default_cache_dir` at call time."""

CacheDir = str | os.PathLike[str] | None | Literal[_Default.TOKEN]
PathArg = str | os.PathLike[str]


# ----------------------------------------------------------------------------------------------------
# The result


class PooledImages:
    """What every pooled CIFAR set has: ``x_train`` / ``x_test`` (N, 3, 8, 8), their sizes, flat views, and the
    same set on the sphere (``source`` names it). :class:`CatHorse` and
    :class:`earlylin.data.cifar_classes.CifarClasses` are frozen dataclasses with these fields."""

    x_train: np.ndarray
    x_test: np.ndarray
    source: str

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

    def on_sphere(self: _P) -> _P:
        """The same images rescaled to ‖x‖ = √d each (module docstring, step 6); directions unchanged."""
        return replace(self, x_train=to_sphere(self.x_train), x_test=to_sphere(self.x_test),  # type: ignore[type-var]
                       source=f"{self.source} [on the sphere ‖x‖ = √d]")


_P = TypeVar("_P", bound=PooledImages)


@dataclass(frozen=True, eq=False)
class CatHorse(PooledImages):
    """The pooled, standardised cats-vs-horses set of Fig 3 (docs/theory.md §5); see the module docstring.

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


def to_sphere(x: np.ndarray) -> np.ndarray:
    """Images (N, C, H, W) each rescaled to ‖x‖ = √d, d = C·H·W (module docstring, step 6)."""
    flat = x.reshape(x.shape[0], -1)
    return x * np.sqrt(flat.shape[1] / np.sum(flat * flat, axis=1)).reshape(-1, 1, 1, 1)


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
# Selection


def select_cat_horse(batches: Iterable[tuple[str, np.ndarray, np.ndarray]], where: str) -> RawCatHorse:
    """The cats and horses of the six batches (name, images, labels), in the official order (step 1).

    Train: rows of data_batch_1..5 (concatenated, official indices 0..) with label 3 or 7; test: those
    of test_batch. The batches may arrive in any order (a tarball's); only the selected rows are kept.
    No count check (small test folders are allowed); each split needs at least one image of each class.
    """
    parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
    for name, images, labels in batches:
        keep = np.flatnonzero((labels == CAT) | (labels == HORSE))
        parts[name] = (images[keep], labels[keep], keep, labels.size)

    def join(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if missing := [n for n in names if n not in parts]:
            raise DataError(f"{where} lacks {', '.join(missing)}")
        xs, ys, idx, offset = [], [], [], 0
        for name in names:
            x, y, keep, size = parts[name]
            xs.append(x)
            ys.append(y)
            idx.append(keep + offset)
            offset += size
        y = np.concatenate(ys)
        for label, cname in CLASS_NAMES.items():
            if not (y == label).any():
                raise DataError(f"{where}: no {cname} (label {label}) in {', '.join(names)}")
        return np.concatenate(xs), y, np.concatenate(idx).astype(np.int64)

    x_tr, y_tr, i_tr = join(TRAIN_BATCHES)
    x_te, y_te, i_te = join((TEST_BATCH,))
    return RawCatHorse(x_tr, y_tr, i_tr, x_te, y_te, i_te)


def read_batches(cifar_root: PathArg) -> RawCatHorse:
    """The cats and horses of ``--cifar-root`` (its ``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``)."""
    source = files.root_source(cifar_root)
    return select_cat_horse(cifar_batches.iter_batches(source), str(source.path))


def read_source(source: Source) -> RawCatHorse:
    """The selected uint8 images of any :class:`Source` (integrity is checked by :func:`files.source_digest`)."""
    if source.kind == "npz":
        return files.read_npz(source.path, sha256=None)
    return select_cat_horse(cifar_batches.iter_batches(source), str(source.path))


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


def cache_path(cache_dir: PathArg, source_sha256: str) -> Path:
    """``<cache_dir>/cifar_cat_horse_pooled_<first 16 hex digits of the sha256>.npz``."""
    return Path(cache_dir).expanduser() / f"cifar_cat_horse_pooled_{source_sha256[:16]}.npz"



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
    npz_path: PathArg | None = None,
    cifar_root: PathArg | None = None,
    download: bool = False,
    cache_dir: CacheDir = DEFAULT,
    *,
    data_dir: PathArg | None = None,
    url: str | None = None,
    known_hash: str | None = None,
    quiet: bool = False,
    search_npz: bool = True,
) -> CatHorse:
    """The Fig 3 data set (docs/theory.md §5): 10,000/2,000 cats vs horses, 4×4-pooled, standardised, labels ±1.

    Args:
        npz_path: ``cifar10_cat_horse.npz`` (``--npz``); the only place looked at when given.
        cifar_root: a folder holding ``cifar-10-batches-py/`` (or ``cifar-10-python.tar.gz``), e.g.
            torchvision's (``--cifar-root``); the only place looked at when given (never downloaded into).
        download: ``--download``: when neither is given and nothing is found (the npz search, then the
            data dir), fetch the official archive into the data dir. Never implicit.
        cache_dir: where the pooled arrays are cached; default :func:`earlylin.runtime.records.default_cache_dir`
            (at call time); None neither reads nor writes any cache.
        data_dir: where the archive is looked for and downloaded (``cifar_files.resolve_data_dir``:
            else ``$EARLYLIN_DATA_DIR``, else ``pooch.os_cache("earlylin")``).
        url, known_hash: the archive's URL and hash (default ``$EARLYLIN_CIFAR_URL`` /
            ``$EARLYLIN_CIFAR_MD5``, else the official ones); the hash is checked on every read.
        quiet: no download log or progress bar (shown only when stderr is a terminal anyway).
        search_npz: False skips the npz search (only the data dir, then the download).

    Returns:
        :class:`CatHorse`. Raises :class:`DataError` when the data is missing or fails a check.
    """
    if cache_dir is DEFAULT:
        cache_dir = default_cache_dir()
    if cifar_root is not None:
        source = files.root_source(cifar_root)
    elif npz_path is not None:
        source = Source("npz", files.find_npz(npz_path))
    else:
        folder = files.resolve_data_dir(data_dir)
        found = files.find_source(folder, search_npz=search_npz)
        if found is None and not download:
            raise files.not_found_error(files.npz_candidates() if search_npz else [], folder, files.resolve_url(url))
        source = found or Source("tarball", files.download_cifar(folder, url=url, known_hash=known_hash, quiet=quiet))
    digest = files.source_digest(source, known_hash)
    path = cache_path(cache_dir, digest) if cache_dir is not None else None
    if path is not None and (cached := _load_cache(path, digest, str(source.path))) is not None:
        return cached
    data = preprocess(read_source(source), str(source.path))
    if path is not None:
        _store_cache(path, data, digest)
    return data
