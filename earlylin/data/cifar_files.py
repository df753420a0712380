"""CIFAR-10 on disk: reading the raw sources, finding them, and downloading the official archive.

Sources (:mod:`earlylin.data.cifar` selects, pools and standardises their images):

- ``cifar10_cat_horse.npz`` (the offline copy, README.md, section Data): the cats and horses only, uint8 HWC,
  sha256 :data:`NPZ_SHA256`.
- ``cifar-10-batches-py/``: the official python batches (torchvision's layout),
  :func:`earlylin.data.cifar_batches.read_batch`.
- ``cifar-10-python.tar.gz`` (:data:`CIFAR_URL`, md5 :data:`CIFAR_MD5`): the same batches, read straight
  from the archive (nothing is extracted); its hash is checked on every read.

Search order (:func:`find_source`; an explicit ``cifar_root`` or ``npz_path`` is the only place looked at):
the npz at ``$EARLYLIN_CIFAR_NPZ``, ``<repo>/../shared/data/``, ``./shared/data/``, ``../shared/data/``;
``<data dir>/cifar-10-batches-py/``; ``<data dir>/cifar-10-python.tar.gz``. The data dir
(:func:`resolve_data_dir`) is ``data_dir=``, ``$EARLYLIN_DATA_DIR`` or ``pooch.os_cache("earlylin")``.
Only with ``download=True`` (``--download``) and nothing found does :func:`download_cifar` fetch the
archive there with pooch (hash verified, a bad download deleted); ``url=``/``$EARLYLIN_CIFAR_URL`` and
``known_hash=``/``$EARLYLIN_CIFAR_MD5`` override the URL and hash. Every problem raises
:class:`earlylin.errors.DataError` naming the file (or URL).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlparse

import numpy as np

from earlylin.errors import ConfigError, DataError

CAT: Final = 3
HORSE: Final = 7
CLASS_NAMES: Final = {CAT: "cat", HORSE: "horse"}
N_CLASSES: Final = 10
SIDE: Final = 32  # CIFAR images are 32×32×3
CHANNELS: Final = 3
N_TRAIN_PER_CLASS: Final = 5000
N_TEST_PER_CLASS: Final = 1000
SPLITS: Final = ("train", "test")

NPZ_NAME: Final = "cifar10_cat_horse.npz"
NPZ_SHA256: Final = "71401619a6c25cf420174ff37fce50964dfbbfc3ad3c3e889d5459fd13963eb0"
NPZ_ENV: Final = "EARLYLIN_CIFAR_NPZ"
BATCH_DIR: Final = "cifar-10-batches-py"
TRAIN_BATCHES: Final = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH: Final = "test_batch"
META_FILE: Final = "batches.meta"
BATCH_FILES: Final = (*TRAIN_BATCHES, TEST_BATCH, META_FILE)
TARBALL_NAME: Final = "cifar-10-python.tar.gz"
CIFAR_URL: Final = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5: Final = "c58f30108f718f92721af3b95e74349a"  # as published with the data set and in torchvision
DATA_DIR_ENV: Final = "EARLYLIN_DATA_DIR"
URL_ENV: Final = "EARLYLIN_CIFAR_URL"
MD5_ENV: Final = "EARLYLIN_CIFAR_MD5"
DOWNLOAD_TIMEOUT_S: Final = 30.0  # per connection attempt and per read, not for the whole download

_CHUNK = 1 << 20  # bytes per read when hashing

PathArg = str | os.PathLike[str]
OptPath = PathArg | None
Env = Mapping[str, str] | None  # None: os.environ


@dataclass(frozen=True)
class Source:
    """Where the images are: ``kind`` "npz" (the file), "batches" (the folder) or "tarball" (the archive)."""

    kind: Literal["npz", "batches", "tarball"]
    path: Path


@dataclass(frozen=True, eq=False)
class RawCatHorse:
    """The selected uint8 images before pooling: ``x_*`` (N, 32, 32, 3) HWC RGB, ``labels_*`` 3 or 7."""

    x_train: np.ndarray
    labels_train: np.ndarray
    idx_train: np.ndarray
    x_test: np.ndarray
    labels_test: np.ndarray
    idx_test: np.ndarray


# ----------------------------------------------------------------------------------------------------
# Checksums


def file_digests(path: PathArg, *algorithms: str) -> dict[str, str]:
    """Hex digests of a file for each hashlib algorithm named (one pass, 1 MiB reads)."""
    hashes = {alg: hashlib.new(alg) for alg in algorithms}
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                for h in hashes.values():
                    h.update(chunk)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    return {alg: h.hexdigest() for alg, h in hashes.items()}


def sha256_file(path: PathArg) -> str:
    """Hex sha256 of a file."""
    return file_digests(path, "sha256")["sha256"]


def resolve_known_hash(known_hash: str | None = None, environ: Env = None) -> str:
    """``"alg:hex"`` the archive must match: ``known_hash``, else ``$EARLYLIN_CIFAR_MD5``, else the official md5.

    A bare hex string is an md5 (32 digits) or a sha256 (64 digits).
    """
    env = os.environ if environ is None else environ
    value = (known_hash or env.get(MD5_ENV) or CIFAR_MD5).strip().lower()
    alg, _, digest = value.rpartition(":")
    alg = alg or {32: "md5", 64: "sha256"}.get(len(digest), "")
    if alg not in ("md5", "sha1", "sha256") or not digest or any(c not in "0123456789abcdef" for c in digest):
        raise ConfigError(f"known hash {value!r} is invalid; valid: 32 hex digits (md5), 64 (sha256) or 'alg:hex'")
    return f"{alg}:{digest}"


def _checksum_error(path: Path, alg: str, got: str, expected: str, hint: str) -> DataError:
    return DataError(f"{path} fails its checksum: {alg} {got}, expected {expected}; the file is corrupted, {hint}")


def source_digest(source: Source, known_hash: str | None = None) -> str:
    """Check ``source``'s integrity and return the sha256 that keys its pooled cache.

    npz: its sha256 must be :data:`NPZ_SHA256`; tarball: its hash must match :func:`resolve_known_hash`;
    batch folder: a sha256 over the names and sha256s of the seven files (no reference value exists).
    """
    path = source.path
    if source.kind == "npz":
        got = sha256_file(path)
        if got != NPZ_SHA256:
            raise _checksum_error(path, "sha256", got, NPZ_SHA256, "truncated or not the one described in "
                                  "shared/data/README.md (get it again, or pass --cifar-root DIR with the batches)")
        return got
    if source.kind == "tarball":
        alg, _, expected = resolve_known_hash(known_hash).partition(":")
        got = file_digests(path, "sha256", alg)
        if got[alg] != expected:
            raise _checksum_error(path, alg, got[alg], expected, f"incomplete or another file: delete it and pass "
                                  f"--download again (a mirror's archive with another hash: set ${MD5_ENV})")
        return got["sha256"]
    h = hashlib.sha256()
    for name in BATCH_FILES:
        h.update(f"{name}\0{sha256_file(path / name)}\0".encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------
# Readers


def read_npz(path: PathArg, sha256: str | None = NPZ_SHA256) -> RawCatHorse:
    """Read and check ``cifar10_cat_horse.npz`` (shared/data/README.md).

    Checks, each failure a :class:`DataError` naming the file: the sha256 (skipped if ``sha256`` is
    None), the keys, shapes and dtypes, labels in {3, 7}, and 5,000/5,000 train and 1,000/1,000 test.
    """
    path = Path(path)
    if sha256 is not None and (got := sha256_file(path)) != sha256:
        raise _checksum_error(path, "sha256", got, sha256, "truncated or not the one described in "
                              "shared/data/README.md (get it again, or pass --cifar-root DIR with the batches)")
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
            raise DataError(f"{path}: y_{split} holds label {y[bad][0]} at row {np.flatnonzero(bad)[0]}; "
                            "expected 3 or 7")
    for split, per_class in (("train", N_TRAIN_PER_CLASS), ("test", N_TEST_PER_CLASS)):
        counts = {name: int((arrays[f"y_{split}"] == label).sum()) for label, name in CLASS_NAMES.items()}
        if any(c != per_class for c in counts.values()):
            raise DataError(f"{path}: {split} class counts are {counts}; expected {per_class} of each")
    as_int = {k: arrays[k].astype(np.int64) for k in ("y_train", "idx_train", "y_test", "idx_test")}
    return RawCatHorse(arrays["x_train"], as_int["y_train"], as_int["idx_train"],
                       arrays["x_test"], as_int["y_test"], as_int["idx_test"])


# ----------------------------------------------------------------------------------------------------
# Finding the data


def resolve_data_dir(data_dir: OptPath = None, environ: Env = None) -> Path:
    """The data dir: ``data_dir``, else ``$EARLYLIN_DATA_DIR``, else ``pooch.os_cache("earlylin")``."""
    env = os.environ if environ is None else environ
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV]).expanduser()
    import pooch  # imported here: ~0.1 s, and only the CIFAR path needs it

    return Path(pooch.os_cache("earlylin"))


def resolve_url(url: str | None = None, environ: Env = None) -> str:
    """The archive's URL: ``url``, else ``$EARLYLIN_CIFAR_URL``, else :data:`CIFAR_URL` (http or https only)."""
    value = url or (os.environ if environ is None else environ).get(URL_ENV) or CIFAR_URL
    if urlparse(value).scheme not in ("http", "https"):
        raise ConfigError(f"CIFAR-10 URL {value!r} is invalid; valid: an http:// or https:// URL")
    return value


def batch_dir(cifar_root: PathArg) -> Path:
    """``<cifar_root>/cifar-10-batches-py``, or ``cifar_root`` itself if it holds the batches directly."""
    root = Path(cifar_root).expanduser()
    if not (root / BATCH_DIR).is_dir() and (root / TRAIN_BATCHES[0]).is_file():
        return root
    return root / BATCH_DIR


def _missing(folder: Path) -> list[str]:
    return [name for name in BATCH_FILES if not (folder / name).is_file()]


def root_source(cifar_root: PathArg) -> Source:
    """The batches of ``--cifar-root``: ``cifar-10-batches-py/`` in (or as) it, else its ``cifar-10-python.tar.gz``."""
    folder = batch_dir(cifar_root)
    missing = _missing(folder)
    if not missing:
        return Source("batches", folder)
    if (tarball := Path(cifar_root).expanduser() / TARBALL_NAME).is_file():
        return Source("tarball", tarball)
    what = f"lacks {', '.join(missing)}" if folder.is_dir() else "is not a folder"
    raise DataError(
        f"{folder} {what}: --cifar-root DIR must hold {BATCH_DIR}/ with {', '.join(BATCH_FILES)} (or {TARBALL_NAME}); "
        f"without --cifar-root, --download fetches {CIFAR_URL} into the data dir"
    )


def npz_candidates(
    npz_path: OptPath = None, *, environ: Env = None, repo_root: OptPath = None, cwd: OptPath = None
) -> list[tuple[str, Path]]:
    """The places searched for the npz, in order, as (how it was chosen, path) pairs.

    ``environ``, ``repo_root`` and ``cwd`` default to ``os.environ``, the folder that holds the
    ``earlylin`` package and ``Path.cwd()``; they are parameters so the search can be tested.
    """
    if npz_path is not None:
        return [("npz_path argument", Path(npz_path).expanduser())]
    env = os.environ if environ is None else environ
    repo = Path(__file__).resolve().parents[2] if repo_root is None else Path(repo_root)
    here = Path.cwd() if cwd is None else Path(cwd)
    out = [(f"${NPZ_ENV}", Path(env[NPZ_ENV]).expanduser())] if env.get(NPZ_ENV) else []
    out.append(("beside the repository", repo.parent / "shared" / "data" / NPZ_NAME))
    out.append(("below the working directory", here / "shared" / "data" / NPZ_NAME))
    out.append(("beside the working directory", here.parent / "shared" / "data" / NPZ_NAME))
    return out


def not_found_error(
    places: Sequence[tuple[str, Path]], data_dir: Path | None, url: str, environ: Env = None
) -> DataError:
    """The one-line error for missing data: every place searched, the data dir, the URL and what to do."""
    listed = [f"{path} ({how})" for how, path in places]
    explicit = any(how == "npz_path argument" for how, _ in places)
    if places and not explicit and not (os.environ if environ is None else environ).get(NPZ_ENV):
        listed.insert(0, f"${NPZ_ENV} (unset)")
    where = f"looked for {NPZ_NAME} at {'; '.join(listed)}" if listed else "the npz search was off"
    if data_dir is not None:
        where += f"; and for {BATCH_DIR}/ or {TARBALL_NAME} in the data dir {data_dir}"
    into = data_dir if data_dir is not None else f"the data dir (${DATA_DIR_ENV})"
    return DataError(
        f"CIFAR-10 cats/horses data not found: {where}. Pass --download to fetch {url} (md5 {CIFAR_MD5}, ~163 MB) "
        f"into {into} (${DATA_DIR_ENV} changes it), pass --cifar-root DIR where DIR holds {BATCH_DIR}/ "
        f"(e.g. torchvision's), or set ${NPZ_ENV} to {NPZ_NAME}"
    )


def find_npz(
    npz_path: OptPath = None, *, environ: Env = None, repo_root: OptPath = None, cwd: OptPath = None
) -> Path:
    """The first existing place of :func:`npz_candidates`; else :class:`DataError` listing them all."""
    places = npz_candidates(npz_path, environ=environ, repo_root=repo_root, cwd=cwd)
    for _, path in places:
        if path.is_file():
            return path
    raise not_found_error(places, None, resolve_url(environ=environ), environ)


def find_source(
    data_dir: OptPath = None, *, search_npz: bool = True, environ: Env = None,
    repo_root: OptPath = None, cwd: OptPath = None,
) -> Source | None:
    """The first of: the npz (:func:`npz_candidates`, if ``search_npz``), ``<data dir>/cifar-10-batches-py/``
    (all seven files), ``<data dir>/cifar-10-python.tar.gz``; None if none exists."""
    if search_npz:
        for _, path in npz_candidates(environ=environ, repo_root=repo_root, cwd=cwd):
            if path.is_file():
                return Source("npz", path)
    folder = resolve_data_dir(data_dir, environ)
    if not _missing(folder / BATCH_DIR):
        return Source("batches", folder / BATCH_DIR)
    if (folder / TARBALL_NAME).is_file():
        return Source("tarball", folder / TARBALL_NAME)
    return None


# ----------------------------------------------------------------------------------------------------
# Download


def download_cifar(
    data_dir: OptPath = None, *, url: str | None = None, known_hash: str | None = None, quiet: bool = False
) -> Path:
    """Fetch :data:`TARBALL_NAME` into the data dir with pooch, unless a copy with the right hash is there.

    The hash (:func:`resolve_known_hash`) is verified before the file takes its name; a file that fails
    it is deleted. A progress bar (tqdm) is shown when stderr is a terminal and not ``quiet``. Returns
    the archive's path; :class:`DataError` names the URL and the data dir when the download fails.
    """
    import logging

    import pooch
    import requests

    folder, url, known = resolve_data_dir(data_dir), resolve_url(url), resolve_known_hash(known_hash)
    target = folder / TARBALL_NAME
    logger = pooch.get_logger()
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    tty = sys.stderr is not None and getattr(sys.stderr, "isatty", lambda: False)()
    downloader = pooch.HTTPDownloader(progressbar=not quiet and tty, timeout=DOWNLOAD_TIMEOUT_S)
    try:
        path = Path(pooch.retrieve(url, known_hash=known, fname=TARBALL_NAME, path=folder, downloader=downloader))
    except requests.RequestException as exc:  # before ValueError: some of these are ValueErrors too
        raise DataError(f"downloading {url} into the data dir {folder} failed ({type(exc).__name__}: {exc}); "
                        f"check the connection and the URL (${URL_ENV}), or save {TARBALL_NAME} there by hand") from exc
    except ValueError as exc:  # pooch: the hash does not match; its temporary file is already gone
        target.unlink(missing_ok=True)
        raise DataError(f"the file downloaded from {url} into the data dir {folder} fails its checksum and was "
                        f"deleted (expected {known}): {exc}") from exc
    except OSError as exc:
        raise DataError(f"downloading {url} into the data dir {folder} failed: {exc}") from exc
    finally:
        logger.setLevel(level)
    with contextlib.suppress(OSError):  # pooch's temporary file is 0600: give it the folder's read/write bits
        path.chmod(stat.S_IMODE(folder.stat().st_mode) & 0o666)
    return path
