"""Caches: exact (default, on disk) and semantic (opt-in, guarded).

The semantic cache needs numpy; it is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .exact import ExactCache, cache_key

if TYPE_CHECKING:
    from .semantic import SemanticCache, SemanticLookup

__all__ = ["ExactCache", "SemanticCache", "SemanticLookup", "cache_key"]


def __getattr__(name: str) -> object:
    if name in ("SemanticCache", "SemanticLookup"):
        from . import semantic

        return getattr(semantic, name)
    raise AttributeError(f"module 'llmrouter.cache' has no attribute {name!r}")
