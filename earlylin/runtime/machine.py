"""This machine, for the choices a run makes for speed alone: which CPU it is, and the per-user folder where those
choices are kept once per machine (the fast CPU step's GEMM provider, :mod:`earlylin.nets.providers`; its compiled
erf, :mod:`earlylin.nets.native`).

The folder is ``$EARLYLIN_MACHINE_DIR`` if set, else ``<cache root>/earlylin/machine`` (``~/.cache`` or
``$XDG_CACHE_HOME``). It is not the run's result cache: ``--no-cache`` and ``--cache-dir`` leave it alone, so every
run and every process on a machine (a sweep's Ray workers included) makes the same choices and gets the same bits.
Deleting the folder makes the next run measure and compile again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import platform
import threading
from collections.abc import Iterator
from pathlib import Path

from earlylin.runtime.records import default_cache_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (machine_lock locks nothing)
    fcntl = None  # type: ignore[assignment]

MACHINE_DIR_ENV = "EARLYLIN_MACHINE_DIR"


def machine_dir() -> Path:
    """``$EARLYLIN_MACHINE_DIR``, else ``<cache root>/earlylin/machine`` (not created here)."""
    if os.environ.get(MACHINE_DIR_ENV, "").strip():
        return Path(os.environ[MACHINE_DIR_ENV]).expanduser()
    return default_cache_dir() / "machine"


_LOCK = threading.RLock()  # this process's hold on the folder's lock (re-entered by a nested choice)
_HELD: list[Path | None] = []


@contextlib.contextmanager
def machine_lock() -> Iterator[Path | None]:
    """Hold an exclusive lock on the machine folder (created if missing) while the block runs, so that two
    processes measuring or compiling at once do it one after the other and the second reads the first's answer.
    Re-entrant within a process. Yields the folder, or None where it cannot be made (then nothing is kept: each
    process decides for itself)."""
    with _LOCK:
        if _HELD:  # already held by this thread, further up the stack
            yield _HELD[-1]
            return
        folder: Path | None = machine_dir()
        fd = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(folder, os.O_RDONLY)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)  # a killed holder's lock goes with its process
        except OSError:
            folder = None
        _HELD.append(folder)
        try:
            yield folder
        finally:
            _HELD.pop()
            if fd is not None:
                os.close(fd)


@functools.cache
def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if not line.strip():
                break
    except OSError:
        pass
    return fields


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``), with family and model."""
    fields = _cpuinfo()
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name


@functools.cache
def cpu_signature() -> str:
    """The CPU model, its architecture and a hash of its instruction-set flags: two machines that may run the same
    compiled code have the same signature (a virtual machine may hide flags its model name promises)."""
    flags = _cpuinfo().get("flags") or _cpuinfo().get("Features") or ""
    digest = hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:12]
    return f"{cpu_model()} | {platform.machine()} | flags {digest}"


L2_FALLBACK = 1 << 20  # bytes, where the system does not say (1 MiB: the smaller of the per-core L2s measured)


@functools.cache
def l2_bytes() -> int:
    """The size of one core's level-2 cache (Linux: ``/sys/devices/system/cpu/cpu0/cache``), else
    :data:`L2_FALLBACK`."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
            if (index / "level").read_text().strip() == "2" and (index / "type").read_text().strip() != "Instruction":
                size = (index / "size").read_text().strip()
                return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)
    except (OSError, ValueError):
        pass
    return L2_FALLBACK
