"""Token usage and dollars: provider-reported when present, counted with tiktoken when not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from .policy.schema import Price
from .tokens import count_text_tokens

__all__ = ["Spend", "TokenUsage", "completion_text", "measure_spend", "parse_usage"]


@dataclass(frozen=True, slots=True)
class Spend:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    usage_source: Literal["provider", "tiktoken"]
    cost_usd: float
    baseline_cost_usd: float
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """A provider's usage in one shape: prompt counts every input token (cache reads and
    writes included), completion every output token (reasoning included)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


def parse_usage(usage: Mapping[str, Any] | None) -> TokenUsage | None:
    """Read the usage shapes providers send; None when the counts are missing.

    - OpenAI (and compatible servers: vLLM, llama.cpp, Ollama): ``prompt_tokens``,
      ``completion_tokens``, ``prompt_tokens_details.cached_tokens``,
      ``completion_tokens_details.reasoning_tokens``.
    - Anthropic through litellm: the same, plus cache writes in
      ``prompt_tokens_details.cache_creation_tokens`` / ``cache_creation_input_tokens``.
    - Anthropic's native Messages API: ``input_tokens`` (uncached only), ``output_tokens``,
      ``cache_read_input_tokens``, ``cache_creation_input_tokens``.
    """
    if not _is_mapping(usage):
        return None
    prompt = _int(usage, "prompt_tokens")
    completion = _int(usage, "completion_tokens")
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    reasoning = _int(completion_details, "reasoning_tokens") or 0
    if prompt is not None and completion is not None:
        cached = _int(prompt_details, "cached_tokens")
        if cached is None:
            cached = _int(usage, "cache_read_input_tokens") or 0
        written = _int(prompt_details, "cache_creation_tokens")
        if written is None:
            written = _int(usage, "cache_creation_input_tokens") or 0
        cached = min(cached, prompt)
        written = min(written, prompt - cached)
        return TokenUsage(prompt, completion, cached, written, min(reasoning, completion))
    uncached = _int(usage, "input_tokens")
    output = _int(usage, "output_tokens")
    if uncached is None or output is None:
        return None
    cached = _int(usage, "cache_read_input_tokens") or 0
    written = _int(usage, "cache_creation_input_tokens") or 0
    return TokenUsage(uncached + cached + written, output, cached, written, min(reasoning, output))


def completion_text(choices: Any) -> str:
    """Everything the model generated across choices: text and tool-call arguments."""
    parts: list[str] = []
    if not isinstance(choices, list):
        return ""
    for choice in choices:
        if not _is_mapping(choice):
            continue
        message = choice.get("message") or choice.get("delta") or {}
        if not _is_mapping(message):
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        for call in message.get("tool_calls") or ():
            function = call.get("function") if _is_mapping(call) else None
            if _is_mapping(function):
                parts.append(str(function.get("name") or ""))
                parts.append(str(function.get("arguments") or ""))
    return "".join(parts)


def _is_mapping(value: Any) -> TypeGuard[Mapping[str, Any]]:
    # ``type(...) is dict`` first: an isinstance check against the Mapping ABC costs ~10x.
    return type(value) is dict or isinstance(value, Mapping)


def measure_spend(
    usage: Mapping[str, Any] | None,
    estimated_prompt_tokens: int,
    generated_text: str,
    price: Price,
    reference_price: Price,
) -> Spend:
    """Price a call at its backend and, for the baseline, at the reference backend.

    Cache reads, cache writes and reasoning tokens are billed at their own rates where the
    price has them; the baseline prices the same tokens at the reference's list prices.
    """
    parsed = parse_usage(usage)
    source: Literal["provider", "tiktoken"]
    if parsed is not None:
        source = "provider"
    else:
        parsed = TokenUsage(estimated_prompt_tokens, count_text_tokens(generated_text))
        source = "tiktoken"
    return Spend(
        prompt_tokens=parsed.prompt_tokens,
        completion_tokens=parsed.completion_tokens,
        cached_tokens=parsed.cached_tokens,
        usage_source=source,
        cost_usd=price.cost(
            parsed.prompt_tokens,
            parsed.completion_tokens,
            parsed.cached_tokens,
            cache_write_tokens=parsed.cache_write_tokens,
            reasoning_tokens=parsed.reasoning_tokens,
        ),
        baseline_cost_usd=reference_price.cost(parsed.prompt_tokens, parsed.completion_tokens),
        cache_write_tokens=parsed.cache_write_tokens,
        reasoning_tokens=parsed.reasoning_tokens,
    )


def _int(mapping: Any, key: str) -> int | None:
    if mapping is None or not _is_mapping(mapping):  # most usages have no details (None)
        return None
    value = mapping.get(key)
    return value if isinstance(value, int) and value >= 0 else None
