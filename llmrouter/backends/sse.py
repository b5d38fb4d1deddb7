"""Server-sent events: the framing of OpenAI-style streams."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DONE", "parse_data_line"]

DONE = object()


def parse_data_line(line: str) -> dict[str, Any] | object | None:
    """A parsed ``data:`` payload, ``DONE`` for ``[DONE]``, None for other lines.

    Raises ``ValueError`` on a data line that is not JSON: a corrupt stream must
    not be skipped silently.
    """
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if not payload:
        return None
    if payload == "[DONE]":
        return DONE
    value = json.loads(payload)
    if not isinstance(value, dict):
        raise ValueError("stream event is not a JSON object")
    return value
