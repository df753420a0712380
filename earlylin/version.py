"""The package version (one place; records and cache keys carry it)."""

__version__ = "0.2.0"
