"""JSON for the wire: orjson when installed (the ``server`` extra), the standard library
otherwise. Both produce the same compact JSON and accept the same input (orjson refuses
NaN and Infinity, which Python's json module writes: those fall back to it)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]


def _stdlib_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _codec() -> tuple[Callable[[Any], bytes], Callable[[bytes | str], Any]]:
    if importlib.util.find_spec("orjson") is None:
        return _stdlib_dumps, json.loads
    import orjson

    fast_loads = orjson.loads

    def loads(data: bytes | str) -> Any:
        try:
            return fast_loads(data)
        except ValueError:  # NaN/Infinity (Python's json writes them; orjson refuses them)
            return json.loads(data)  # and what is not JSON at all raises here too

    return orjson.dumps, loads


dumps, loads = _codec()
