"""Endpoints the Router has no method for (``/embeddings``, legacy ``/completions``):
forwarded straight to an OpenAI-compatible backend, priced and recorded in the ledger.

One pooled httpx client for all backends, made at start; keys are read from the
environment once, never logged.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import orjson

from ..backends import error_for_status, parse_retry_after
from ..backends.codec import loads
from ..backends.http11 import async_client
from ..backends.sse import aiter_sse_lines
from ..errors import InvalidRequest, NoBackendAvailable, UnknownBackend, UpstreamError
from ..ledger import CallRecord, new_request_id
from ..policy import BackendConfig
from ..router import Router
from ..tokens import count_text_tokens
from .replies import Reply, StreamReply
from .wire import KNOB_HEADERS, header_knob, json_bytes, parse_json_object

__all__ = ["DirectUpstream"]

_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30)


class DirectUpstream:
    def __init__(self, router: Router) -> None:
        self.router = router
        self._client: httpx.AsyncClient | None = None
        self._headers: dict[str, dict[str, str]] = {}
        for backend in router.policy.backends:
            headers = {"content-type": "application/json"}
            key = os.environ.get(backend.api_key_env) if backend.api_key_env else None
            if key:
                headers["authorization"] = f"Bearer {key}"
            self._headers[backend.name] = headers
        self.embedders = sorted(
            (b for b in router.policy.backends if b.embeddings and b.openai_compatible),
            key=lambda b: (b.resolved_price.input_per_million, -b.quality),
        )

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = async_client(_LIMITS)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    # --- /embeddings ---------------------------------------------------------------------------

    async def embeddings(self, raw: bytes, headers: Mapping[str, str]) -> Reply:
        body = parse_json_object(raw)
        text = _input_text(body.get("input"), "input")
        backend = self._embedder(body.get("model"))
        body["model"] = backend.model
        started = time.perf_counter()
        response = await self._post(backend, "/embeddings", body)
        usage = response.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        prompt_tokens = usage.get("prompt_tokens")
        source = "provider"
        if not isinstance(prompt_tokens, int):
            prompt_tokens, source = count_text_tokens(text), "tiktoken"
        request_id = self._record(
            backend, headers, body, prompt_tokens, 0, source, started, reason="embeddings"
        )
        cost = backend.resolved_price.cost(prompt_tokens, 0)
        return Reply(200, json_bytes(response), _headers(backend.name, cost, request_id))

    def _embedder(self, model: Any) -> BackendConfig:
        if model in (None, "", "auto"):
            if not self.embedders:
                raise NoBackendAvailable(
                    "no backend serves embeddings: mark one with 'embeddings: true' in the policy"
                )
            return self.embedders[0]
        if not isinstance(model, str):
            raise InvalidRequest("'model' must be a string", param="model")
        for backend in self.embedders:
            if backend.name == model:
                return backend
        raise UnknownBackend(model, [b.name for b in self.embedders])

    # --- legacy /completions -------------------------------------------------------------------

    async def completions(self, raw: bytes, headers: Mapping[str, str]) -> Reply | StreamReply:
        """Routed like chat (the prompt scored as one user message), sent to ``/completions``."""
        body = parse_json_object(raw)
        text = _input_text(body.get("prompt"), "prompt")
        model = body.pop("model", None) or "auto"
        if not isinstance(model, str):
            raise InvalidRequest("'model' must be a string", param="model")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise InvalidRequest("'stream' must be a boolean", param="stream")
        route_params = _knobs(body, headers)
        max_tokens = body.get("max_tokens")
        if max_tokens is not None:
            route_params["max_tokens"] = max_tokens
        decision = self.router.route(
            [{"role": "user", "content": text}], model=model, **route_params
        )
        # Chat's plan (Router._plan: fallback.enabled, max_backends), of the backends that
        # serve /completions: a fallback there counts against max_backends, one that cannot
        # serve it does not.
        policy = self.router.policy
        plan = decision.plan(
            policy.fallback.enabled,
            policy.fallback.max_backends,
            lambda name: (b := policy.backend(name)) is not None and b.openai_compatible,
        )
        backends = [b for b in map(policy.backend, plan) if b is not None]
        if not backends:
            raise NoBackendAvailable(
                f"legacy /completions needs an OpenAI-compatible backend; {decision.backend!r} "
                "is not one (use /chat/completions)"
            )
        started = time.perf_counter()
        last: UpstreamError | None = None
        for backend in backends:
            forward = {**body, "model": backend.model}
            try:
                if stream:
                    return await self._open_stream(backend, forward, headers, text, started)
                response = await self._post(backend, "/completions", forward)
            except UpstreamError as exc:
                last = exc
                continue
            prompt, completion, source = _usage(response, text)
            request_id = self._record(backend, headers, body, prompt, completion, source, started)
            cost = backend.resolved_price.cost(prompt, completion)
            reply_headers = _headers(backend.name, cost, request_id)
            reply_headers.append(("x-llmrouter-complexity", f"{decision.complexity:.4f}"))
            return Reply(200, json_bytes(response), reply_headers)
        assert last is not None
        raise last

    async def _open_stream(
        self,
        backend: BackendConfig,
        body: dict[str, Any],
        headers: Mapping[str, str],
        text: str,
        started: float,
    ) -> StreamReply:
        request = self.client.build_request(
            "POST",
            backend.endpoint + "/completions",  # type: ignore[operator]
            content=orjson.dumps(body),
            headers=self._headers[backend.name],
            timeout=backend.timeout_s,
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(backend.name, exc) from None
        if response.status_code >= 400:
            content = await response.aread()
            await response.aclose()
            raise error_for_status(
                backend.name,
                response.status_code,
                content[:300].decode("utf-8", "replace"),
                parse_retry_after(response.headers.get("retry-after")),
            )
        request_id = new_request_id()
        return StreamReply(
            [("x-llmrouter-backend", backend.name), ("x-llmrouter-request-id", request_id)],
            self._relay(backend, response, headers, body, text, started, request_id),
        )

    async def _relay(
        self,
        backend: BackendConfig,
        response: httpx.Response,
        headers: Mapping[str, str],
        body: dict[str, Any],
        text: str,
        started: float,
        request_id: str,
    ) -> AsyncIterator[bytes]:
        """Upstream SSE lines passed through as they are; text and usage gathered to price it."""
        pieces: list[str] = []
        usage: dict[str, Any] | None = None
        finished = False
        outcome = "cancelled"
        try:
            async for line in aiter_sse_lines(response):
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    finished = True
                    yield b"data: [DONE]\n\n"
                    break
                try:
                    event = loads(payload)
                except ValueError:
                    break
                if isinstance(event, dict):
                    if isinstance(event.get("usage"), dict):
                        usage = event["usage"]
                    for choice in event.get("choices") or ():
                        if isinstance(choice, dict) and isinstance(choice.get("text"), str):
                            pieces.append(choice["text"])
                yield b"data: " + payload.encode() + b"\n\n"
            if not finished:
                outcome = "error"
                error = {
                    "message": f"backend {backend.name!r} stream ended before it finished",
                    "type": "upstream_error",
                    "param": None,
                    "code": "stream_interrupted",
                }
                yield b"data: " + json_bytes({"error": error}) + b"\n\n"
            else:
                outcome = "ok"
        except httpx.HTTPError:
            outcome = "error"
            error = {
                "message": f"backend {backend.name!r} stream broke after it started",
                "type": "upstream_error",
                "param": None,
                "code": "stream_interrupted",
            }
            yield b"data: " + json_bytes({"error": error}) + b"\n\n"
        finally:
            await response.aclose()
            prompt, completion, source = _usage(
                {"usage": usage, "choices": [{"text": "".join(pieces)}]}, text
            )
            self._record(
                backend,
                headers,
                body,
                prompt,
                completion,
                source,
                started,
                outcome=outcome,
                request_id=request_id,
                stream=True,
            )

    # --- shared --------------------------------------------------------------------------------

    async def _post(
        self, backend: BackendConfig, path: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            response = await self.client.post(
                backend.endpoint + path,  # type: ignore[operator]
                content=orjson.dumps(body),
                headers=self._headers[backend.name],
                timeout=backend.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise _transport_error(backend.name, exc) from None
        if response.status_code >= 400:
            raise error_for_status(
                backend.name,
                response.status_code,
                response.content[:300].decode("utf-8", "replace"),
                parse_retry_after(response.headers.get("retry-after")),
            )
        try:
            data = loads(response.content)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamError(
                f"backend {backend.name!r} answered with malformed JSON",
                kind="bad_response",
                backend=backend.name,
            )
        return data

    def _record(
        self,
        backend: BackendConfig,
        headers: Mapping[str, str],
        body: Mapping[str, Any],
        prompt_tokens: int,
        completion_tokens: int,
        source: str,
        started: float,
        *,
        reason: str = "legacy /completions",
        outcome: str = "ok",
        request_id: str | None = None,
        stream: bool = False,
    ) -> str:
        request_id = request_id or new_request_id()
        ledger = self.router.ledger
        if ledger is None:
            return request_id
        reference = self.router.policy.reference_backend.resolved_price
        user = (
            body.get("user")
            if isinstance(body.get("user"), str)
            else headers.get("x-llmrouter-user")
        )
        tags = headers.get("x-llmrouter-tags", "")
        ledger.record(
            CallRecord(
                ts=time.time(),
                request_id=request_id,
                backend=backend.name,
                provider_model=backend.model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cached_tokens=0,
                usage_source=source,
                cost_usd=backend.resolved_price.cost(prompt_tokens, completion_tokens),
                baseline_cost_usd=reference.cost(prompt_tokens, completion_tokens),
                latency_ms=(time.perf_counter() - started) * 1000,
                ttft_ms=None,
                cache="off",
                complexity=None,
                decision_reason=reason,
                outcome=outcome,
                error_kind=None if outcome == "ok" else outcome,
                user=user if isinstance(user, str) else None,
                tags=[t.strip() for t in tags.split(",") if t.strip()],
                stream=stream,
            )
        )
        return request_id


def _input_text(value: Any, param: str) -> str:
    """The text of an ``input``/``prompt``: a string, strings, or token arrays (not scored)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return "\n".join(value)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return ""
        if all(
            isinstance(v, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in v)
            for v in value
        ):
            return ""
    raise InvalidRequest(
        f"'{param}' must be a string, a non-empty list of strings, or token arrays", param=param
    )


def _knobs(body: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """Router options for a direct call: body fields first, then ``x-llmrouter-*`` headers."""
    knobs: dict[str, Any] = {}
    for header, option in KNOB_HEADERS.items():
        if option in body:
            # `user` is an OpenAI field: it stays in the body; the router's own knobs do not.
            knobs[option] = body[option] if option == "user" else body.pop(option)
        elif header in headers:
            knobs[option] = header_knob(header, option, headers[header])
    knobs.pop("cache", None)  # direct calls are not cached
    return knobs


def _usage(response: Mapping[str, Any], text: str) -> tuple[int, int, str]:
    usage = response.get("usage")
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return prompt, completion, "provider"
    generated = "".join(
        c.get("text") or "" for c in response.get("choices") or () if isinstance(c, dict)
    )
    return count_text_tokens(text) + 7, count_text_tokens(generated), "tiktoken"


def _headers(backend: str, cost: float, request_id: str) -> list[tuple[str, str]]:
    return [
        ("x-llmrouter-backend", backend),
        ("x-llmrouter-cost-usd", f"{cost:.10f}"),
        ("x-llmrouter-cache", "off"),
        ("x-llmrouter-request-id", request_id),
    ]


def _transport_error(name: str, exc: httpx.HTTPError) -> UpstreamError:
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
    return UpstreamError(
        f"backend {name!r}: {kind} ({type(exc).__name__})", kind=kind, backend=name
    )
