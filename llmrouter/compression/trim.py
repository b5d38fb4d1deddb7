"""Fitting a conversation into a token budget by dropping (or condensing) whole old turns.

A turn starts at a user message and runs to the next one, so an assistant's tool calls stay
with their results and the remaining conversation still alternates user/assistant as some
providers require. System messages, pinned messages' turns and the latest turn are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from llmrouter.compression.messages import Message, TokenCounter, is_system

__all__ = ["Condenser", "split_turns", "trim_messages"]

# Summarises dropped messages into one text, e.g. with the policy's cheapest backend.
Condenser = Callable[[list[Message]], str]


def split_turns(messages: Sequence[Message]) -> list[list[int]]:
    """Indices of the non-system messages, grouped into turns that start at a user message."""
    turns: list[list[int]] = []
    for index, message in enumerate(messages):
        if is_system(message):
            continue
        if message.get("role") == "user" or not turns:
            turns.append([index])
        else:
            turns[-1].append(index)
    return turns


def trim_messages(
    messages: list[Message],
    budget: int,
    counter: TokenCounter,
    *,
    pinned: Collection[int] = (),
    condenser: Condenser | None = None,
) -> tuple[list[Message], list[Message]]:
    """(kept messages, dropped messages); oldest unpinned turns go first.

    With a ``condenser`` the dropped messages come back as one system message holding
    their summary, placed after the leading system messages.
    """
    total = counter.messages(messages)
    if total <= budget:
        return messages, []
    turns = split_turns(messages)
    dropped: set[int] = set()
    for turn in turns[:-1]:
        if total <= budget:
            break
        if any(index in pinned or messages[index].get("pinned") for index in turn):
            continue
        dropped.update(turn)
        total -= sum(counter.message(messages[index]) for index in turn)
    if not dropped:
        return messages, []
    kept = [message for index, message in enumerate(messages) if index not in dropped]
    removed = [message for index, message in enumerate(messages) if index in dropped]
    if condenser is not None:
        summary = condenser(removed).strip()
        if summary:
            position = 0
            while position < len(kept) and is_system(kept[position]):
                position += 1
            note = {"role": "system", "content": f"Summary of the earlier conversation:\n{summary}"}
            kept.insert(position, note)
    return kept, removed


def strip_pins(messages: Sequence[Message]) -> None:
    """Remove the non-standard ``pinned`` key before messages go to a provider."""
    for message in messages:
        message.pop("pinned", None)
