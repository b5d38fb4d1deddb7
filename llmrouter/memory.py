"""Giving memory back to the operating system after start-up.

Loading a tokenizer's rank table, the price table and the brain's weights allocates and
frees tens of megabytes; glibc keeps freed heap pages mapped unless asked to trim them, so
a long-running sidecar would carry them for its whole life.
"""

from __future__ import annotations

import gc
import sys

__all__ = ["return_freed_memory"]


def return_freed_memory() -> None:
    """Collect garbage, then ``malloc_trim(0)`` (glibc only; elsewhere a no-op)."""
    gc.collect()
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    path = ctypes.util.find_library("c")
    if path is None:
        return
    trim = getattr(ctypes.CDLL(path), "malloc_trim", None)  # glibc has it, musl does not
    if trim is not None:
        trim(0)
