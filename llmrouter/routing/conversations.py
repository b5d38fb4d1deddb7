"""Which backend answered a conversation so far, so its next turn can stay there.

Switching models mid-conversation throws away the provider's prompt cache: the
new backend reads the whole history at the full input price. The router
remembers, per conversation prefix, the backend that produced its last reply.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from ..tokens import message_text

__all__ = ["ConversationMemory", "conversation_key"]


def conversation_key(messages: Sequence[Mapping[str, Any]]) -> str:
    """A digest of the messages by role and text, insensitive to fields clients add or drop."""
    return _digest(messages).hex()


def _digest(messages: Sequence[Mapping[str, Any]]) -> bytes:
    # One hash of the joined parts (the same digest as updating part by part, in fewer calls:
    # this runs on every answered call).
    parts: list[bytes] = []
    for message in messages:
        parts += (
            str(message.get("role", "")).encode(),
            b"\x01",
            message_text(message).encode("utf-8", "surrogatepass"),
            b"\x00",
        )
    return hashlib.blake2b(b"".join(parts), digest_size=16).digest()


def last_assistant_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "assistant":
            return index
    return None


class ConversationMemory:
    """A bounded LRU map from conversation prefix to the backend that answered it (keys
    are 16-byte digests: 65 bytes an entry less than hex strings)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def backend_for(self, messages: Sequence[Mapping[str, Any]]) -> tuple[str, int] | None:
        """The backend of the conversation's last reply, and how many messages precede
        (and include) that reply; None for a new conversation."""
        index = last_assistant_index(messages)
        if index is None:
            return None
        key = _digest(messages[: index + 1])
        with self._lock:
            backend = self._entries.get(key)
            if backend is not None:
                self._entries.move_to_end(key)
        return (backend, index + 1) if backend is not None else None

    def remember(
        self,
        messages: Sequence[Mapping[str, Any]],
        reply: Mapping[str, Any],
        backend: str,
    ) -> None:
        key = _digest([*messages, reply])
        with self._lock:
            self._entries[key] = backend
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
