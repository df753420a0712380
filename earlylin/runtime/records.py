"""Plain-data records: atomic JSON writes, the run environment, and a checksummed result cache.

- :func:`write_json_atomic` (and :func:`write_bytes_atomic`, :func:`write_npz_atomic`) writes to a temporary
  file in the target's directory, fsyncs and renames it over the target, so a run killed at any moment
  leaves the previous file or none, never half. Files get the mode a plain ``open()`` would give them
  (0666 less the user's umask). A write that fails (a full disk, a permission) raises
  :class:`~earlylin.errors.DataError` naming the path.
- :func:`probe_dir` / :func:`probe_file` check before any work that an output can be written there, and
  that its disk has the room a run needs.
- :func:`environment` is what every record carries: versions, device, dtype, TF32 flags, threads.
- :class:`Cache` stores one entry per (config, seed) under ``sha256(payload, code fingerprint)``:
  the payload names the family, the full config, the seed, the device and the fingerprints of any
  user data or callables; the code fingerprint (:func:`earlylin.runtime.fingerprint.code_fingerprint`)
  hashes the package's source, so an entry is never served to other code. An entry whose JSON does
  not parse or whose checksum does not match is ignored and recomputed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (locked_dir locks nothing)
    fcntl = None  # type: ignore[assignment]

from earlylin.errors import ConfigError, DataError
from earlylin.runtime.devices import EXACT_FP32
from earlylin.runtime.fingerprint import code_fingerprint
from earlylin.version import __version__

SCHEMA = "earlylin.record/1"


def to_jsonable(obj: Any) -> Any:
    """Convert tensors/arrays/NaN to JSON-safe values (NaN and ±inf become null)."""
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def canonical(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))


_UMASK_LOCK = threading.Lock()


def file_mode() -> int:
    """The mode of a new file under the user's umask (0666 & ~umask), as ``open()`` would create it. The umask
    is read from /proc where the kernel shows it, else set and restored at once (under a lock)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, fsync, rename; the file gets the
    user's umask (:func:`file_mode`).

    Raises:
        DataError: the file cannot be written (a full disk, a permission); the message names the path.
    """
    target = Path(path)
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), file_mode())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, DataError):
            raise DataError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
    return target


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**20:,.1f} MiB" if nbytes < 2**30 else f"{nbytes / 2**30:,.2f} GiB"


def probe_dir(path: str | os.PathLike[str], label: str, need_bytes: int = 0) -> Path:
    """Check that files can be written in the directory ``path`` and that its disk has ``need_bytes`` free:
    create it (and missing parents), write and remove a probe file there, then remove the folders it created,
    so that a refusal later leaves no trace (the writers create folders as they need them). ``label`` names
    the value in the message: a flag (``--out``) or an argument (``cache_dir=``).

    Raises:
        ConfigError: ``path`` is a file, cannot be created or written to, or its disk has less than
            ``need_bytes`` free.
    """
    folder = Path(path).expanduser()
    named = f"{label}{'' if label.endswith('=') else ' '}{folder}"
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{named}: is a file, not a directory; name a directory (created if missing)")
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".earlylin-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise ConfigError(f"{named}: cannot write there ({exc.strerror or exc}); name a writable directory") from None
    finally:
        for made in created:  # deepest first; a folder someone else filled meanwhile stays
            with contextlib.suppress(OSError):
                made.rmdir()
    if free < need_bytes:
        raise ConfigError(f"{named}: its disk has {_gib(free)} free, and this run writes up to ≈ {_gib(need_bytes)} "
                          "there; free some space or name another directory")
    return folder


@contextlib.contextmanager
def locked_dir(path: str | os.PathLike[str], label: str) -> Iterator[Path]:
    """Hold an exclusive lock on the output directory ``path`` (created if missing) while the block runs, so that
    a second run writing there at the same time is refused instead of racing it (the last writer would win). The
    lock is an advisory ``flock`` on the directory itself: no lock file is written, and a killed run's lock goes
    with its process. A directory made here and still empty at the end is removed again. Where ``fcntl`` is
    missing (Windows) nothing is locked.

    Raises:
        ConfigError: another process holds the lock.
    """
    folder = Path(path).expanduser()
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"{label}{'' if label.endswith('=') else ' '}{folder}: another earlylin run is "
                                  "writing there now (it holds the folder's lock); wait for it to finish or name "
                                  "another folder") from None
        yield folder
    finally:
        os.close(fd)  # releases the lock
        for made in created:  # deepest first; only folders left empty
            with contextlib.suppress(OSError):
                made.rmdir()


def probe_file(path: str | os.PathLike[str], label: str, need_bytes: int = 0) -> Path:
    """Check that the file ``path`` can be written (atomically, beside its target): not a directory,
    and its directory writable with ``need_bytes`` free (:func:`probe_dir`)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise ConfigError(f"{label}{'' if label.endswith('=') else ' '}{target}: is a directory; name a file")
    probe_dir(target.parent, label, need_bytes)
    return target


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON (NaN → null) to ``path`` atomically."""
    text = json.dumps(to_jsonable(obj), indent=1) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_npz_atomic(path: str | os.PathLike[str], arrays: dict[str, Any]) -> Path:
    """Write ``arrays`` (name → array) as one compressed ``.npz`` (``numpy.savez_compressed``) to ``path``
    atomically (:func:`write_bytes_atomic`: the user's umask; a failed write raises
    :class:`~earlylin.errors.DataError` naming the path)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return write_bytes_atomic(path, buf.getvalue())


def environment(device: torch.device, dtype: str, net_step: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions, device and numerical precision of this process; ``net_step``: the two-layer step's
    implementation and the precision of its products (:func:`earlylin.nets.two_layer.step_info`), where
    one ran."""
    env: dict[str, Any] = {
        "earlylin": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        **EXACT_FP32,  # every run trains under runtime.devices.exact_fp32()
        "linear_model_dtype": "float64",
        "code_fingerprint": code_fingerprint(),
    }
    if net_step is not None:
        env["net_step"] = net_step
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env


def device_label(env: dict[str, Any] | None) -> str:
    """'NVIDIA H100 80GB HBM3' or 'CPU x86_64, 2 threads' from an :func:`environment` record."""
    env = env or {}
    if env.get("device", "").startswith("cuda"):
        return str(env.get("device_name"))
    return f"CPU {env.get('device_name', '?')}, {env.get('torch_threads', '?')} threads"


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "earlylin"


class Cache:
    """Content-addressed store of per-(config, seed) results with checksums.

    ``directory`` None disables it (nothing read or written). ``fingerprint`` is the code
    fingerprint that enters every key (default: the installed package's)."""

    def __init__(self, directory: str | os.PathLike[str] | None, fingerprint: str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.fingerprint = fingerprint or code_fingerprint()

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def key(self, payload: dict[str, Any]) -> str:
        full = {"payload": payload, "earlylin": __version__, "code": self.fingerprint}
        return hashlib.sha256(canonical(full).encode()).hexdigest()[:32]

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.json"

    def load(self, payload: dict[str, Any]) -> Any | None:
        """The stored result for ``payload``, or None if absent, unreadable or corrupted."""
        if self.directory is None:
            return None
        path = self._path(self.key(payload))
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            result = entry["result"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if entry.get("sha256") != hashlib.sha256(canonical(result).encode()).hexdigest():
            return None
        return result

    def store(self, payload: dict[str, Any], result: Any) -> None:
        if self.directory is None:
            return
        result = to_jsonable(result)
        entry = {
            "payload": to_jsonable(payload),
            "sha256": hashlib.sha256(canonical(result).encode()).hexdigest(),
            "result": result,
        }
        write_json_atomic(self._path(self.key(payload)), entry)


def write_csv_atomic(path: str | os.PathLike[str], table: dict[str, list[Any]]) -> Path:
    """Write a column table (name → equal-length list) as CSV atomically; None/NaN → empty cell."""
    names = list(table)
    lengths = {len(table[k]) for k in names}
    if len(lengths) > 1:
        raise ValueError(f"table columns differ in length: { {k: len(table[k]) for k in names} }")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for row in zip(*(to_jsonable(table[k]) for k in names), strict=True):
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in row])
    return write_bytes_atomic(path, buf.getvalue().encode("utf-8"))


def read_csv(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """A CSV written by :func:`write_csv_atomic`, as columns of strings (convert where used)."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path}: empty CSV")
    names, body = rows[0], rows[1:]
    return {k: [r[i] for r in body] for i, k in enumerate(names)}
