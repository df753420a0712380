"""The one error type earlylin raises for anything a user can fix, and its two refinements."""


class EarlylinError(Exception):
    """A bad input or a failed run, with a message that names the value, the valid range and the flag."""


class ConfigError(EarlylinError, ValueError):
    """An invalid configuration value, detected before any work starts."""


class DivergenceError(EarlylinError, FloatingPointError):
    """Gradient descent diverged: the loss became NaN/inf or grew far beyond its initial value."""


class DataError(EarlylinError, OSError):
    """A data file is missing, truncated, or fails its integrity check."""


def report(err: EarlylinError) -> int:
    """Print ``err`` for a command-line user and return its exit status: 2 invalid input,
    4 divergence of every seed, 1 any other failure (data, I/O)."""
    import sys

    print(f"earlylin: error: {err}", file=sys.stderr)
    if isinstance(err, ConfigError):
        return 2
    if isinstance(err, DivergenceError):
        return 4
    return 1
