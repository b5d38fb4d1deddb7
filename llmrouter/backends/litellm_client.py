"""Providers that are not OpenAI-compatible, through litellm (imported on first use)."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from ..errors import StreamInterrupted, UpstreamError
from ..policy.schema import BackendConfig
from .base import error_for_status, parse_retry_after

__all__ = ["LiteLLMClient", "import_litellm"]

_import_lock = threading.Lock()


def import_litellm() -> ModuleType:
    """Import litellm with its network price-map fetch disabled (we read prices as data)."""
    with _import_lock:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        return litellm


class LiteLLMClient:
    def __init__(self, config: BackendConfig) -> None:
        self.name = config.name
        self._model = config.litellm_model
        self._key_env = config.api_key_env
        self._base_url = config.base_url

    def _kwargs(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        kwargs = {k: v for k, v in body.items() if k != "model"}
        kwargs["model"] = self._model
        kwargs["timeout"] = timeout
        kwargs["num_retries"] = 0  # retries are the router's job, with its deadline
        if self._key_env:
            key = os.environ.get(self._key_env)
            if key:
                kwargs["api_key"] = key
        if self._base_url:
            kwargs["api_base"] = self._base_url
        return kwargs

    def complete(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        litellm = import_litellm()
        try:
            response = litellm.completion(**self._kwargs(body, timeout))
        except Exception as exc:  # litellm raises many types; each is mapped, none swallowed
            raise self._map(exc) from None
        return _as_dict(response)

    async def acomplete(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        litellm = import_litellm()
        try:
            response = await litellm.acompletion(**self._kwargs(body, timeout))
        except Exception as exc:
            raise self._map(exc) from None
        return _as_dict(response)

    def stream(self, body: dict[str, Any], timeout: float) -> Iterator[dict[str, Any]]:
        litellm = import_litellm()
        started = False
        try:
            for chunk in litellm.completion(**self._kwargs(body, timeout)):
                started = True
                yield _as_dict(chunk)
        except Exception as exc:
            raise self._map(exc, started) from None

    async def astream(self, body: dict[str, Any], timeout: float) -> AsyncIterator[dict[str, Any]]:
        litellm = import_litellm()
        started = False
        try:
            response = await litellm.acompletion(**self._kwargs(body, timeout))
            async for chunk in response:
                started = True
                yield _as_dict(chunk)
        except Exception as exc:
            raise self._map(exc, started) from None

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def _map(self, exc: Exception, started: bool = False) -> UpstreamError:
        if isinstance(exc, UpstreamError):
            return exc
        if started:
            return StreamInterrupted(
                f"backend {self.name!r} stream broke after it started ({type(exc).__name__})",
                backend=self.name,
            )
        status = getattr(exc, "status_code", None)
        name = type(exc).__name__
        if "Timeout" in name:
            return UpstreamError(
                f"backend {self.name!r}: timeout", kind="timeout", backend=self.name
            )
        if "APIConnectionError" in name and not isinstance(status, int):
            return UpstreamError(
                f"backend {self.name!r}: connection error", kind="connection", backend=self.name
            )
        if isinstance(status, int):
            headers = getattr(getattr(exc, "response", None), "headers", None) or {}
            return error_for_status(
                self.name, status, name, parse_retry_after(headers.get("retry-after"))
            )
        return UpstreamError(
            f"backend {self.name!r}: {name}", kind="client_error", backend=self.name
        )


def _as_dict(response: Any) -> dict[str, Any]:
    if isinstance(response, dict):
        return response
    dump = getattr(response, "model_dump", None)
    if callable(dump):
        result = dump(exclude_none=False)
        if isinstance(result, dict):
            return result
    raise UpstreamError("litellm returned an unexpected response type", kind="bad_response")
