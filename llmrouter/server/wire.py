"""The OpenAI wire format: request bodies in, response bytes out.

Shared by the sidecar and the in-process client, so both check requests the
same way and answer with the same bytes. Nothing here touches a socket.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import InvalidRequest, LLMRouterError, UpstreamError
from ..responses import RouterInfo

__all__ = [
    "KNOB_HEADERS",
    "ChatRequest",
    "error_payload",
    "header_knob",
    "json_bytes",
    "parse_chat",
    "parse_json_object",
    "router_headers",
]

# Header → router option. Body fields of the same (underscored) name win over headers.
KNOB_HEADERS: dict[str, str] = {
    "x-llmrouter-quality-floor": "quality_floor",
    "x-llmrouter-answer-value-usd": "answer_value_usd",
    "x-llmrouter-max-cost-usd": "max_cost_usd",
    "x-llmrouter-max-latency-ms": "max_latency_ms",
    "x-llmrouter-user": "user",
    "x-llmrouter-tags": "tags",
    "x-llmrouter-cache": "cache",
}
_NUMBER_KNOBS = frozenset({"quality_floor", "answer_value_usd", "max_cost_usd", "max_latency_ms"})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str_or_str_list(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)
    )


# Known chat parameters and what they must be; anything else passes through untouched.
_PARAM_CHECKS: dict[str, tuple[Any, str]] = {
    "model": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "stream": (lambda v: isinstance(v, bool), "a boolean"),
    "temperature": (_is_number, "a number"),
    "top_p": (_is_number, "a number"),
    "n": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1"),
    "max_tokens": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1"),
    "max_completion_tokens": (lambda v: _is_int(v) and v >= 1, "an integer ≥ 1"),
    "stop": (_is_str_or_str_list, "a string or a list of strings"),
    "seed": (_is_int, "an integer"),
    "logprobs": (lambda v: isinstance(v, bool), "a boolean"),
    "top_logprobs": (lambda v: _is_int(v) and v >= 0, "an integer ≥ 0"),
    "presence_penalty": (_is_number, "a number"),
    "frequency_penalty": (_is_number, "a number"),
    "user": (lambda v: isinstance(v, str), "a string"),
    "tools": (lambda v: isinstance(v, list), "a list of tool objects"),
    "tool_choice": (lambda v: isinstance(v, (str, dict)), "a string or an object"),
    "response_format": (lambda v: isinstance(v, dict), "an object"),
    "stream_options": (lambda v: isinstance(v, dict), "an object"),
    "logit_bias": (lambda v: isinstance(v, dict), "an object"),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "a boolean"),
    "quality_floor": (_is_number, "a number in [0, 1]"),
    "answer_value_usd": (_is_number, "a positive number"),
    "max_cost_usd": (_is_number, "a positive number"),
    "max_latency_ms": (_is_number, "a positive number"),
    "tags": (_is_str_or_str_list, "a list of strings"),
    "cache": (lambda v: isinstance(v, bool), "a boolean"),
}


@dataclass(slots=True)
class ChatRequest:
    """A checked chat request, split into what the Router's ``complete`` takes."""

    messages: list[Any]
    model: str
    stream: bool
    include_usage: bool
    params: dict[str, Any] = field(default_factory=dict)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if not raw:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"the request body must be a JSON object, not a {_kind(data)}")
    return data


def parse_chat(raw: bytes, headers: Mapping[str, str]) -> ChatRequest:
    """Check a ``/chat/completions`` body; knobs in ``x-llmrouter-*`` headers fill gaps."""
    body = parse_json_object(raw)
    messages = body.pop("messages", None)
    if messages is None:
        raise InvalidRequest("'messages' is required", param="messages")
    check_messages(messages)
    params: dict[str, Any] = {}
    for name, value in body.items():
        if value is None:
            continue  # null means "the default" in OpenAI's API
        check = _PARAM_CHECKS.get(name)
        if check is not None and not check[0](value):
            raise InvalidRequest(f"'{name}' must be {check[1]}; got {_kind(value)}", param=name)
        params[name] = value
    if "tools" in params:
        _check_tools(params["tools"])
    for header, option in KNOB_HEADERS.items():
        value = headers.get(header)
        if value is not None and option not in params:
            params[option] = header_knob(header, option, value)
    model = params.pop("model", "auto")
    stream = params.pop("stream", False)
    options = params.get("stream_options")
    include_usage = bool(stream and isinstance(options, dict) and options.get("include_usage"))
    return ChatRequest(messages, model, stream, include_usage, params)


def check_messages(messages: Any) -> None:
    """Deeper checks than the router's: every nested shape a backend or tokenizer reads."""
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be a list of message objects", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue  # the router names this one precisely
        where = f"messages[{index}]"
        content = message.get("content")
        if isinstance(content, list):
            for position, part in enumerate(content):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise InvalidRequest(
                        f"{where}.content[{position}] must be an object with a 'type'",
                        param=f"{where}.content[{position}]",
                    )
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise InvalidRequest(
                        f"{where}.content[{position}].text must be a string",
                        param=f"{where}.content[{position}].text",
                    )
        name = message.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidRequest(f"{where}.name must be a string", param=f"{where}.name")
        calls = message.get("tool_calls")
        if calls is None:
            continue
        if not isinstance(calls, list):
            raise InvalidRequest(f"{where}.tool_calls must be a list", param=f"{where}.tool_calls")
        for position, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict):
                raise InvalidRequest(
                    f"{where}.tool_calls[{position}] must be an object with a 'function' object",
                    param=f"{where}.tool_calls[{position}]",
                )


def _check_tools(tools: list[Any]) -> None:
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(
                f"tools[{index}] must be {{'type': 'function', 'function': {{'name': ...}}}}",
                param=f"tools[{index}]",
            )


def header_knob(header: str, option: str, value: str) -> Any:
    if option in _NUMBER_KNOBS:
        try:
            return float(value)
        except ValueError:
            raise InvalidRequest(
                f"header {header} must be a number; got {value[:40]!r}", param=header
            ) from None
    if option == "cache":
        lowered = value.strip().lower()
        if lowered not in ("true", "false", "1", "0", "on", "off"):
            raise InvalidRequest(f"header {header} must be true or false", param=header)
        return lowered in ("true", "1", "on")
    if option == "tags":
        return [t.strip() for t in value.split(",") if t.strip()]
    return value


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


# --- answers ------------------------------------------------------------------------------------


def json_bytes(value: Any) -> bytes:
    return orjson.dumps(value)


def router_headers(info: RouterInfo) -> list[tuple[str, str]]:
    """What the router did, as response headers (never a key, never the prompt)."""
    complexity = info.decision.complexity if info.decision is not None else None
    headers = [
        ("x-llmrouter-backend", info.backend),
        ("x-llmrouter-cost-usd", f"{info.cost_usd:.10f}"),
        ("x-llmrouter-complexity", f"{complexity:.4f}" if complexity is not None else ""),
        ("x-llmrouter-cache", info.cache),
        ("x-llmrouter-request-id", info.request_id),
    ]
    if info.budget_warning:  # a soft budget is over its limit
        headers.append(("x-llmrouter-budget-warning", header_value(info.budget_warning)))
    return headers


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def header_value(text: str) -> str:
    """Text fit for a header value: a warning names the caller's user or tag, and a control
    character in one (``"user": "a\\nb"``) would otherwise break the response."""
    return _CONTROL.sub("?", text)


def error_payload(exc: BaseException) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Status, OpenAI-style error body and extra headers for an exception."""
    headers: list[tuple[str, str]] = []
    if not isinstance(exc, LLMRouterError):
        body = {
            "message": "internal error; the request failed (see the server log)",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
        return 500, orjson.dumps({"error": body}), headers
    status = exc.status_code
    error_type = exc.error_type
    if isinstance(exc, UpstreamError):
        if exc.kind == "rate_limited":
            # Upstream kept rate-limiting after retries and fallbacks: tell the client to back off.
            status, error_type = 429, "rate_limit_error"
            if exc.retry_after is not None:
                headers.append(("retry-after", str(max(int(exc.retry_after + 0.999), 1))))
        elif exc.kind == "client_error" and exc.status in (400, 422):
            status, error_type = 400, "invalid_request_error"
    body = {"message": exc.message, "type": error_type, "param": exc.param, "code": exc.code}
    return status, orjson.dumps({"error": body}), headers
