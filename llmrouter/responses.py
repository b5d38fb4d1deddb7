"""OpenAI-shaped responses, plus the router's own metadata on ``.router``.

Field names follow OpenAI's chat completion objects; unknown upstream fields
are kept (``extra="allow"``) so nothing a provider adds is lost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from .routing.decision import Decision

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChunkChoice",
    "Delta",
    "RouterInfo",
    "Usage",
]


class _OpenAIModel(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)


class Usage(_OpenAIModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: dict[str, Any] | None = None
    completion_tokens_details: dict[str, Any] | None = None


class ChatCompletionMessage(_OpenAIModel):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    refusal: str | None = None


class Choice(_OpenAIModel):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: str | None = None
    logprobs: Any = None


class Delta(_OpenAIModel):
    role: str | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(_OpenAIModel):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: Any = None


@dataclass(slots=True)
class RouterInfo:
    """What the router did for one call: where it went, what it cost, what it saved."""

    request_id: str
    backend: str
    provider_model: str
    decision: Decision | None
    cost_usd: float
    baseline_cost_usd: float
    cache: Literal["hit", "miss", "off"]
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    usage_source: Literal["provider", "tiktoken", "cache"] = "provider"
    attempts: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "ok"
    tokens_before_compression: int | None = None
    compression_saved_usd: float = 0.0
    budget_warning: str | None = None  # a soft budget is over its limit (sent as a header)

    @property
    def saved_usd(self) -> float:
        return self.baseline_cost_usd - self.cost_usd

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["decision"] = self.decision.to_dict() if self.decision is not None else None
        data["saved_usd"] = self.saved_usd
        return data


# Sets a slot of the two models below without pydantic's ``__setattr__`` (which looks the
# name up among fields and private attributes first: ~1.5 µs a call, on every completion and
# every streamed chunk).
set_slot = object.__setattr__


class ChatCompletion(_OpenAIModel):
    # Slots, not pydantic PrivateAttrs: a private attribute's default costs ~4 µs on every
    # completion built, and reading it goes through __getattr__ (~2 µs).
    __slots__ = ("_router", "_wire")
    if TYPE_CHECKING:  # declared for type checkers only: pydantic would make them private
        _router: RouterInfo | None
        _wire: dict[str, Any] | None

    id: str
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None

    @property
    def router(self) -> RouterInfo:
        info: RouterInfo | None = getattr(self, "_router", None)
        if info is None:
            raise AttributeError("this completion did not come through a Router")
        return info

    def wire(self) -> dict[str, Any] | None:
        """The JSON object this completion was validated from, as the router answered it
        (usage included); None for a completion built otherwise or copied. The sidecar
        sends it as it is instead of serialising the model again."""
        return getattr(self, "_wire", None)

    def __copy__(self) -> ChatCompletion:
        copied = super().__copy__()
        copied._router = getattr(self, "_router", None)
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ChatCompletion:
        copied = super().__deepcopy__(memo)
        copied._router = getattr(self, "_router", None)
        return copied

    def __getstate__(self) -> dict[Any, Any]:  # pickling: slots are not in pydantic's state
        state = dict(super().__getstate__())
        state["llmrouter_router"] = getattr(self, "_router", None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        state = dict(state)
        router = state.pop("llmrouter_router", None)
        super().__setstate__(state)
        self._router = router


class ChatCompletionChunk(_OpenAIModel):
    __slots__ = ("_wire",)  # as on ChatCompletion
    if TYPE_CHECKING:
        _wire: dict[str, Any] | None

    id: str
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[ChunkChoice]
    usage: Usage | None = None

    def wire(self) -> dict[str, Any] | None:
        """The event this chunk was validated from (see :meth:`ChatCompletion.wire`)."""
        return getattr(self, "_wire", None)
