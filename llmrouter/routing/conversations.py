"""Which backend answered a conversation so far, so its next turn can stay there.

Switching models mid-conversation throws away the provider's prompt cache: the
new backend reads the whole history at the full input price. The router
remembers, per conversation prefix, the backend that produced its last reply and
when, since providers drop a prompt cache after a few idle minutes.

This memory lives in one process; with ``shared_state.redis_url`` replicas share it
(``llmrouter.shared.conversations``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..tokens import message_text

__all__ = ["ConversationMemory", "conversation_key", "when"]


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
            # Stripped: clients echo a tool-call reply's content as None or "" and trim
            # whitespace, which must not make a known conversation look new.
            message_text(message).strip().encode("utf-8", "surrogatepass"),
            b"\x00",
        )
    return hashlib.blake2b(b"".join(parts), digest_size=16).digest()


def when(second: int) -> int:
    """The second an entry was stored: entries for replies served from the router's cache
    store it as ``-second - 1`` (so 0 stays distinguishable)."""
    return second if second >= 0 else -second - 1


def last_assistant_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].get("role") == "assistant":
            return index
    return None


class ConversationMemory:
    """A bounded LRU map from conversation prefix to the backend that answered it, and the
    second it did (keys are 16-byte digests: 65 bytes an entry less than hex strings).

    ``clock`` gives the seconds: monotonic in one process; wall-clock where replicas compare
    them (``llmrouter.shared.conversations``)."""

    def __init__(
        self, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()
        # The last (backend, second) stored: calls answered in the same second share one
        # tuple, so a busy memory holds few of them.
        self._stamp: tuple[str, int] = ("", -1)

    def backend_for(
        self, messages: Sequence[Mapping[str, Any]]
    ) -> tuple[str, int, float, bool] | None:
        """The backend of the conversation's last reply; how many messages the prompt it
        answered had (the messages before the reply: what the provider may have cached; the
        reply itself never was part of a prompt); the seconds since; and whether the
        provider saw that prompt (not when the reply came from the router's own cache).
        None for a new conversation."""
        index = last_assistant_index(messages)
        if index is None:
            return None
        found = self._lookup(_digest(messages[: index + 1]))
        if found is None:
            return None
        backend, second = found
        return backend, index, max(self._clock() - when(second), 0.0), second >= 0

    def remember(
        self,
        messages: Sequence[Mapping[str, Any]],
        reply: Mapping[str, Any],
        backend: str,
        provider_saw: bool = True,
    ) -> None:
        """Record ``backend`` as the conversation's; ``provider_saw`` False for a reply the
        router's own cache served (the backend's provider never read that prompt)."""
        second = int(self._clock())
        self._store(_digest([*messages, reply]), backend, second if provider_saw else -second - 1)

    def _lookup(self, key: bytes) -> tuple[str, int] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        return found

    def _store(self, key: bytes, backend: str, second: int) -> None:
        with self._lock:
            stamp = self._stamp
            if stamp[1] != second or stamp[0] != backend:
                stamp = self._stamp = (backend, second)
            self._entries[key] = stamp
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def close(self) -> None:
        """Nothing to release here; the shared memory stops its writer."""
