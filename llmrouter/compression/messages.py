"""Reading and rewriting the text of chat messages without touching anything else.

Stages only ever see message text (string content or the text parts of a multi-part
content); tool calls, images and other fields pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from llmrouter import tokens
from llmrouter.compression.token_reuse import PIECEWISE_ENCODINGS, encoder, reencode

__all__ = ["TokenCounter", "copy_messages", "is_system", "map_text", "texts"]

Message = dict[str, Any]
_SYSTEM_ROLES = ("system", "developer")


def copy_messages(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Copies deep enough that rewriting text never mutates the caller's messages."""
    out: list[Message] = []
    for message in messages:
        copy = dict(message)
        content = copy.get("content")
        if isinstance(content, list):
            copy["content"] = [
                dict(part) if isinstance(part, Mapping) else part for part in content
            ]
        out.append(copy)
    return out


def is_system(message: Mapping[str, Any]) -> bool:
    return message.get("role") in _SYSTEM_ROLES


def texts(message: Mapping[str, Any]) -> list[str]:
    """The rewritable texts of a message, in order."""
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        ]
    return []


def map_text(message: Message, rewrite: Callable[[str], str]) -> bool:
    """Apply ``rewrite`` to each text of ``message`` in place; True if anything changed."""
    changed = False
    content = message.get("content")
    if isinstance(content, str):
        new = rewrite(content)
        if new != content:
            message["content"] = new
            changed = True
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                old = part.get("text")
                if isinstance(old, str):
                    new = rewrite(old)
                    if new != old:
                        part["text"] = new
                        changed = True
    return changed


_MEMO_LIMIT = 10_000


class TokenCounter:
    """Prompt tokens of message lists, memoised per text so each stage re-encodes only the
    texts it changed. Totals match :func:`llmrouter.tokens.count_message_tokens`.

    A text a stage derived from another (:meth:`derive`) is encoded by reusing the ids of
    the sentences the two share (see token_reuse.py).
    """

    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self._ids: dict[str, np.ndarray] = {}
        self._origins: dict[str, str] = {}
        self._encode = encoder(model)
        self._reuse = tokens.encoding_for_model(model).name in PIECEWISE_ENCODINGS

    def ids(self, text: str) -> np.ndarray:
        """Token ids of ``text`` (uint32); the caller must not modify the array."""
        cached = self._ids.get(text)
        if cached is None:
            origin = self._origins.pop(text, None)
            source = self._ids.get(origin) if origin is not None and self._reuse else None
            if origin is not None and source is not None:
                cached = reencode(origin, source, text, self._encode, self.model)
            if cached is None:
                cached = self._encode(text)
            if len(self._ids) < _MEMO_LIMIT:
                self._ids[text] = cached
        return cached

    def derive(self, new: str, old: str) -> None:
        """Note that a stage rewrote ``old`` into ``new``: most of ``old``'s ids still fit."""
        if new != old and new not in self._ids and len(self._origins) < _MEMO_LIMIT:
            self._origins[new] = old

    def text(self, text: str) -> int:
        return len(self.ids(text))

    def message(self, message: Mapping[str, Any]) -> int:
        # framing (role, name, images) from the library's counter, text from the memo;
        # the library adds 3 reply tokens once per list, which ``messages`` adds back
        frame: dict[str, Any] = {"role": message.get("role"), "name": message.get("name")}
        content = message.get("content")
        if isinstance(content, list):
            frame["content"] = [
                part for part in content if isinstance(part, Mapping) and part.get("type") != "text"
            ]
        overhead = tokens.count_message_tokens([frame], self.model) - 3
        return overhead + self.text(tokens.message_text(message))

    def messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        return 3 + sum(self.message(message) for message in messages)
