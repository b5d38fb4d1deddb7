"""Token usage and dollars: provider-reported when present, counted with tiktoken when not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .policy.schema import Price
from .tokens import count_text_tokens

__all__ = ["Spend", "completion_text", "measure_spend"]


@dataclass(frozen=True, slots=True)
class Spend:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    usage_source: Literal["provider", "tiktoken"]
    cost_usd: float
    baseline_cost_usd: float


def completion_text(choices: Any) -> str:
    """Everything the model generated across choices: text and tool-call arguments."""
    parts: list[str] = []
    if not isinstance(choices, list):
        return ""
    for choice in choices:
        if not isinstance(choice, Mapping):
            continue
        message = choice.get("message") or choice.get("delta") or {}
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            parts.append(content)
        for call in (message.get("tool_calls") or []) if isinstance(message, Mapping) else []:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                parts.append(str(function.get("name") or ""))
                parts.append(str(function.get("arguments") or ""))
    return "".join(parts)


def measure_spend(
    usage: Mapping[str, Any] | None,
    estimated_prompt_tokens: int,
    generated_text: str,
    price: Price,
    reference_price: Price,
) -> Spend:
    """Price a call at its backend and, for the baseline, at the reference backend."""
    prompt = _int(usage, "prompt_tokens")
    completion = _int(usage, "completion_tokens")
    if prompt is not None and completion is not None:
        details = usage.get("prompt_tokens_details") if usage else None
        cached = _int(details, "cached_tokens") or 0 if isinstance(details, Mapping) else 0
        source: Literal["provider", "tiktoken"] = "provider"
    else:
        prompt = estimated_prompt_tokens
        completion = count_text_tokens(generated_text)
        cached = 0
        source = "tiktoken"
    return Spend(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        usage_source=source,
        cost_usd=price.cost(prompt, completion, cached),
        baseline_cost_usd=reference_price.cost(prompt, completion),
    )


def _int(mapping: Mapping[str, Any] | None, key: str) -> int | None:
    if not mapping:
        return None
    value = mapping.get(key)
    return value if isinstance(value, int) and value >= 0 else None
