"""Default prices and context windows from litellm's bundled price file.

The file is read as JSON data, never by importing litellm (which costs seconds
and hundreds of MB). It is read once per process, at policy load; a long-running process
that has loaded its policy can let the table go (``forget_price_table``).
"""

from __future__ import annotations

import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["ModelInfo", "forget_price_table", "lookup_model", "price_file"]

_PRICE_FILE = "model_prices_and_context_window_backup.json"


def price_file() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _PRICE_FILE
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=1)
def _price_table() -> dict[str, dict[str, Any]]:
    path = price_file()
    if path is None:
        return {}
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    # Only the fields ModelInfo reads: the whole table would stay ~12 MB in every process.
    return {
        key: {field: entry[field] for field in _FIELDS if field in entry}
        for key, entry in data.items()
        if isinstance(entry, dict) and key != "sample_spec"
    }


def forget_price_table() -> None:
    """Drop the parsed table (~2.4 MB of Python objects for ~2,000 models): only loading a
    policy reads it, and a later load reads the file again (~35 ms)."""
    _price_table.cache_clear()


_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
    "max_input_tokens",
    "max_tokens",
    "max_output_tokens",
    "supports_function_calling",
    "supports_vision",
    "supports_response_schema",
    "mode",
)


class ModelInfo:
    """Per-token prices and limits of one model, from litellm's data."""

    def __init__(self, key: str, entry: dict[str, Any]) -> None:
        self.key = key
        self.input_per_million = _per_million(entry.get("input_cost_per_token")) or 0.0
        self.output_per_million = _per_million(entry.get("output_cost_per_token")) or 0.0
        self.cached_input_per_million = _per_million(entry.get("cache_read_input_token_cost"))
        self.cache_write_per_million = _per_million(entry.get("cache_creation_input_token_cost"))
        self.reasoning_per_million = _per_million(entry.get("output_cost_per_reasoning_token"))
        window = entry.get("max_input_tokens") or entry.get("max_tokens")
        self.context_window = int(window) if window else None
        out = entry.get("max_output_tokens")
        self.max_output_tokens = int(out) if out else None
        self.supports_tools = bool(entry.get("supports_function_calling"))
        self.supports_vision = bool(entry.get("supports_vision"))
        self.supports_json = bool(entry.get("supports_response_schema"))


def _per_million(per_token: Any) -> float | None:
    # Rounded so that 4e-07 per token reads back as 0.4, not 0.39999999999999997.
    return None if per_token is None else round(float(per_token) * 1e6, 9)


def lookup_model(model: str, provider: str | None = None) -> ModelInfo | None:
    """Find a model by ``provider/model``, then the bare name."""
    table = _price_table()
    keys = []
    if provider and provider not in ("openai-compatible", "litellm"):
        keys.append(f"{provider}/{model}")
    keys.append(model)
    if "/" in model:
        keys.append(model.split("/", 1)[1])
    for key in keys:
        entry = table.get(key)
        if entry is not None and entry.get("mode", "chat") in ("chat", "completion", "embedding"):
            return ModelInfo(key, entry)
    return None
