"""The Router: one request's whole journey, top to bottom.

``complete`` reads as the pipeline it runs: understand the request, decide
where it goes (score + select), serve it from cache if possible, compress it,
call the backend with retries and fallback, then price and record the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from math import inf
from pathlib import Path
from typing import Any, Literal

from .accounting import Spend, completion_text, measure_spend
from .backends import BackendClient, client_for
from .budgets import BudgetUnavailable, Hold, worst_case_usd
from .cache import ExactCache, cache_key
from .components import compressor, default_predictor, semantic_cache
from .errors import (
    BudgetExceeded,
    InvalidRequest,
    StreamInterrupted,
    UnknownBackend,
    UpstreamError,
)
from .ledger import CallRecord, SQLiteLedger, new_request_id, open_ledger
from .policy import BackendConfig, Policy, load_policy
from .resilience import Attempt, CallBudget, Retrier
from .responses import ChatCompletion, ChatCompletionChunk, RouterInfo, Usage, set_slot
from .routing import (
    CircuitBreaker,
    ConversationMemory,
    Decision,
    LatencyTracker,
    Limits,
    QualityPredictor,
    RequestFacts,
    Sticky,
    analyze_request,
    select,
    validate_messages,
)
from .shared import CONVERSATIONS_KEPT, open_budgets, open_shared_state
from .streaming import AsyncCompletionStream, CompletionStream, StreamAccumulator, replay_chunks
from .tokens import message_text

__all__ = ["CallOptions", "Router"]

logger = logging.getLogger("llmrouter")

# Per-call knobs that steer the router and are never sent upstream.
_ROUTER_OPTIONS = (
    "quality_floor",
    "max_cost_usd",
    "max_latency_ms",
    "answer_value_usd",
    "tags",
    "cache",
    "compress",
    "api_key_id",
)
_ROUTER_OPTION_NAMES = frozenset(_ROUTER_OPTIONS)


@dataclass(slots=True)
class CallOptions:
    quality_floor: float | None = None
    max_cost_usd: float | None = None
    max_latency_ms: float | None = None
    answer_value_usd: float | None = None  # routes this call by the value rule
    user: str | None = None
    tags: list[str] = field(default_factory=list)
    cache: bool = True
    compress: bool = True
    api_key_id: str | None = None  # which client key made the call (an id, never the key)

    @classmethod
    def take(cls, params: dict[str, Any]) -> CallOptions:
        """Remove router options from ``params`` (in place) and validate them."""
        options = cls(user=params.get("user"))
        if options.user is not None and not isinstance(options.user, str):
            raise InvalidRequest("user must be a string", param="user")
        if _ROUTER_OPTION_NAMES.isdisjoint(params):  # the usual call: nothing else to check
            return options
        for name in _ROUTER_OPTIONS:
            if name in params:
                setattr(options, name, params.pop(name))
        if options.quality_floor is not None and not (
            isinstance(options.quality_floor, (int, float)) and 0 <= options.quality_floor <= 1
        ):
            raise InvalidRequest("quality_floor must be a number in [0, 1]", param="quality_floor")
        for name in ("max_cost_usd", "max_latency_ms"):
            value = getattr(options, name)
            if value is not None and (not isinstance(value, (int, float)) or value <= 0):
                raise InvalidRequest(f"{name} must be a positive number", param=name)
        worth = options.answer_value_usd
        if worth is not None and (
            isinstance(worth, bool) or not isinstance(worth, (int, float)) or not 0 < worth < inf
        ):
            raise InvalidRequest(
                "answer_value_usd must be a positive, finite number (USD a good answer is worth)",
                param="answer_value_usd",
            )
        if isinstance(options.tags, str):
            options.tags = [t.strip() for t in options.tags.split(",") if t.strip()]
        if not isinstance(options.tags, list) or not all(isinstance(t, str) for t in options.tags):
            raise InvalidRequest("tags must be a list of strings", param="tags")
        if options.api_key_id is not None and not isinstance(options.api_key_id, str):
            raise InvalidRequest("api_key_id must be a string", param="api_key_id")
        return options


@dataclass(slots=True)
class _Call:
    """Everything about one call in flight; built once, passed along, never re-derived."""

    request_id: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    options: CallOptions
    facts: RequestFacts
    decision: Decision
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    attempts: list[Attempt] = field(default_factory=list)
    key: str | None = None
    upstream_messages: list[dict[str, Any]] | None = None  # compressed, when compression ran
    tokens_before_compression: int | None = None
    compression_saved_usd: float = 0.0
    hold: Hold | None = None  # the budget reservation, settled when the call is recorded
    plan: list[str] | None = None  # the backends to try, in order (see Router._plan)


class Router:
    """Routes chat requests across the backends of a policy."""

    def __init__(
        self,
        policy: Policy | str | Path | None = None,
        *,
        predictor: QualityPredictor | None = None,
    ) -> None:
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy)
        self._retrier = Retrier(self.policy.fallback)
        self._backends: dict[str, BackendConfig] = {b.name: b for b in self.policy.backends}
        self._clients: dict[str, BackendClient] = {
            name: client_for(config) for name, config in self._backends.items()
        }
        self._reference = self.policy.reference_backend
        self.predictor = predictor if predictor is not None else default_predictor(self.policy)
        self._compressor = compressor(self.policy)
        # Replicas share the exact cache, breakers, latency and conversations through Redis
        # when the policy names one; otherwise they live in this process (the cache on disk).
        self.shared = open_shared_state(self.policy)
        self.conversations: ConversationMemory = (
            self.shared.conversations
            if self.shared is not None
            else ConversationMemory(max_entries=CONVERSATIONS_KEPT)
        )
        self.health: CircuitBreaker
        self.latency: LatencyTracker
        self.cache: ExactCache | None
        if self.shared is not None:
            self.health, self.latency = self.shared.health, self.shared.latency
            self.cache = self.shared.cache
        else:
            breaker = self.policy.fallback.circuit_breaker
            self.health = CircuitBreaker(breaker.failure_threshold, breaker.reset_after_s)
            self.latency = LatencyTracker()
            cache = self.policy.cache
            self.cache = (
                ExactCache(cache.path, cache.ttl_s, cache.max_size_mb) if cache.enabled else None
            )
        self.semantic = semantic_cache(self.policy, self._clients)
        self.ledger: SQLiteLedger | None = (
            open_ledger(self.policy.ledger) if self.policy.ledger.enabled else None
        )
        self.budgets = open_budgets(self.policy, self.shared)
        self._store_prompts = self.policy.ledger.store_prompts
        # Load the tokenizer now, so the first request does not pay for it.
        analyze_request([{"role": "user", "content": "warm up"}], {})

    @property
    def backends(self) -> list[str]:
        return list(self._backends)

    # --- deciding -------------------------------------------------------------------------------

    def route(self, messages: Sequence[Mapping[str, Any]], **params: Any) -> Decision:
        """Where this request would go, and why; no call is made."""
        model = params.pop("model", "auto")
        options = CallOptions.take(params)
        checked = validate_messages(messages)
        return self._decide(checked, analyze_request(checked, params), options, model)

    def _decide(
        self,
        messages: Sequence[Mapping[str, Any]],
        facts: RequestFacts,
        options: CallOptions,
        model: str | None,
    ) -> Decision:
        pinned = None
        if model not in (None, "auto", ""):
            if model not in self._backends:
                raise UnknownBackend(str(model), self.backends)
            pinned = model
        routing = self.policy.routing
        # A per-call answer_value_usd routes this call by the value rule, under which the
        # floor is a minimum only when given (RoutingConfig.value_floor).
        value = options.answer_value_usd or routing.answer_value_usd
        floor = options.quality_floor
        if floor is None:
            floor = routing.quality_floor if value is None else routing.value_floor
        limits = Limits(
            quality_floor=floor,
            expected_output_tokens=routing.expected_output_tokens,
            max_cost_usd=options.max_cost_usd,
            max_latency_ms=options.max_latency_ms,
            answer_value_usd=value,
        )
        profile = self.predictor.profile(facts.focus_text, facts.focus_ids)
        return select(
            facts,
            profile,
            self.policy.backends,
            self.predictor,
            limits,
            self.latency,
            self.health.allows,
            pinned=pinned,
            sticky=self._sticky(messages, facts) if pinned is None else None,
        )

    def _sticky(self, messages: Sequence[Mapping[str, Any]], facts: RequestFacts) -> Sticky | None:
        """The backend this conversation has been on, if the policy keeps conversations put,
        and how much of this prompt its provider likely has cached (a tool loop counts: its
        next request holds the assistant's tool call, though no new user turn)."""
        routing = self.policy.routing
        if not routing.sticky_conversations or len(messages) < 2:
            return None
        found = self.conversations.backend_for(messages)
        if found is None or found[0] not in self._backends:
            return None
        backend, cached_messages, idle_s, provider_saw = found
        seen_chars = sum(len(message_text(m)) for m in messages[:cached_messages])
        share = seen_chars / max(len(facts.text), 1)
        return Sticky(
            backend,
            int(facts.prompt_tokens * min(share, 1.0)),
            idle_s=idle_s,
            cache_warm=provider_saw and idle_s <= routing.prompt_cache_ttl_s,
            stays=routing.sticky_conversations is True,
            provider_saw=provider_saw,
        )

    # --- completing ------------------------------------------------------------------------------

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str = "auto",
        stream: bool = False,
        **params: Any,
    ) -> ChatCompletion | CompletionStream:
        """An OpenAI-shaped chat completion (or a stream of chunks), routed."""
        call = self._prepare(messages, model, stream, params)
        cached = self._cache_lookup(call)
        if cached is not None:
            if stream:
                return self._replay(call, cached)
            return self._finish(call, call.decision.backend, cached, ttft_ms=None, hit=True)
        self._compress(call)
        self._reserve(call)
        if stream:
            return self._stream(call)
        budget = CallBudget(self.policy.fallback.deadline_s)
        for backend in self._plan(call):
            response = self._call_backend(call, backend, budget)
            if response is not None:
                return self._finish(call, backend, response, ttft_ms=None)
        raise self._fail(call)

    async def acomplete(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str = "auto",
        stream: bool = False,
        **params: Any,
    ) -> ChatCompletion | AsyncCompletionStream:
        """The async twin of :meth:`complete`."""
        call = self._prepare(messages, model, stream, params)
        cached = self._cache_lookup(call)
        if cached is not None:
            if stream:
                return self._areplay(call, cached)
            return self._finish(call, call.decision.backend, cached, ttft_ms=None, hit=True)
        self._compress(call)
        backend = call.decision.backend
        try:
            if self.budgets is not None and self.budgets.local:
                self._reserve(call)  # in-process counters never wait
            else:
                await self._areserve(call)
            if stream:
                return self._astream(call)
            budget = CallBudget(self.policy.fallback.deadline_s)
            for backend in self._plan(call):
                response = await self._acall_backend(call, backend, budget)
                if response is not None:
                    return self._finish(call, backend, response, ttft_ms=None)
        except asyncio.CancelledError:  # the caller went away (e.g. a client disconnect)
            self._record_cancelled(call, backend, None)
            raise
        raise self._fail(call)

    # --- pipeline steps --------------------------------------------------------------------------

    def _prepare(
        self,
        messages: Sequence[Mapping[str, Any]],
        model: str,
        stream: bool,
        params: dict[str, Any],
    ) -> _Call:
        params = dict(params)
        options = CallOptions.take(params)
        checked = validate_messages(messages)
        facts = analyze_request(checked, params)
        decision = self._decide(checked, facts, options, model)
        return _Call(
            request_id=new_request_id(),
            messages=checked,
            params=params,
            options=options,
            facts=facts,
            decision=decision,
            stream=stream,
        )

    def _plan(self, call: _Call) -> list[str]:
        """The backends to try, in order: the choice, then fallbacks (not for a pinned call).
        Worked out once per call (the budget reservation needs it before the call does)."""
        if call.plan is None:
            fallback = self.policy.fallback
            call.plan = call.decision.plan(fallback.enabled, fallback.max_backends)
        return call.plan

    def _cache_lookup(self, call: _Call) -> dict[str, Any] | None:
        """The exact cache first; then, if the policy opts in, the guarded semantic cache,
        whose entries are shared only by calls with the same user, backend and parameters."""
        if (self.cache is None and self.semantic is None) or not call.options.cache:
            return None
        backend = self._backends[call.decision.backend]
        user = call.options.user or ""
        call.key = cache_key(user, backend.name, backend.model, call.messages, call.params)
        found = self.cache.get(call.key) if self.cache is not None else None
        if found is None and self.semantic is not None:
            namespace = cache_key(user, backend.name, backend.model, [], call.params)
            try:
                found = self.semantic.get(call.messages, namespace=namespace)
            except UpstreamError as exc:  # the embedding backend failed: a miss, not an error
                logger.warning("semantic cache lookup skipped: %s", exc.message)
        return found if isinstance(found, dict) else None

    def _compress(self, call: _Call) -> None:
        """Send fewer tokens where it is safe: after routing, so the chosen backend's window
        and price are known; never on a cache hit (the key is the uncompressed request)."""
        config = self.policy.compression
        if self._compressor is None or not call.options.compress:
            return
        if call.facts.prompt_tokens < config.min_tokens:
            return
        backend = self._backends[call.decision.backend]
        reserve = call.facts.max_tokens or self.policy.routing.expected_output_tokens
        budget = backend.resolved_context_window - reserve
        if config.budget_tokens is not None:
            budget = min(budget, config.budget_tokens)
        result = self._compressor(
            call.messages,
            ratio=config.ratio,
            budget_tokens=max(budget, 1),
            stages=config.stages,
            preserve_code=config.preserve_code,
            condenser=self._condense if "condense" in config.stages else None,
        )
        if result.tokens_after >= result.tokens_before:
            return
        call.upstream_messages = result.messages
        call.tokens_before_compression = result.tokens_before
        saved = result.tokens_before - result.tokens_after
        call.compression_saved_usd = saved * backend.resolved_price.input_per_million / 1e6

    def _condense(self, dropped: list[dict[str, Any]]) -> str:
        """Summarise trimmed turns with the cheapest backend (a call of its own, recorded
        with the tag ``condense``). It runs synchronously, also under ``acomplete``."""
        cheapest = min(self.policy.backends, key=lambda b: b.resolved_price.input_per_million)
        transcript = "\n".join(f"{m.get('role')}: {message_text(m)}" for m in dropped)
        summary = self.complete(
            [
                {
                    "role": "user",
                    "content": "Summarise this earlier part of a conversation in a few "
                    "sentences, keeping names, numbers and decisions:\n\n" + transcript,
                }
            ],
            model=cheapest.name,
            max_tokens=256,
            compress=False,
            tags=["condense"],
        )
        assert isinstance(summary, ChatCompletion)
        return summary.choices[0].message.content or ""

    def _body(self, call: _Call, backend: BackendConfig, stream: bool) -> dict[str, Any]:
        messages = call.upstream_messages if call.upstream_messages is not None else call.messages
        body = {**call.params, "model": backend.model, "messages": messages}
        if "max_completion_tokens" in body and backend.provider != "openai":
            # Only OpenAI knows the newer name; llama.cpp, vLLM and Ollama read max_tokens
            # (llama.cpp silently ignores the other and generates to the end of its context).
            limit = body.pop("max_completion_tokens")
            body.setdefault("max_tokens", limit)
        if stream:
            body["stream"] = True
            if backend.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return body

    def _call_backend(self, call: _Call, name: str, budget: CallBudget) -> dict[str, Any] | None:
        """One backend with retries; None when it failed for good (the next one is tried)."""
        config = self._backends[name]
        client = self._clients[name]
        body = self._body(call, config, stream=False)
        try:
            return self._retrier.call(
                budget,
                lambda: self._attempt(
                    call,
                    name,
                    partial(client.complete, body, budget.timeout_for(config.timeout_s)),
                ),
            )
        except UpstreamError:
            return None

    async def _acall_backend(
        self, call: _Call, name: str, budget: CallBudget
    ) -> dict[str, Any] | None:
        config = self._backends[name]
        client = self._clients[name]
        body = self._body(call, config, stream=False)

        async def attempt() -> dict[str, Any]:
            began = time.perf_counter()
            self.health.begin(name)
            try:
                response = await client.acomplete(body, budget.timeout_for(config.timeout_s))
            except UpstreamError as exc:
                self._attempt_failed(call, name, exc, began)
                raise
            self._attempt_ok(call, name, began)
            return response

        try:
            return await self._retrier.acall(budget, attempt)
        except UpstreamError:
            return None

    def _attempt(
        self, call: _Call, name: str, send: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        began = time.perf_counter()
        self.health.begin(name)
        try:
            response: dict[str, Any] = send()
        except UpstreamError as exc:
            self._attempt_failed(call, name, exc, began)
            raise
        self._attempt_ok(call, name, began)
        return response

    def _attempt_ok(self, call: _Call, name: str, began: float) -> None:
        self.health.record_success(name)
        call.attempts.append(Attempt(name, "ok", 200, (time.perf_counter() - began) * 1000))

    def _attempt_failed(self, call: _Call, name: str, exc: UpstreamError, began: float) -> None:
        self.health.record_failure(name)
        call.attempts.append(
            Attempt(
                name,
                exc.kind,
                exc.status,
                (time.perf_counter() - began) * 1000,
                detail=exc.message,
                retry_after=exc.retry_after,
            )
        )

    # --- streams ---------------------------------------------------------------------------------

    def _stream(self, call: _Call) -> CompletionStream:
        stream = CompletionStream(iter(()))
        _label(stream, call)
        stream._chunks = self._stream_chunks(call, stream)
        return stream

    def _stream_chunks(
        self, call: _Call, stream: CompletionStream
    ) -> Iterator[ChatCompletionChunk]:
        budget = CallBudget(self.policy.fallback.deadline_s)
        for name in self._plan(call):
            opened = self._open_stream(call, name, budget)
            if opened is None:
                continue
            events, first = opened
            stream.backend = name
            ttft_ms = (time.perf_counter() - call.started) * 1000
            gathered = StreamAccumulator()
            settled = False
            try:
                event: dict[str, Any] | None = first
                while event is not None:
                    gathered.add(event)
                    yield _chunk(event, name)
                    event = next(events, None)
                settled = True
            except StreamInterrupted as exc:
                settled = True
                self._stream_broke(call, name, exc, gathered)
                raise
            finally:
                if not settled:  # the caller stopped reading, or the generator was closed
                    self._record_cancelled(call, name, gathered)
            completion = self._finish(call, name, gathered.completion(), ttft_ms, gathered)
            stream._router = completion.router
            return
        raise self._fail(call)

    def _open_stream(
        self, call: _Call, name: str, budget: CallBudget
    ) -> tuple[Iterator[dict[str, Any]], dict[str, Any]] | None:
        """Start a stream and read its first chunk, with retries: until the first chunk,
        a failure is invisible to the caller and may be retried or fall back."""
        config = self._backends[name]
        client = self._clients[name]
        body = self._body(call, config, stream=True)

        def attempt() -> tuple[Iterator[dict[str, Any]], dict[str, Any]]:
            events = client.stream(body, budget.timeout_for(config.timeout_s))
            return events, self._attempt(call, name, partial(_first, events, name))

        try:
            return self._retrier.call(budget, attempt)
        except UpstreamError:
            return None

    def _astream(self, call: _Call) -> AsyncCompletionStream:
        stream = AsyncCompletionStream(_empty_async())
        _label(stream, call)
        stream._chunks = self._astream_chunks(call, stream)
        return stream

    async def _astream_chunks(
        self, call: _Call, stream: AsyncCompletionStream
    ) -> AsyncIterator[ChatCompletionChunk]:
        budget = CallBudget(self.policy.fallback.deadline_s)
        for name in self._plan(call):
            opened = await self._aopen_stream(call, name, budget)
            if opened is None:
                continue
            events, first = opened
            stream.backend = name
            ttft_ms = (time.perf_counter() - call.started) * 1000
            gathered = StreamAccumulator()
            settled = False
            try:
                event: dict[str, Any] | None = first
                while event is not None:
                    gathered.add(event)
                    yield _chunk(event, name)
                    event = await anext(events, None)
                settled = True
            except StreamInterrupted as exc:
                settled = True
                self._stream_broke(call, name, exc, gathered)
                raise
            finally:
                if not settled:  # the caller stopped reading, or the generator was closed
                    self._record_cancelled(call, name, gathered)
                    aclose = getattr(events, "aclose", None)
                    if aclose is not None:
                        await aclose()
            completion = self._finish(call, name, gathered.completion(), ttft_ms, gathered)
            stream._router = completion.router
            return
        raise self._fail(call)

    async def _aopen_stream(
        self, call: _Call, name: str, budget: CallBudget
    ) -> tuple[AsyncIterator[dict[str, Any]], dict[str, Any]] | None:
        config = self._backends[name]
        client = self._clients[name]
        body = self._body(call, config, stream=True)

        async def attempt() -> tuple[AsyncIterator[dict[str, Any]], dict[str, Any]]:
            events = client.astream(body, budget.timeout_for(config.timeout_s))
            began = time.perf_counter()
            self.health.begin(name)
            try:
                first = await anext(events, None)
                if first is None:
                    raise UpstreamError(
                        f"backend {name!r} sent an empty stream", kind="bad_response", backend=name
                    )
            except UpstreamError as exc:
                self._attempt_failed(call, name, exc, began)
                raise
            self._attempt_ok(call, name, began)
            return events, first

        try:
            return await self._retrier.acall(budget, attempt)
        except UpstreamError:
            return None

    def _replay(self, call: _Call, cached: dict[str, Any]) -> CompletionStream:
        completion = self._finish(call, call.decision.backend, cached, ttft_ms=None, hit=True)
        chunks = (ChatCompletionChunk.model_validate(c) for c in replay_chunks(cached))
        stream = CompletionStream(chunks)
        _label(stream, call)
        stream.cache = "hit"
        stream._router = completion.router
        return stream

    def _areplay(self, call: _Call, cached: dict[str, Any]) -> AsyncCompletionStream:
        completion = self._finish(call, call.decision.backend, cached, ttft_ms=None, hit=True)

        async def chunks() -> AsyncIterator[ChatCompletionChunk]:
            for chunk in replay_chunks(cached):
                yield ChatCompletionChunk.model_validate(chunk)

        stream = AsyncCompletionStream(chunks())
        _label(stream, call)
        stream.cache = "hit"
        stream._router = completion.router
        return stream

    # --- finishing: price, record, cache ---------------------------------------------------------

    def _finish(
        self,
        call: _Call,
        name: str,
        response: dict[str, Any],
        ttft_ms: float | None,
        gathered: StreamAccumulator | None = None,
        hit: bool = False,
    ) -> ChatCompletion:
        latency_ms = (time.perf_counter() - call.started) * 1000
        config = self._backends[name]
        try:
            completion = ChatCompletion.model_validate(response)
        except ValueError as exc:
            error = UpstreamError(
                f"backend {name!r} answered with an invalid completion: {exc.errors()[0]['msg']}"
                if hasattr(exc, "errors")
                else f"backend {name!r} answered with an invalid completion",
                kind="bad_response",
                backend=name,
            )
            self._record_failure(call, name, error, gathered)
            raise error from None
        text = gathered.text if gathered is not None else completion_text(response.get("choices"))
        spend = measure_spend(
            response.get("usage"),
            call.facts.prompt_tokens,
            text,
            config.resolved_price,
            self._reference.resolved_price,
        )
        if hit:
            spend = Spend(
                spend.prompt_tokens,
                spend.completion_tokens,
                0,
                spend.usage_source,
                0.0,
                spend.baseline_cost_usd,
            )
        wire = response
        if not hit and completion.usage is None:
            # The provider sent no usage: report our tiktoken count (``usage_source`` says so).
            usage = {
                "prompt_tokens": spend.prompt_tokens,
                "completion_tokens": spend.completion_tokens,
                "total_tokens": spend.prompt_tokens + spend.completion_tokens,
            }
            completion.usage = Usage.model_validate(usage)
            wire = {**response, "usage": usage}
        outcome = "ok" if name == call.decision.backend else "fallback"
        cache_state: Literal["hit", "miss", "off"] = (
            "hit" if hit else ("miss" if call.key is not None else "off")
        )
        info = RouterInfo(
            request_id=call.request_id,
            backend=name,
            provider_model=config.model,
            decision=call.decision,
            cost_usd=spend.cost_usd,
            baseline_cost_usd=spend.baseline_cost_usd,
            cache=cache_state,
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            prompt_tokens=spend.prompt_tokens,
            completion_tokens=spend.completion_tokens,
            cached_tokens=spend.cached_tokens,
            usage_source="cache" if hit else spend.usage_source,
            attempts=[a.to_dict() for a in call.attempts],
            outcome=outcome,
            tokens_before_compression=call.tokens_before_compression,
            compression_saved_usd=call.compression_saved_usd,
        )
        set_slot(completion, "_router", info)
        set_slot(completion, "_wire", wire)
        if completion.choices:  # validated above: the first choice's message is a dict
            message = response["choices"][0]["message"]
            reply = {**message, "role": message.get("role") or "assistant"}
            self.conversations.remember(call.messages, reply, name, provider_saw=not hit)
        if not hit:
            self._observe_latency(name, ttft_ms, latency_ms, spend.completion_tokens)
            if call.key is not None and name == call.decision.backend:
                self._cache_store(call, config, _cacheable(response, spend))
        self._record(call, info, error_kind=None)
        return completion

    def _cache_store(self, call: _Call, config: BackendConfig, value: dict[str, Any]) -> None:
        assert call.key is not None
        if self.cache is not None:
            self.cache.put(call.key, value)
        if self.semantic is not None:
            namespace = cache_key(
                call.options.user or "", config.name, config.model, [], call.params
            )
            try:
                self.semantic.put(call.messages, value, namespace=namespace)
            except UpstreamError as exc:
                logger.warning("semantic cache store skipped: %s", exc.message)

    def _observe_latency(
        self, name: str, ttft_ms: float | None, latency_ms: float, completion_tokens: int
    ) -> None:
        if ttft_ms is not None:
            self.latency.observe(name, ttft_ms, latency_ms, completion_tokens)
            return
        estimate = self.latency.get(name)
        generation_ms = (
            1000.0 * completion_tokens / estimate.tokens_per_s if estimate is not None else 0.0
        )
        self.latency.observe(name, max(latency_ms - generation_ms, 0.0), latency_ms, 0)

    def _fail(self, call: _Call) -> UpstreamError:
        """Every backend tried failed: record it once and say what happened."""
        last = call.attempts[-1] if call.attempts else None
        tried = ", ".join(dict.fromkeys(a.backend for a in call.attempts)) or call.decision.backend
        kind = last.outcome if last is not None else "no_attempt"
        detail = f": {last.detail}" if last is not None and last.detail else ""
        error = UpstreamError(
            f"all backends failed ({tried}); last error: {kind}"
            + (f" (HTTP {last.status})" if last is not None and last.status else "")
            + detail,
            kind=kind,
            backend=last.backend if last is not None else call.decision.backend,
            status=last.status if last is not None else None,
            retry_after=last.retry_after if last is not None else None,
        )
        self._record_failure(call, error.backend or call.decision.backend, error, None)
        return error

    def _record_failure(
        self,
        call: _Call,
        name: str,
        error: UpstreamError,
        gathered: StreamAccumulator | None,
    ) -> None:
        info = self._partial_info(call, name, gathered, outcome="error")
        self._record(call, info, error_kind=error.kind)

    def _stream_broke(
        self, call: _Call, name: str, error: StreamInterrupted, gathered: StreamAccumulator
    ) -> None:
        """A stream failed after its first chunk: the caller gets the error, never a short
        answer that looks complete; the tokens already sent are billed and recorded."""
        self.health.record_failure(name)
        call.attempts.append(Attempt(name, error.kind, None, 0.0))
        self._record_failure(call, name, error, gathered)

    def _record_cancelled(self, call: _Call, name: str, gathered: StreamAccumulator | None) -> None:
        info = self._partial_info(call, name, gathered, outcome="cancelled")
        self._record(call, info, error_kind="cancelled")

    def _partial_info(
        self, call: _Call, name: str, gathered: StreamAccumulator | None, outcome: str
    ) -> RouterInfo:
        """Metadata for a call that did not complete: tokens already streamed are billed."""
        config = self._backends[name]
        completion_tokens = 0
        cost = baseline = 0.0
        if gathered is not None and gathered.chunks:
            spend = measure_spend(
                gathered.usage,
                call.facts.prompt_tokens,
                gathered.text,
                config.resolved_price,
                self._reference.resolved_price,
            )
            completion_tokens, cost, baseline = (
                spend.completion_tokens,
                spend.cost_usd,
                spend.baseline_cost_usd,
            )
        return RouterInfo(
            request_id=call.request_id,
            backend=name,
            provider_model=config.model,
            decision=call.decision,
            cost_usd=cost,
            baseline_cost_usd=baseline,
            cache="miss" if call.key is not None else "off",
            latency_ms=(time.perf_counter() - call.started) * 1000,
            ttft_ms=None,
            prompt_tokens=call.facts.prompt_tokens,
            completion_tokens=completion_tokens,
            usage_source="tiktoken",
            attempts=[a.to_dict() for a in call.attempts],
            outcome=outcome,
        )

    def _reserve(self, call: _Call) -> None:
        """Reserve the call's worst-case cost on its budgets (settled in ``_record``); a hard
        budget that would be crossed refuses the call, and the refusal is recorded."""
        if self.budgets is None:
            return
        options = call.options
        plan = [self._backends[name] for name in self._plan(call)]
        worst = worst_case_usd(call.facts.prompt_tokens, call.params, plan)
        try:
            call.hold = self.budgets.reserve(
                worst, api_key_id=options.api_key_id, user=options.user, tags=options.tags
            )
        except (BudgetExceeded, BudgetUnavailable) as exc:
            info = self._partial_info(call, call.decision.backend, None, outcome="error")
            self._record(call, info, error_kind=exc.code)
            raise

    async def _areserve(self, call: _Call) -> None:
        """:meth:`_reserve` for ``acomplete``: with Redis counters the round trip does not
        block the event loop."""
        if self.budgets is None:
            return
        options = call.options
        plan = [self._backends[name] for name in self._plan(call)]
        worst = worst_case_usd(call.facts.prompt_tokens, call.params, plan)
        try:
            call.hold = await self.budgets.areserve(
                worst, api_key_id=options.api_key_id, user=options.user, tags=options.tags
            )
        except (BudgetExceeded, BudgetUnavailable) as exc:
            info = self._partial_info(call, call.decision.backend, None, outcome="error")
            self._record(call, info, error_kind=exc.code)
            raise

    def _record(self, call: _Call, info: RouterInfo, error_kind: str | None) -> None:
        if call.hold is not None and self.budgets is not None:
            hold, call.hold = call.hold, None
            self.budgets.settle(hold, info.cost_usd)
            info.budget_warning = hold.warning
        if self.ledger is None:
            return
        fallback_from = call.decision.backend if info.backend != call.decision.backend else None
        self.ledger.record(
            CallRecord(  # positional, in field order: 26 keywords cost ~13k instructions more
                time.time(),
                info.request_id,
                info.backend,
                info.provider_model,
                info.prompt_tokens,
                info.completion_tokens,
                info.cached_tokens,
                info.usage_source,
                info.cost_usd,
                info.baseline_cost_usd,
                info.latency_ms,
                info.ttft_ms,
                info.cache,
                call.decision.complexity,
                call.decision.reason,
                info.outcome,
                error_kind,
                fallback_from,
                max(len(call.attempts), 1 if info.cache != "hit" else 0),
                call.options.user,
                call.options.tags,
                call.stream,
                info.tokens_before_compression,
                info.compression_saved_usd,
                call.options.api_key_id,
                call.facts.text if self._store_prompts else None,
            )
        )

    # --- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush the ledger and close connections."""
        for client in self._clients.values():
            client.close()
        if self.ledger is not None:
            self.ledger.close()
        if self.cache is not None:
            self.cache.close()
        if self.budgets is not None:
            self.budgets.close()
        if self.shared is not None:
            self.shared.close()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _label(stream: CompletionStream | AsyncCompletionStream, call: _Call) -> None:
    """What a stream's consumer may know before it ends (the sidecar sends it as headers)."""
    stream.request_id = call.request_id
    stream.backend = call.decision.backend
    stream.complexity = call.decision.complexity
    stream.cache = "miss" if call.key is not None else "off"
    stream.budget_warning = call.hold.warning if call.hold is not None else None


def _first(events: Iterator[dict[str, Any]], name: str) -> dict[str, Any]:
    first = next(events, None)
    if first is None:
        raise UpstreamError(
            f"backend {name!r} sent an empty stream", kind="bad_response", backend=name
        )
    return first


async def _empty_async() -> AsyncIterator[ChatCompletionChunk]:
    for _ in ():
        yield _


def _chunk(event: dict[str, Any], name: str) -> ChatCompletionChunk:
    """A streamed event as a chunk; one that is not a chunk breaks the stream (recorded as
    such) rather than escaping as a validation error mid-response."""
    try:
        chunk = ChatCompletionChunk.model_validate(event)
    except ValueError:
        raise StreamInterrupted(
            f"backend {name!r} sent a stream event that is not a chat completion chunk",
            backend=name,
        ) from None
    set_slot(chunk, "_wire", event)
    return chunk


def _cacheable(response: dict[str, Any], spend: Spend) -> dict[str, Any]:
    """The stored answer, with the usage that was measured (so a hit can price its baseline)."""
    stored = dict(response)
    stored["usage"] = {
        "prompt_tokens": spend.prompt_tokens,
        "completion_tokens": spend.completion_tokens,
        "total_tokens": spend.prompt_tokens + spend.completion_tokens,
    }
    return stored
