"""Caches: exact (default, on disk) and semantic (opt-in, guarded)."""

from .exact import ExactCache, cache_key

__all__ = ["ExactCache", "cache_key"]
