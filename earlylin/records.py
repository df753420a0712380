"""Plain-data records: atomic JSON writes, the run environment, and a checksummed result cache.

- :func:`write_json_atomic` writes to a temporary file in the target's directory, fsyncs and renames
  it over the target, so a run killed at any moment leaves the previous file or none, never half.
- :func:`environment` is what every record carries: versions, device, dtype, TF32 flags, threads.
- :class:`Cache` stores one entry per (config, seed) under ``sha256(payload, code fingerprint)``:
  the payload names the family, the full config, the seed, the device and the fingerprints of any
  user data or callables; the code fingerprint (:func:`earlylin.fingerprint.code_fingerprint`)
  hashes the package's source, so an entry is never served to other code. An entry whose JSON does
  not parse or whose checksum does not match is ignored and recomputed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earlylin.fingerprint import code_fingerprint
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


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, fsync, rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON (NaN → null) to ``path`` atomically."""
    text = json.dumps(to_jsonable(obj), indent=1) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


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
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
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
