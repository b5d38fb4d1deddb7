"""JSON for the wire: orjson when installed (the ``server`` extra), the standard library
otherwise. Both produce the same compact JSON and accept the same input."""

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

    return orjson.dumps, orjson.loads


dumps, loads = _codec()
