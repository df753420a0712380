"""CIFAR-10 with any set of classes (ten by default), pooled and standardised as the cats-vs-horses set
(:mod:`earlylin.data.cifar`, steps 2, 3, 5–7), with one-hot labels: the data of the many-class studies.

Sources: an npz with the keys of ``shared/data/cifar10_10class_10k.npz`` (``--npz``; found beside the repository
or the working directory by default: the first 10,000 training images — exactly ``data_batch_1`` — and the first
2,000 of ``test_batch``, sha256-checked), or the official batches or archive (``--cifar-root``: all 50,000 /
10,000 images). Rows keep the official order; class c of ``classes`` (in the given order) is column c of the
one-hot targets. Every problem with the data raises :class:`earlylin.errors.DataError` naming the file.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import numpy as np

from earlylin.data import cifar_batches
from earlylin.data import cifar_files as files
from earlylin.data.cifar import PooledImages, pool_images, standardise
from earlylin.errors import ConfigError, DataError, arg

NPZ_NAME: Final = "cifar10_10class_10k.npz"
NPZ_SHA256: Final = "21ada323ed3205ddcad06073cee10faa8891c19d06337bf5a0456ba4b4421d7d"
CLASS_NAMES: Final = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True, eq=False)
class CifarClasses(PooledImages):
    """Pooled, standardised images ``x_*`` (N, 3, 8, 8) float64 NCHW, one-hot ``y_*`` (N, K), the official
    ``labels_*`` (N,) and indices ``idx_*``, the ``classes`` chosen and a ``source`` line."""

    x_train: np.ndarray
    y_train: np.ndarray
    labels_train: np.ndarray
    idx_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels_test: np.ndarray
    idx_test: np.ndarray
    classes: tuple[int, ...]
    source: str
    from_cache: bool = False  # read from the data themselves every time (a few seconds): no pooled-array cache

    def subsample(self, n_train: int, n_test: int, seed: int) -> CifarClasses:
        """Random rows (``default_rng(seed)``, train then test), kept in their original order; the full set's
        standardisation is kept."""
        rng = np.random.default_rng(seed)
        rows = []
        for n, have, name in ((n_train, self.n_train, "n_train"), (n_test, self.n_test, "n_test")):
            if not 1 <= n <= have:
                raise ConfigError(f"{name}={n} is out of range; valid: 1..{have}")
            rows.append(np.sort(rng.choice(have, n, replace=False)))
        tr, te = rows
        return replace(self, x_train=self.x_train[tr], y_train=self.y_train[tr], labels_train=self.labels_train[tr],
                       idx_train=self.idx_train[tr], x_test=self.x_test[te], y_test=self.y_test[te],
                       labels_test=self.labels_test[te], idx_test=self.idx_test[te],
                       source=f"{self.source} [subsample n_train={n_train} n_test={n_test} seed={seed}]")


def check_classes(classes: tuple[int, ...]) -> None:
    if len(classes) < 2 or len(set(classes)) != len(classes) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < 10 for c in classes):
        raise ConfigError(f"{arg('classes', list(classes))}: give two or more distinct CIFAR-10 labels in [0, 9] "
                          f"({', '.join(f'{i} {n}' for i, n in enumerate(CLASS_NAMES))})")


def _raw_npz(path: Path, sha256: str | None) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: no such file (the ten-class npz: give --npz FILE, or --cifar-root DIR with the "
                        "official batches)")
    if sha256 is not None and (got := files.sha256_file(path)) != sha256:
        raise DataError(f"{path}: sha256 {got}, expected {sha256}: truncated, or not {NPZ_NAME}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("x_train", "y_train", "idx_train", "x_test", "y_test", "idx_test")
                       if k not in z.files]
            if missing:
                raise DataError(f"{path} lacks the arrays {missing} (has {', '.join(z.files)})")
            raw = {k: z[k] for k in ("x_train", "y_train", "idx_train", "x_test", "y_test", "idx_test")}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is unreadable or truncated ({type(exc).__name__}: {exc})") from exc
    for split in files.SPLITS:
        x = raw[f"x_{split}"]
        if x.dtype != np.uint8 or x.shape[1:] != (files.SIDE, files.SIDE, files.CHANNELS):
            raise DataError(f"{path}: x_{split} is {x.dtype} {x.shape}; expected uint8 (N, 32, 32, 3)")
    return raw


def _raw_batches(cifar_root: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    source = files.root_source(cifar_root)
    got = dict((name, (x, y)) for name, x, y in cifar_batches.iter_batches(source))
    train = [got[name] for name in files.TRAIN_BATCHES]
    x_tr, y_tr = np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])
    x_te, y_te = got[files.TEST_BATCH]
    return {"x_train": x_tr, "y_train": y_tr, "idx_train": np.arange(len(y_tr)), "x_test": x_te, "y_test": y_te,
            "idx_test": np.arange(len(y_te))}


def default_npz() -> Path:
    """Where the ten-class npz is looked for: ``shared/data/`` beside the repository, else below or beside the
    working directory (the first that exists; else the first)."""
    repo = Path(__file__).resolve().parents[2]
    places = [repo.parent / "shared" / "data" / NPZ_NAME, Path.cwd() / "shared" / "data" / NPZ_NAME,
              Path.cwd().parent / "shared" / "data" / NPZ_NAME]
    return next((p for p in places if p.is_file()), places[0])


def load_classes(classes: tuple[int, ...] = tuple(range(10)), npz_path: str | os.PathLike[str] | None = None,
                 cifar_root: str | os.PathLike[str] | None = None) -> CifarClasses:
    """The images of ``classes``, pooled 4×4 to 3×8×8 and standardised per coordinate (training statistics)."""
    check_classes(classes)
    if cifar_root is not None:
        raw, where = _raw_batches(cifar_root), str(Path(cifar_root).expanduser())
    else:
        path = Path(npz_path).expanduser() if npz_path is not None else default_npz()
        raw, where = _raw_npz(path, NPZ_SHA256 if path.name == NPZ_NAME else None), str(path)
    out = {}
    for split in files.SPLITS:
        labels = raw[f"y_{split}"].astype(np.int64)
        keep = np.isin(labels, classes)
        if not keep.any():
            raise DataError(f"{where}: no {split} image has a label in {list(classes)}")
        column = {c: i for i, c in enumerate(classes)}
        out[split] = (pool_images(raw[f"x_{split}"][keep]), labels[keep], raw[f"idx_{split}"][keep].astype(np.int64),
                      np.eye(len(classes))[[column[c] for c in labels[keep]]])
    x_tr, x_te, _, _ = standardise(out["train"][0], out["test"][0], where)
    return CifarClasses(x_tr, out["train"][3], out["train"][1], out["train"][2], x_te, out["test"][3], out["test"][1],
                        out["test"][2], tuple(classes), f"{where} (CIFAR-10 classes {list(classes)})")
