"""The policy schema: what a YAML policy may say, validated by pydantic.

Every model forbids unknown keys, so a typo is an error that names the key
rather than a setting silently ignored.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "OPENAI_COMPATIBLE_PROVIDERS",
    "BackendConfig",
    "BudgetConfig",
    "CacheConfig",
    "Capability",
    "CircuitBreakerConfig",
    "CompressionConfig",
    "FallbackConfig",
    "LedgerConfig",
    "Policy",
    "Price",
    "RoutingConfig",
    "SemanticCacheConfig",
    "ServerConfig",
    "SharedStateConfig",
]

Capability = Literal["tools", "vision", "json"]
CompressionStage = Literal["normalize", "dedupe", "trim", "extract", "prune", "condense"]

# Providers reached over plain httpx with the OpenAI wire format, and their default base URL.
OPENAI_COMPATIBLE_PROVIDERS: dict[str, str | None] = {
    "openai-compatible": None,
    "openai": "https://api.openai.com/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    "vllm": None,
    "llamacpp": None,
}


# The keys of a backend's ``calibration:`` block (written by ``llmrouter calibrate``): ability,
# discrimination, then the brain's skill categories. The brain reads them from here, so a
# policy loads without importing it (or numpy).
CALIBRATION_KEYS: tuple[str, ...] = (
    "ability",
    "discrimination",
    "math",
    "code",
    "reasoning",
    "knowledge",
    "chat",
)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class Price(StrictModel):
    """USD per million tokens."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    cached_input_per_million: float | None = Field(default=None, ge=0)
    # Prompt tokens written to a provider's prompt cache (Anthropic bills them above input).
    cache_write_per_million: float | None = Field(default=None, ge=0)
    # Reasoning tokens, when a provider bills them apart from other output tokens.
    reasoning_per_million: float | None = Field(default=None, ge=0)

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        cached_tokens: int = 0,
        *,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> float:
        """Dollar cost of a call, each kind of token at its own rate when one is known.

        ``prompt_tokens`` counts every prompt token (cache reads and writes included) and
        ``completion_tokens`` every output token (reasoning included), as OpenAI reports.
        """
        cached_rate = (
            self.cached_input_per_million
            if self.cached_input_per_million is not None
            else self.input_per_million
        )
        write_rate = (
            self.cache_write_per_million
            if self.cache_write_per_million is not None
            else self.input_per_million
        )
        reasoning_rate = (
            self.reasoning_per_million
            if self.reasoning_per_million is not None
            else self.output_per_million
        )
        uncached = max(prompt_tokens - cached_tokens - cache_write_tokens, 0)
        reasoning = min(reasoning_tokens, completion_tokens)
        return (
            uncached * self.input_per_million
            + cached_tokens * cached_rate
            + cache_write_tokens * write_rate
            + (completion_tokens - reasoning) * self.output_per_million
            + reasoning * reasoning_rate
        ) / 1_000_000


class BackendConfig(StrictModel):
    """One model the router may send a request to."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$", max_length=128)
    provider: str = "openai-compatible"
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    price: Price | None = None
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    capabilities: list[Capability] = Field(default_factory=list)
    quality: float = Field(default=0.5, gt=0, lt=1)
    latency_slo_ms: float | None = Field(default=None, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)
    stream_usage: bool = True
    embeddings: bool = False
    calibration: dict[str, float] | None = None

    @field_validator("calibration")
    @classmethod
    def _known_calibration_keys(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        unknown = sorted(set(value or ()) - set(CALIBRATION_KEYS))
        if unknown:
            raise ValueError(
                f"unknown calibration key(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(CALIBRATION_KEYS)}"
            )
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider_shape(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("provider must be a non-empty word such as 'openai-compatible'")
        return value

    @model_validator(mode="after")
    def _base_url_where_needed(self) -> BackendConfig:
        if self.openai_compatible:
            if self.base_url is None and OPENAI_COMPATIBLE_PROVIDERS[self.provider] is None:
                raise ValueError(
                    f"provider {self.provider!r} needs base_url (e.g. http://127.0.0.1:8080/v1)"
                )
            url = self.endpoint
            if url is not None and urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"base_url must start with http:// or https://, got {url!r}")
        return self

    @property
    def openai_compatible(self) -> bool:
        return self.provider in OPENAI_COMPATIBLE_PROVIDERS

    @property
    def endpoint(self) -> str | None:
        """The base URL calls go to (None for litellm providers without one)."""
        if self.base_url is not None:
            return self.base_url.rstrip("/")
        return OPENAI_COMPATIBLE_PROVIDERS.get(self.provider)

    @property
    def litellm_model(self) -> str:
        """The model string litellm expects: ``provider/model``."""
        if self.provider in ("litellm", "openai-compatible"):
            return self.model
        prefix = f"{self.provider}/"
        return self.model if self.model.startswith(prefix) else prefix + self.model

    @property
    def is_local(self) -> bool:
        """True when the endpoint is on this machine (loopback): priced at 0 by default."""
        url = self.endpoint
        if url is None:
            return False
        host = urlsplit(url).hostname or ""
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    @property
    def resolved_price(self) -> Price:
        """The price after policy loading filled defaults in (always set on a loaded policy)."""
        if self.price is None:
            raise RuntimeError(f"backend {self.name!r} has no price; load it with load_policy()")
        return self.price

    @property
    def resolved_context_window(self) -> int:
        if self.context_window is None:
            raise RuntimeError(f"backend {self.name!r} has no context window; use load_policy()")
        return self.context_window


class RoutingConfig(StrictModel):
    """How a backend is chosen (docs/decision-rule.md).

    ``rule: floor`` (the default) takes the cheapest backend predicted ≥ ``quality_floor``;
    ``rule: value`` the one maximising ``answer_value_usd`` × p(good answer) − expected cost,
    with ``quality_floor`` a minimum only when the policy writes it.
    """

    rule: Literal["floor", "value"] = "floor"
    quality_floor: float = Field(default=0.7, ge=0, le=1)
    # USD one good answer is worth to you; validated against `rule` below.
    answer_value_usd: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, validate_default=True
    )
    reference: str | None = None
    expected_output_tokens: int = Field(default=256, gt=0)
    predictor: Literal["learned", "heuristic"] = "learned"
    predictor_weights: str | None = None  # a `llmrouter train --out` directory; default: shipped
    # True: a conversation stays on its backend unless a turn needs a stronger one (its
    # cached prefix priced at the cached-input rate); "cost": that backend competes on its
    # cache-discounted cost, so a conversation can also move to a cheaper backend; False: off.
    sticky_conversations: bool | Literal["cost"] = True
    # How long a provider keeps a conversation's prompt cache after its last turn (OpenAI and
    # Anthropic: about 5 minutes idle); past it the cached prefix is not discounted.
    prompt_cache_ttl_s: float = Field(default=300.0, ge=0)

    @field_validator("sticky_conversations", mode="before")
    @classmethod
    def _sticky_mode(cls, value: Any) -> Any:
        if isinstance(value, bool) or value == "cost":
            return value
        raise ValueError("expected true, false or cost")

    @field_validator("answer_value_usd")
    @classmethod
    def _value_knob_matches_rule(cls, value: float | None, info: ValidationInfo) -> float | None:
        rule = info.data.get("rule")
        if rule == "value" and value is None:
            raise ValueError(
                "rule: value needs answer_value_usd, what one good answer is worth to you "
                "in USD (e.g. 0.01)"
            )
        if rule == "floor" and value is not None:
            raise ValueError(
                "answer_value_usd is used only by rule: value; add `rule: value` or remove it"
            )
        return value

    @property
    def value_floor(self) -> float:
        """The minimum under the value rule: ``quality_floor`` only when the policy wrote it,
        since its default (0.7) is the floor rule's operating point, not a minimum."""
        return self.quality_floor if "quality_floor" in self.model_fields_set else 0.0


class CircuitBreakerConfig(StrictModel):
    failure_threshold: int = Field(default=5, ge=1)
    reset_after_s: float = Field(default=30.0, gt=0)


class FallbackConfig(StrictModel):
    """What happens when a backend fails: retries on it, then the next candidate."""

    enabled: bool = True
    max_backends: int = Field(default=3, ge=1)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_initial_s: float = Field(default=0.25, ge=0)
    backoff_max_s: float = Field(default=8.0, ge=0)
    deadline_s: float = Field(default=120.0, gt=0)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)


class SemanticCacheConfig(StrictModel):
    enabled: bool = False
    threshold: float = Field(default=0.92, gt=0, le=1)
    embedding_backend: str | None = None
    max_entries: int = Field(default=100_000, gt=0)


class CacheConfig(StrictModel):
    enabled: bool = True
    path: str = ".llmrouter/cache"
    ttl_s: float | None = Field(default=86_400.0, gt=0)
    max_size_mb: int = Field(default=512, gt=0)
    semantic: SemanticCacheConfig = Field(default_factory=SemanticCacheConfig)


class LedgerConfig(StrictModel):
    enabled: bool = True
    url: str = "sqlite:///.llmrouter/ledger.db"
    store_prompts: bool = False
    # Commit each row before the answer is returned (slower; survives a kill -9).
    sync: bool = False

    @field_validator("url")
    @classmethod
    def _supported_scheme(cls, value: str) -> str:
        if not value.startswith(LEDGER_SCHEMES):
            raise ValueError(
                "ledger url must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
                "(postgres:// also accepted)"
            )
        return value


LEDGER_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


class BudgetConfig(StrictModel):
    """A spending limit over a period, for one scope (an API key, a user, a tag, or all calls).

    Without ``match``, every distinct key/user/tag gets its own limit; with it, only that one.
    ``hard`` refuses a call whose worst-case cost would cross the limit (HTTP 429);
    ``soft`` lets it through with a warning header and a log line.
    """

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    scope: Literal["global", "key", "user", "tag"] = "global"
    match: str | None = Field(default=None, min_length=1)
    period: Literal["day", "month", "total"] = "month"
    limit_usd: float = Field(gt=0)
    mode: Literal["hard", "soft"] = "hard"

    @model_validator(mode="after")
    def _global_has_no_match(self) -> BudgetConfig:
        if self.scope == "global" and self.match is not None:
            raise ValueError("a global budget applies to every call; remove 'match'")
        return self

    @property
    def label(self) -> str:
        """A stable id for counters and reports (the name, else scope/match/period)."""
        if self.name is not None:
            return self.name
        return f"{self.scope}:{self.match or '*'}:{self.period}"


class SharedStateConfig(StrictModel):
    """State shared by sidecar replicas through Redis: cache, breakers, latency, budgets."""

    redis_url: str | None = None
    key_prefix: str = Field(default="llmrouter", pattern=r"^[A-Za-z0-9._:-]+$")
    # How long a replica trusts its local copy of the circuit-breaker states.
    breaker_refresh_s: float = Field(default=0.5, ge=0)
    # How often a replica publishes and merges latency estimates.
    latency_sync_s: float = Field(default=1.0, gt=0)
    # Budget leases: calls spend from blocks of budget each replica draws from Redis, not
    # one Redis reserve per call (docs/spend.md: the guarantee and the trade-off).
    budget_leases: bool = True
    # How long replicas share which backend answered a conversation (sticky conversations
    # across replicas); a conversation idle longer starts afresh. Redis holds every answered
    # call's entry (~100 bytes) for one to two of these.
    conversation_ttl_s: float = Field(default=3_600.0, gt=0)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must be redis://HOST:PORT/DB, rediss://... or unix://")
        return value


def _default_stages() -> list[CompressionStage]:
    return ["normalize", "dedupe", "trim", "extract", "prune"]


class CompressionConfig(StrictModel):
    enabled: bool = False
    stages: list[CompressionStage] = Field(default_factory=_default_stages)
    ratio: float | None = Field(default=None, ge=1)
    min_tokens: int = Field(default=1000, ge=0)
    budget_tokens: int | None = Field(default=None, gt=0)
    preserve_code: bool = True


class ServerConfig(StrictModel):
    """Sidecar settings: keys clients must present (named by env var), body size limit,
    how long an idle keep-alive connection stays open, how long a request may take to
    arrive, and the grace given to in-flight requests on shutdown."""

    api_keys_env: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    keep_alive_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)
    graceful_shutdown_s: float = Field(default=10.0, ge=0)


class Policy(StrictModel):
    version: Literal[1] = 1
    backends: list[BackendConfig] = Field(min_length=1)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    fallback: FallbackConfig = Field(default_factory=FallbackConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    compression: CompressionConfig = Field(default_factory=CompressionConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    shared_state: SharedStateConfig = Field(default_factory=SharedStateConfig)

    _source: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _names_are_consistent(self) -> Policy:
        seen: set[str] = set()
        for backend in self.backends:
            if backend.name in seen:
                raise ValueError(f"duplicate backend name {backend.name!r}")
            seen.add(backend.name)
        names = ", ".join(sorted(seen))
        if self.routing.reference is not None and self.routing.reference not in seen:
            raise ValueError(
                f"routing.reference {self.routing.reference!r} is not a backend; one of: {names}"
            )
        labels = [b.label for b in self.budgets]
        if len(set(labels)) != len(labels):
            raise ValueError("two budgets share a name (or scope, match and period); name them")
        embed = self.cache.semantic.embedding_backend
        if embed is not None and embed not in seen:
            raise ValueError(
                f"cache.semantic.embedding_backend {embed!r} is not a backend; one of: {names}"
            )
        return self

    @property
    def source(self) -> str | None:
        """The file this policy was loaded from, if any."""
        return self._source

    def backend(self, name: str) -> BackendConfig | None:
        for backend in self.backends:
            if backend.name == name:
                return backend
        return None

    @property
    def reference_backend(self) -> BackendConfig:
        """The 'without routing' baseline: the named reference, else the best-rated backend."""
        if self.routing.reference is not None:
            found = self.backend(self.routing.reference)
            if found is not None:
                return found
        return max(self.backends, key=lambda b: b.quality)
