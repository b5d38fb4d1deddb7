"""What the router needs to know about a request before choosing a backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest
from ..policy.schema import Capability
from ..tokens import IMAGE_TOKENS, TOKENS_PER_MESSAGE, TOKENS_PER_REPLY, encode, message_text

__all__ = ["RequestFacts", "analyze_request", "validate_messages"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """Facts about one request, computed once and shared by every routing step."""

    text: str
    token_ids: Sequence[int]
    focus_text: str
    focus_ids: Sequence[int]
    prompt_tokens: int
    max_tokens: int | None
    needs: frozenset[Capability]
    turns: int


def validate_messages(messages: Any) -> list[dict[str, Any]]:
    """Check the shape of ``messages`` and say precisely what is wrong."""
    # ``type(...) is`` first, here and below: an isinstance check against an ABC costs ~10x.
    if type(messages) is not list and (
        not isinstance(messages, Sequence) or isinstance(messages, (str, bytes))
    ):
        raise InvalidRequest("messages must be a list of {role, content} objects", param="messages")
    if not messages:
        raise InvalidRequest("messages must not be empty", param="messages")
    for index, message in enumerate(messages):
        if type(message) is not dict and not isinstance(message, Mapping):
            raise InvalidRequest(
                f"messages[{index}] must be an object with 'role' and 'content'",
                param=f"messages[{index}]",
            )
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidRequest(
                f"messages[{index}].role must be one of {', '.join(sorted(_ROLES))}; got {role!r}",
                param=f"messages[{index}].role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise InvalidRequest(
                f"messages[{index}].content must be a string or a list of content parts",
                param=f"messages[{index}].content",
            )
        if content is None and role not in ("assistant",):
            raise InvalidRequest(
                f"messages[{index}].content is required for role {role!r}",
                param=f"messages[{index}].content",
            )
    return [dict(m) for m in messages]


def analyze_request(
    messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> RequestFacts:
    texts: list[str] = []
    ids: list[int] = []
    focus = (0, 0, "")  # the last user message: what this turn asks
    images = 0
    for message in messages:
        text = message_text(message)
        texts.append(text)
        encoded = encode(text) if text else []
        if message.get("role") == "user":
            focus = (len(ids), len(ids) + len(encoded), text)
        ids.extend(encoded)
        content = message.get("content")
        if isinstance(content, list):
            images += sum(
                1
                for part in content
                if isinstance(part, Mapping) and part.get("type") in ("image_url", "input_image")
            )
    prompt_tokens = (
        len(ids)
        + (TOKENS_PER_MESSAGE + 1) * len(messages)  # + 1: the role
        + TOKENS_PER_REPLY
        + images * IMAGE_TOKENS
    )
    tools = params.get("tools") or params.get("functions")
    if tools:
        import json

        prompt_tokens += len(encode(json.dumps(tools, separators=(",", ":"))))
    needs: set[Capability] = set()
    if tools:
        needs.add("tools")
    if images:
        needs.add("vision")
    response_format = params.get("response_format")
    format_type = (
        response_format.get("type")
        if response_format is not None and isinstance(response_format, Mapping)
        else None
    )
    if format_type in ("json_object", "json_schema"):
        needs.add("json")
    max_tokens = params.get("max_completion_tokens") or params.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens <= 0):
        raise InvalidRequest("max_tokens must be a positive integer", param="max_tokens")
    turns = sum(1 for m in messages if m.get("role") == "user")
    start, end, focus_text = focus
    if not focus_text:  # no user message: judge the whole prompt
        start, end, focus_text = 0, len(ids), "\n".join(texts)
    return RequestFacts(
        text="\n".join(texts),
        token_ids=ids,
        focus_text=focus_text,
        focus_ids=ids[start:end],
        prompt_tokens=prompt_tokens,
        max_tokens=max_tokens,
        needs=frozenset(needs),
        turns=turns,
    )
