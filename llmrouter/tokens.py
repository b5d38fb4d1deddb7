"""Token counting with tiktoken, offline.

tiktoken normally downloads its BPE files; litellm ships them in its package, so
we point ``TIKTOKEN_CACHE_DIR`` there (found with ``find_spec``, which does not
import litellm). Encodings load lazily: the first load costs ~1 s, so
``import llmrouter`` stays fast and the cost lands on ``Router()`` construction.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .memory import return_freed_memory

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "IMAGE_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_REPLY",
    "count_message_tokens",
    "count_text_tokens",
    "encode",
    "encoding_for_model",
    "message_text",
    "tiktoken_cache_dir",
]

# Framing OpenAI chat models add: per message (separators, plus 1 for the role) and once
# to prime the reply. Shared with the router's own counting in routing/request.py.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
_DEFAULT_ENCODING = "o200k_base"
_lock = threading.Lock()


def tiktoken_cache_dir() -> Path | None:
    """The directory of tiktoken BPE files bundled with litellm, if installed."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "litellm_core_utils" / "tokenizers"
        if candidate.is_dir():
            return candidate
    return None


def _ensure_cache_dir() -> None:
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return
    cache_dir = tiktoken_cache_dir()
    if cache_dir is not None:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)


@lru_cache(maxsize=8)
def _get_encoding(name: str) -> tiktoken.Encoding:
    """The process's instance of the encoding, made lean: tiktoken keeps a Python copy of the
    200k-entry rank table only to pickle an unregistered encoding by value (~24 MB for
    o200k); ours is registered, so it pickles by name. The freed heap goes back to the
    system (glibc) so the sidecar's RSS shows it. Any surprise in tiktoken's internals
    falls back to its own loader."""
    with _lock:
        _ensure_cache_dir()
        import tiktoken
        import tiktoken.registry

        existing = tiktoken.registry.ENCODINGS.get(name)
        if existing is not None:
            return existing
        try:
            from tiktoken_ext.openai_public import ENCODING_CONSTRUCTORS

            encoding = tiktoken.Encoding(**ENCODING_CONSTRUCTORS[name]())
            del encoding._mergeable_ranks
        except (ImportError, KeyError, AttributeError):
            return tiktoken.get_encoding(name)
        encoding = tiktoken.registry.ENCODINGS.setdefault(name, encoding)
        return_freed_memory()
        return encoding


def encoding_for_model(model: str | None = None) -> tiktoken.Encoding:
    """The encoding a model uses; o200k for current models, cl100k for older ones."""
    name = _DEFAULT_ENCODING
    if model:
        lowered = model.lower()
        if any(tag in lowered for tag in ("gpt-3.5", "gpt-4-", "gpt-4 ", "text-embedding")) or (
            lowered == "gpt-4"
        ):
            name = "cl100k_base"
    return _get_encoding(name)


def encode(text: str, model: str | None = None) -> list[int]:
    """Token ids of ``text`` (special tokens are encoded as ordinary text)."""
    return encoding_for_model(model).encode_ordinary(text)


def count_text_tokens(text: str, model: str | None = None) -> int:
    return len(encode(text, model)) if text else 0


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a chat message: string content, text parts, tool calls' arguments."""
    content = message.get("content")
    parts: list[str] = []
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, Sequence):
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            function = call.get("function") or {}
            parts.append(str(function.get("name", "")))
            parts.append(str(function.get("arguments", "")))
    return "\n".join(parts)


# Tokens an image part costs at "low" detail on OpenAI models; a fair floor elsewhere.
IMAGE_TOKENS = 85


def count_message_tokens(
    messages: Iterable[Mapping[str, Any]],
    model: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Prompt tokens of a chat request, counted the way OpenAI frames messages."""
    encoding = encoding_for_model(model)
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE
        text = message_text(message)
        if text:
            total += len(encoding.encode_ordinary(text))
        role = message.get("role")
        if isinstance(role, str):
            total += 1
        name = message.get("name")
        if isinstance(name, str):
            total += 1 + len(encoding.encode_ordinary(name))
        content = message.get("content")
        if isinstance(content, list):
            total += IMAGE_TOKENS * sum(
                1
                for part in content
                if isinstance(part, Mapping) and part.get("type") in ("image_url", "input_image")
            )
    if tools:
        import json

        total += len(encoding.encode_ordinary(json.dumps(list(tools), separators=(",", ":"))))
    return total
