"""The official CIFAR-10 python-format batches: a restricted unpickler and the batch readers.

:func:`read_batch` reads one ``data_batch_*`` / ``test_batch`` file; :func:`iter_batches` streams
the train and test batches of a :class:`~earlylin.data.cifar_files.Source` — an extracted
``cifar-10-batches-py/`` folder or the ``cifar-10-python.tar.gz`` archive read directly, one batch in
memory at a time, nothing extracted. Only numpy arrays may be unpickled (no arbitrary code).
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final

import numpy as np

from earlylin.data.cifar_files import (
    BATCH_DIR,
    BATCH_FILES,
    CHANNELS,
    CLASS_NAMES,
    META_FILE,
    N_CLASSES,
    SIDE,
    TARBALL_NAME,
    TEST_BATCH,
    TRAIN_BATCHES,
    PathArg,
    Source,
)
from earlylin.errors import DataError


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what CIFAR-10 batches hold: numpy arrays/dtypes and (for protocol-2 bytes) codecs."""

    _ALLOWED: Final = {  # numpy.core: numpy 1.x pickles (the official batches); numpy._core: numpy ≥ 2
        *((f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")),
        *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # numpy ≥ 2 renamed numpy.core
        return super().find_class(module, name)


def _unpickle(fh: IO[bytes], where: str) -> dict[str, Any]:
    """The dict pickled in ``fh`` (keys decoded to str); ``where`` names the file in errors."""
    try:
        obj = _BatchUnpickler(fh, encoding="latin1").load()
    except Exception as exc:  # truncated or foreign files raise EOFError, UnpicklingError, ValueError, …
        raise DataError(
            f"{where} is truncated or not a CIFAR-10 python batch ({type(exc).__name__}: {exc}); "
            "delete it and download the data again"
        ) from exc
    if not isinstance(obj, dict):
        raise DataError(f"{where} holds a {type(obj).__name__}, not the dict of a CIFAR-10 python batch")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _unpickle_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return _unpickle(fh, str(path))
    except FileNotFoundError as exc:
        raise DataError(f"{path} is missing (expected the CIFAR-10 python batches in {path.parent})") from exc
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _parse_batch(batch: dict[str, Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DataError(f"{where} lacks the key(s) {', '.join(missing)} of a CIFAR-10 batch (has {sorted(batch)})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE**2:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: 'data' is {desc}; expected uint8 (N, {3 * SIDE**2})")
    try:
        labels = np.asarray(batch["labels"])
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: 'labels' is not a list of integers ({exc})") from exc
    if labels.ndim != 1 or labels.size != data.shape[0] or (labels.size and labels.dtype.kind not in "iu"):
        raise DataError(f"{where}: 'labels' has shape {labels.shape} dtype {labels.dtype}; "
                        f"expected {data.shape[0]} ints")
    labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= N_CLASSES)
    if bad.any():
        row = np.flatnonzero(bad)[0]
        raise DataError(f"{where}: label {labels[row]} at row {row} is outside 0..{N_CLASSES - 1}")
    images = data.reshape(-1, CHANNELS, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_batch(path: PathArg) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch file → images (N, 32, 32, 3) uint8 HWC and labels (N,) int64.

    A batch is a pickled dict: ``data`` (N, 3072) uint8, each row the image's R plane (1024 values,
    row-major), then G, then B (reshaped to CHW, transposed to HWC); ``labels`` ints 0..9. A
    restricted unpickler admits only numpy arrays and plain containers, so a hostile file cannot run
    code. :class:`DataError` names the file for a missing, truncated or malformed batch.
    """
    path = Path(path)
    return _parse_batch(_unpickle_file(path), str(path))


def _check_meta(meta: dict[str, Any], where: str) -> None:
    names = meta.get("label_names")
    if not isinstance(names, Sequence) or len(names) != N_CLASSES:
        raise DataError(f"{where}: 'label_names' is missing or not {N_CLASSES} names; is this CIFAR-10?")
    decoded = [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]
    for label, name in CLASS_NAMES.items():
        if decoded[label] != name:
            raise DataError(f"{where}: class {label} is {decoded[label]!r}, expected {name!r}; is this CIFAR-10?")


def iter_batches(source: Source) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, images, labels) of the six batches of a batch folder or tarball, one batch in memory at a time.

    A folder yields them in the official order; a tarball in its member order (read in one pass). The
    meta file is checked (first for a folder; for a tarball before the end), and every batch is required.
    """
    if source.kind == "batches":
        _check_meta(_unpickle_file(source.path / META_FILE), str(source.path / META_FILE))
        for name in (*TRAIN_BATCHES, TEST_BATCH):
            yield name, *read_batch(source.path / name)
        return
    if source.kind != "tarball":
        raise ValueError(f"iter_batches reads a batch folder or tarball, not {source.kind}")
    seen: set[str] = set()
    try:
        with tarfile.open(source.path, "r:gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or len(parts) < 2 or parts[-2] != BATCH_DIR or parts[-1] not in BATCH_FILES:
                    continue
                where = f"{source.path}:{member.name}"
                fh = tar.extractfile(member)
                assert fh is not None  # a regular file
                obj = _unpickle(fh, where)
                seen.add(parts[-1])
                if parts[-1] == META_FILE:
                    _check_meta(obj, where)
                else:
                    yield parts[-1], *_parse_batch(obj, where)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{source.path} is unreadable or truncated ({type(exc).__name__}: {exc}); "
                        "delete it and pass --download again") from exc
    missing = [name for name in BATCH_FILES if name not in seen]
    if missing:
        raise DataError(f"{source.path} lacks {BATCH_DIR}/{', '.join(missing)}; is this {TARBALL_NAME}?")
