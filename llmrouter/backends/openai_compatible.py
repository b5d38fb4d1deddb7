"""OpenAI-compatible endpoints (OpenAI, Ollama, vLLM, llama.cpp) over pooled httpx clients.

The async side (the sidecar's hot path) hands each ``httpx.Request`` straight to a pooled
transport: the client layer's URL merging, cookie jar, auth and redirect handling cost
about a quarter of the sidecar's CPU per request and do nothing for these calls.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from .. import __version__
from ..errors import StreamInterrupted, UpstreamError
from ..policy.schema import BackendConfig
from .base import error_for_status, parse_retry_after
from .codec import dumps, loads
from .http11 import LeanAsyncTransport, upstream_transport
from .sse import DONE, aiter_sse_lines, iter_sse_lines, parse_data_line

__all__ = ["OpenAICompatibleClient"]


_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30)
_USER_AGENT = f"llmrouter/{__version__}"


class OpenAICompatibleClient:
    """Calls ``{base_url}/chat/completions``; one sync and one async pool, made once."""

    def __init__(self, config: BackendConfig) -> None:
        self.name = config.name
        endpoint = config.endpoint
        if endpoint is None:
            raise ValueError(f"backend {config.name!r} has no base_url")
        self._url = endpoint + "/chat/completions"
        self._embeddings_url = endpoint + "/embeddings"
        self._headers = {"content-type": "application/json", "accept": "application/json"}
        self._key_env = config.api_key_env
        self._sync: httpx.Client | None = None
        self._transport: httpx.AsyncBaseTransport | None = None
        self._async_url = httpx.URL(self._url)
        self._request_headers: httpx.Headers | None = None

    # The key is read from the environment per client, never stored in config or logs.
    def _auth_headers(self) -> dict[str, str]:
        headers = dict(self._headers)
        if self._key_env:
            key = os.environ.get(self._key_env)
            if key:
                headers["authorization"] = f"Bearer {key}"
        return headers

    @property
    def sync_client(self) -> httpx.Client:
        if self._sync is None:
            self._sync = httpx.Client(headers=self._auth_headers(), limits=_LIMITS)
        return self._sync

    @property
    def async_transport(self) -> httpx.AsyncBaseTransport:
        if self._transport is None:
            self._transport = upstream_transport(_LIMITS, self._url)
            self._request_headers = httpx.Headers(
                {**self._auth_headers(), "user-agent": _USER_AGENT}
            )
        return self._transport

    def _request(self, body: dict[str, Any], timeout: float) -> httpx.Request:
        transport = self.async_transport
        assert self._request_headers is not None and transport is not None
        extensions = {
            "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        }
        if isinstance(transport, LeanAsyncTransport):
            # The body as a stream: httpx then skips adding Host and Content-Length (12 µs of
            # header rewriting per request), which the lean transport writes itself.
            return httpx.Request(
                "POST",
                self._async_url,
                headers=self._request_headers,
                stream=httpx.ByteStream(dumps(body)),
                extensions=extensions,
            )
        return httpx.Request(
            "POST",
            self._async_url,
            headers=self._request_headers,
            content=dumps(body),
            extensions=extensions,
        )

    # --- plain calls -------------------------------------------------------------------------

    def complete(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            response = self.sync_client.post(self._url, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return self._decode(response.status_code, response.headers, response.content)

    async def acomplete(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        request = self._request(body, timeout)
        try:
            response = await self.async_transport.handle_async_request(request)
            try:
                content = await _read(response)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return self._decode(response.status_code, response.headers, content)

    def embed(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        try:
            response = self.sync_client.post(self._embeddings_url, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return self._decode(response.status_code, response.headers, response.content)

    # --- streams -------------------------------------------------------------------------------

    def stream(self, body: dict[str, Any], timeout: float) -> Iterator[dict[str, Any]]:
        """Chunks as dicts. The request is sent on the first ``next()``."""
        reader = _EventReader(self.name)
        try:
            with self.sync_client.stream("POST", self._url, json=body, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._decode(resp.status_code, resp.headers, resp.content)
                for line in iter_sse_lines(resp):
                    event = reader.read(line)
                    if event is not None:
                        yield event
                    elif reader.done:
                        break
                reader.check_complete()
        except httpx.HTTPError as exc:
            raise self._stream_error(exc, reader.started) from None

    async def astream(self, body: dict[str, Any], timeout: float) -> AsyncIterator[dict[str, Any]]:
        reader = _EventReader(self.name)
        request = self._request(body, timeout)
        try:
            resp = await self.async_transport.handle_async_request(request)
            try:
                if resp.status_code >= 400:
                    await resp.aread()
                    self._decode(resp.status_code, resp.headers, resp.content)
                async for line in aiter_sse_lines(resp):
                    event = reader.read(line)
                    if event is not None:
                        yield event
                    elif reader.done:
                        break
                reader.check_complete()
            finally:
                await resp.aclose()
        except httpx.HTTPError as exc:
            raise self._stream_error(exc, reader.started) from None

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    # --- helpers ---------------------------------------------------------------------------------

    def _decode(self, status: int, headers: httpx.Headers, content: bytes) -> dict[str, Any]:
        if status >= 400:
            raise error_for_status(
                self.name,
                status,
                _error_detail(content),
                parse_retry_after(headers.get("retry-after")),
            )
        try:
            data = loads(content)
        except ValueError:
            raise UpstreamError(
                f"backend {self.name!r} answered with malformed JSON",
                kind="bad_response",
                backend=self.name,
                status=status,
            ) from None
        if not isinstance(data, dict):
            raise UpstreamError(
                f"backend {self.name!r} answered with a JSON {type(data).__name__}, not an object",
                kind="bad_response",
                backend=self.name,
                status=status,
            )
        return data

    def _transport_error(self, exc: httpx.HTTPError) -> UpstreamError:
        kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
        return UpstreamError(
            f"backend {self.name!r}: {kind} ({type(exc).__name__})", kind=kind, backend=self.name
        )

    def _stream_error(self, exc: httpx.HTTPError, started: bool) -> UpstreamError:
        if started:
            return StreamInterrupted(
                f"backend {self.name!r} stream broke after it started ({type(exc).__name__})",
                backend=self.name,
            )
        return self._transport_error(exc)


class _EventReader:
    """An SSE stream's lines as chunk dicts; tracks whether the stream started (a failure
    after that is an interruption, never retried) and whether it finished properly."""

    __slots__ = ("done", "finished", "name", "started")

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = False
        self.finished = False
        self.done = False  # ``data: [DONE]`` arrived

    def read(self, line: str) -> dict[str, Any] | None:
        """A chunk, or None for lines that carry none (comments, blanks, ``[DONE]``)."""
        try:
            event = parse_data_line(line)
        except ValueError:
            raise StreamInterrupted(
                f"backend {self.name!r} sent a malformed stream event", backend=self.name
            ) from None
        if event is DONE:
            self.finished = self.done = True
            return None
        if not isinstance(event, dict):
            return None
        if "error" in event and "choices" not in event:
            detail = event["error"]
            message = detail.get("message") if isinstance(detail, dict) else detail
            raise StreamInterrupted(
                f"backend {self.name!r} reported an error mid-stream: {message}",
                backend=self.name,
            )
        self.started = True
        self.finished = self.finished or _has_finish_reason(event)
        return event

    def check_complete(self) -> None:
        if not self.finished:
            raise StreamInterrupted(
                f"backend {self.name!r} closed the stream before it finished", backend=self.name
            )


async def _read(response: httpx.Response) -> bytes:
    """The body. One that arrived whole and uncompressed is taken as it is: httpx's decoder
    chain would cost ~15 µs per call to return the same bytes."""
    stream = response.stream
    if isinstance(stream, httpx.ByteStream) and "content-encoding" not in response.headers:
        return b"".join(stream)
    return await response.aread()


def _has_finish_reason(event: dict[str, Any]) -> bool:
    choices = event.get("choices")
    if not isinstance(choices, list):
        return False
    return any(isinstance(c, dict) and c.get("finish_reason") for c in choices)


def _error_detail(content: bytes) -> str:
    try:
        data = json.loads(content)
    except ValueError:
        return content[:200].decode("utf-8", "replace")
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if isinstance(error, str):
            return error
    return str(data)[:200]
