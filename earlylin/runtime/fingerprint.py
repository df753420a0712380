"""Fingerprints that key the result cache: the package's code, data arrays, and user callables.

A cached result may be served only for the same code, the same inputs and the same config:

- :func:`code_fingerprint` hashes the source of every module of the installed ``earlylin``
  package, its Python files and its C kernels (path and bytes, in sorted order), so any edit of
  the code that computes results — a target, a network, a metric — changes every cache key.
- :func:`array_fingerprint` hashes arrays by dtype, shape and bytes (user data, CIFAR arrays).
- :func:`callable_fingerprint` hashes a user function by its source code, its default arguments,
  the values it closes over and the globals it reads (functions recursively, plain values by
  value). Anything it cannot hash by content (an open file, an arbitrary object) makes it raise
  :class:`Unhashable`: such a run is not cached, and says so.
- :func:`module_fingerprint` hashes a ``torch.nn.Module`` by the source of its class (and of its
  submodules' classes), its ``repr`` and every parameter and buffer.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the package: earlylin/
_LIBRARIES = ("torch", "numpy", "scipy", "math", "builtins", "earlylin")
_PLAIN = (bool, int, float, complex, str, bytes, type(None))


class Unhashable(ValueError):
    """A user object whose content cannot be fingerprinted (the run is then not cached)."""


def code_fingerprint(root: str | Path | None = None, fresh: bool = False) -> str:
    """sha256 (first 16 hex digits) of every ``*.py`` and ``*.c`` file below ``root`` (default: the package).

    Computed once per process and root (the code of a running process does not change under it);
    ``fresh`` reads the files again."""
    key = str(Path(root).resolve()) if root is not None else str(PACKAGE_ROOT)
    return _code_fingerprint.__wrapped__(key) if fresh else _code_fingerprint(key)


@functools.lru_cache(maxsize=8)
def _code_fingerprint(root: str) -> str:
    h = hashlib.sha256()
    base = Path(root)
    for path in sorted([*base.rglob("*.py"), *base.rglob("*.c")]):
        h.update(path.relative_to(base).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def array_fingerprint(*arrays: np.ndarray | torch.Tensor) -> str:
    """sha256 of the arrays' dtypes, shapes and bytes (C order)."""
    h = hashlib.sha256()
    for a in arrays:
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _value(obj: Any, seen: set[int]) -> str:
    """A content string for a value a user function depends on; :class:`Unhashable` otherwise."""
    if isinstance(obj, _PLAIN):
        return repr(obj)
    if isinstance(obj, np.ndarray | torch.Tensor | np.generic):
        return "array:" + array_fingerprint(np.asarray(obj) if isinstance(obj, np.generic) else obj)
    if isinstance(obj, list | tuple | frozenset | set):
        items = sorted(_value(v, seen) for v in obj) if isinstance(obj, set | frozenset) else [
            _value(v, seen) for v in obj]
        return f"{type(obj).__name__}[{','.join(items)}]"
    if isinstance(obj, dict):
        return "dict{" + ",".join(f"{_value(k, seen)}:{_value(v, seen)}" for k, v in obj.items()) + "}"
    if isinstance(obj, types.ModuleType):
        return f"module:{obj.__name__}:{getattr(obj, '__version__', '')}"
    if isinstance(obj, torch.nn.Module):
        return "module:" + module_fingerprint(obj)
    if isinstance(obj, types.BuiltinFunctionType | np.ufunc):
        return f"builtin:{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
    if isinstance(obj, type):
        return _class(obj)
    if isinstance(obj, functools.partial):
        return f"partial:{_callable(obj.func, seen)}:{_value(obj.args, seen)}:{_value(obj.keywords, seen)}"
    if callable(obj):
        return _callable(obj, seen)
    raise Unhashable(f"cannot fingerprint a {type(obj).__name__} by its content")


def _callable(fn: Any, seen: set[int]) -> str:
    module = getattr(fn, "__module__", "") or ""
    if module.split(".")[0] in _LIBRARIES:
        # library functions: their version (or, for earlylin, the code fingerprint) covers them
        return f"lib:{module}.{getattr(fn, '__qualname__', repr(fn))}"
    if isinstance(fn, types.MethodType):
        return f"method:{_value(fn.__self__, seen)}:{_callable(fn.__func__, seen)}"
    func = fn if isinstance(fn, types.FunctionType) else vars(type(fn)).get("__call__")
    if not isinstance(func, types.FunctionType):
        raise Unhashable(f"cannot fingerprint the callable {fn!r}")
    if id(func) in seen:
        return f"recursive:{func.__qualname__}"
    seen = seen | {id(func)}
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError) as err:
        raise Unhashable(f"the source of {func.__qualname__} is not available ({err})") from err
    parts = [source, _value(func.__defaults__, seen), _value(func.__kwdefaults__, seen)]
    if func is not fn:  # a callable object: its state counts too
        parts.append(_value(vars(fn), seen))
    for cell in func.__closure__ or ():
        parts.append(_value(cell.cell_contents, seen))
    for name in _global_names(func.__code__):
        if name in func.__globals__:
            parts.append(f"{name}={_value(func.__globals__[name], seen)}")
    return "fn:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _class(cls: type) -> str:
    if cls.__module__.split(".")[0] in _LIBRARIES:
        return f"lib:{cls.__module__}.{cls.__qualname__}"
    try:
        return "class:" + hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()
    except (OSError, TypeError) as err:
        raise Unhashable(f"the source of {cls.__qualname__} is not available ({err})") from err


def _global_names(code: types.CodeType) -> list[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= set(_global_names(const))
    return sorted(names)


def callable_fingerprint(fn: Any) -> str:
    """sha256 of a user function by its code and what it reads; raises :class:`Unhashable`."""
    return hashlib.sha256(_value(fn, set()).encode()).hexdigest()


def module_fingerprint(module: torch.nn.Module) -> str:
    """sha256 of a torch module: class sources, repr, parameters and buffers."""
    h = hashlib.sha256(repr(module).encode())
    for sub in module.modules():
        cls = type(sub)
        h.update(_class(cls).encode())
        if cls.__module__.split(".")[0] not in _LIBRARIES:  # what forward reads (helpers, constants)
            h.update(_callable(cls.forward, set()).encode())
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        h.update(name.encode())
        h.update(array_fingerprint(tensor).encode())
    return h.hexdigest()
