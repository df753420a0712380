"""erf and its derivative for the fast CPU step in one compiled pass (``erf.c``, docs/theory.md §1.2).

The fast CPU step (:class:`earlylin.nets.two_layer.BlockedTwoLayerStep`) evaluates φ(Z) and φ′(Z) on every block
of rows; for φ = erf in float32 it calls :func:`erf_readout`, which runs ``earlylin_erf_readout`` from ``erf.c``:
row by row, φ and φ′ in one pass, then f, r and the block's Hᵀr from the row while it is in cache (φ(Z) is never
stored). :func:`erf_dphi` is the elementwise kernel alone. On a 2-core AMD EPYC the pass takes about half the time
of ``torch.erf`` plus the two-pass φ′ (BENCHMARKS.md), with erf within 1 ulp and φ′ within 2 ulp of the float64
values (``torch.erf``: 0.7 ulp; the former float32 φ′ through ``exp2``: 112 ulp; φ′ is 0 where it is below
float32's normal range, 2e-38, as it was there).

The C file is compiled on first use, once per machine, with the system's C compiler (``$CC``, else ``cc``,
``gcc`` or ``clang``) for this CPU (``-march=native``, else portable flags) and kept in the machine folder
(:func:`earlylin.runtime.machine.machine_dir`) under a name that hashes the source, the compiler, its flags and
the CPU: every later run and process on the machine loads the same library, so reruns agree bit for bit.
``EARLYLIN_NATIVE=0`` turns it off; without a compiler (or where the build fails) the step falls back to torch's
erf and exp2 and says why in :func:`unavailable_reason`. Records name which one ran (``net_step.phi``).
The calls release the GIL (ctypes), so the step's worker threads run them in parallel.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import torch

from earlylin.runtime.machine import cpu_signature, machine_lock
from earlylin.runtime.progress import warn
from earlylin.runtime.records import file_mode

SOURCE = Path(__file__).with_name("erf.c")
ENV = "EARLYLIN_NATIVE"  # "0": torch's erf and exp2 instead of the compiled kernel
COMMON_FLAGS = ("-std=c99", "-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared")
TARGET_FLAGS = (("-march=native",), ())  # tried in turn: this CPU's instructions, then the compiler's default
COMPILE_TIMEOUT_S = 120


def compiler() -> list[str] | None:
    """The C compiler command: ``$CC``, else Python's own (sysconfig's ``CC``) where it exists, else the first of
    ``cc``, ``gcc``, ``clang`` on the PATH; None if there is none."""
    for command in (os.environ.get("CC"), sysconfig.get_config_var("CC"), "cc", "gcc", "clang"):
        if command and (words := shlex.split(command)) and shutil.which(words[0]):
            return words
    return None


def _version(cc: list[str]) -> str:
    try:
        out = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _build(cc: list[str], folder: Path) -> tuple[Path | None, str]:
    """The library for this source, compiler and CPU in ``folder``: found there (for any of :data:`TARGET_FLAGS`),
    else compiled now with each set of flags in turn until one builds (to a temporary name, then renamed into
    place). Returns its path or None, and the reason when None."""
    source, version = SOURCE.read_bytes(), _version(cc).encode()
    builds = []
    for target in TARGET_FLAGS:
        flags = [*COMMON_FLAGS, *target]
        key = hashlib.sha256(b"\0".join([source, " ".join(cc).encode(), version, " ".join(flags).encode(),
                                         cpu_signature().encode()])).hexdigest()[:16]
        builds.append((flags, folder / f"erf-{key}.so"))
    for _, path in builds:
        if path.exists():
            return path, ""
    errors = []
    for flags, path in builds:
        fd, tmp = tempfile.mkstemp(prefix=".erf-", suffix=".so", dir=folder)
        os.close(fd)
        try:
            proc = subprocess.run([*cc, *flags, str(SOURCE), "-o", tmp], capture_output=True, text=True,
                                  timeout=COMPILE_TIMEOUT_S)
            if proc.returncode == 0:
                os.chmod(tmp, file_mode())  # as a plain open() would make it (the user's umask)
                os.replace(tmp, path)
                return path, ""
            errors.append(f"{' '.join([*cc, *flags])}: {(proc.stderr.strip().splitlines() or ['failed'])[-1]}")
        except (OSError, subprocess.SubprocessError) as err:
            errors.append(f"{' '.join(cc)}: {err}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    return None, "; ".join(errors)


@functools.cache
def _library() -> tuple[ctypes.CDLL | None, str]:
    """The loaded library, or None and why; once per process. A build that fails (or no compiler) is said once
    on stderr: the run goes on with torch's functions."""
    if os.environ.get(ENV, "").strip() == "0":
        return None, f"{ENV}=0"
    cc = compiler()
    if cc is None:
        path, reason = None, "no C compiler found ($CC, cc, gcc, clang)"
    else:
        with machine_lock() as folder, tempfile.TemporaryDirectory() as tmp:
            # no machine folder: build for this process only (the library stays loaded after its file is gone)
            path, reason = _build(cc, Path(tmp) if folder is None else folder)
            if path is not None:
                return _load(path), ""
    warn(f"the fast CPU step's compiled erf is not available ({reason}); it uses torch's erf and exp2 instead "
         f"(the same equations, slower on some CPUs; {ENV}=0 chooses that without this line)")
    return None, reason


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    ptr, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.earlylin_erf_dphi.argtypes = [i64, ptr, ptr, ptr]
    lib.earlylin_erf_readout.argtypes = [i64, i64, i64, ptr, ptr, ptr, ctypes.c_float, ptr, ptr, ptr, ptr, ptr, ptr]
    lib.earlylin_erf_dphi.restype = lib.earlylin_erf_readout.restype = None
    return lib


def available() -> bool:
    """True where the compiled kernel loads (built now if needed)."""
    return _library()[0] is not None


def unavailable_reason() -> str | None:
    """Why the kernel is not used here (``EARLYLIN_NATIVE=0``, no compiler, the compiler's error), else None."""
    lib, reason = _library()
    return None if lib is not None else reason


def _lib() -> ctypes.CDLL:
    lib = _library()[0]
    assert lib is not None, "the compiled erf is not available here; check available() first"
    return lib


def _check(*tensors: torch.Tensor) -> None:
    for t in tensors:
        assert t.dtype == torch.float32 and t.is_contiguous() and t.device.type == "cpu", "contiguous float32 CPU"


def erf_dphi(z: torch.Tensor, phi: torch.Tensor, dphi: torch.Tensor | None) -> None:
    """phi ← erf(z) and, unless None, dphi ← (2/√π)·e^{−z²}; contiguous float32 CPU tensors of one size; dphi may
    be z itself (written in place). Only where :func:`available`."""
    _check(z, phi, *(() if dphi is None else (dphi,)))
    assert phi.numel() == z.numel() and (dphi is None or dphi.numel() == z.numel())
    _lib().earlylin_erf_dphi(z.numel(), z.data_ptr(), phi.data_ptr(), None if dphi is None else dphi.data_ptr())


def erf_readout(z: torch.Tensor, v: torch.Tensor, y: torch.Tensor, scale: float, f: torch.Tensor, r: torch.Tensor,
                gv: torch.Tensor | None, x: torch.Tensor | None, rx: torch.Tensor | None, h: torch.Tensor) -> None:
    """One block of the two-layer step (docs/theory.md §1) from its pre-activations z (rows × m): per row i,
    f_i = φ(z_i)·v·scale and r_i = f_i − y_i into f and r (rows); gv (m) = Σ_i r_i φ(z_i) unless None; unless rx is
    None, z ← φ′(z) in place and rx = r ⊙ x (x, rx: rows × d). h is a scratch row of m floats. Contiguous float32
    CPU tensors; only where :func:`available`. (The fast step calls :func:`readout_function` with addresses it
    checked once.)"""
    rows, m = z.shape
    _check(z, v, y, f, r, h, *(t for t in (gv, x, rx) if t is not None))
    assert v.numel() == h.numel() == m and y.numel() == f.numel() == r.numel() == rows
    assert gv is None or gv.numel() == m
    assert (x is None) == (rx is None) and (x is None or x.shape == rx.shape == (rows, x.shape[1]))
    d = 0 if x is None else x.shape[1]
    readout_function()(rows, m, d, z.data_ptr(), v.data_ptr(), y.data_ptr(), scale, f.data_ptr(), r.data_ptr(),
                       *(None if t is None else t.data_ptr() for t in (gv, x, rx)), h.data_ptr())


def readout_function() -> ctypes._CFuncPtr:
    """The C function ``earlylin_erf_readout`` itself (arguments: rows, m, d and the addresses of z, v, y, scale,
    the addresses of f, r, gv, x, rx, h, None for a NULL): for a caller that has checked its buffers once."""
    return _lib().earlylin_erf_readout
