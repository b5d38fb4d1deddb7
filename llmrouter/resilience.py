"""Retries on one backend (tenacity), within a deadline shared by the whole call.

429s wait what ``Retry-After`` asks; other transient failures back off
exponentially with jitter. A wait that would overrun the deadline is not
taken: the caller moves on to the next backend instead. The first attempt runs
without tenacity's machinery (about a tenth of the sidecar's CPU per request);
tenacity takes over only once an attempt has failed.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import tenacity

from .backends import RETRYABLE_KINDS
from .errors import StreamInterrupted, UpstreamError
from .policy.schema import FallbackConfig

__all__ = ["Attempt", "CallBudget", "Retrier"]

T = TypeVar("T")


@dataclass(slots=True)
class Attempt:
    backend: str
    outcome: str  # "ok" or the error kind
    status: int | None = None
    elapsed_ms: float = 0.0
    detail: str | None = None  # the error's message: for the final error, not for the ledger
    retry_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "outcome": self.outcome,
            "status": self.status,
            "elapsed_ms": round(self.elapsed_ms, 2),
        }


@dataclass(slots=True)
class CallBudget:
    """The deadline of one call, across its retries and fallbacks."""

    deadline_s: float
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.deadline_s - (time.monotonic() - self.started)

    def timeout_for(self, backend_timeout_s: float) -> float:
        return max(min(backend_timeout_s, self.remaining()), 0.001)


def _is_retryable(exc: BaseException) -> bool:
    return (
        isinstance(exc, UpstreamError)
        and not isinstance(exc, StreamInterrupted)
        and exc.kind in RETRYABLE_KINDS
    )


class _WaitRetryAfterOrBackoff(tenacity.wait.wait_base):
    """``Retry-After`` when the upstream sent one, else exponential backoff with jitter.
    ``offset`` counts attempts made before tenacity took over."""

    def __init__(self, config: FallbackConfig, offset: int = 0) -> None:
        self._offset = offset
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=config.backoff_initial_s,
            max=config.backoff_max_s,
            jitter=config.backoff_initial_s,
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, UpstreamError) and exc.retry_after is not None:
            return exc.retry_after
        if self._offset:
            retry_state = copy.copy(retry_state)
            retry_state.attempt_number += self._offset
        return float(self._backoff(retry_state))


class _StopAtDeadline(tenacity.stop.stop_base):
    def __init__(self, budget: CallBudget) -> None:
        self._budget = budget

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep or 0.0
        return upcoming >= self._budget.remaining()


class Retrier:
    """Runs an attempt on one backend until it succeeds, fails for good, runs out of
    attempts (``fallback.retries`` + 1) or would overrun the call's deadline."""

    def __init__(self, config: FallbackConfig) -> None:
        self._config = config
        self._retry = tenacity.retry_if_exception(_is_retryable)
        self._first_wait = _WaitRetryAfterOrBackoff(config)
        self._later_waits = _WaitRetryAfterOrBackoff(config, offset=1)

    def call(self, budget: CallBudget, attempt: Callable[[], T]) -> T:
        try:
            return attempt()
        except UpstreamError as exc:
            delay = self._delay_after_first(exc, budget)
        time.sleep(delay)
        for retry in tenacity.Retrying(**self._rest(budget)):
            with retry:
                return attempt()
        raise AssertionError("tenacity ended without an outcome")  # reraise=True prevents it

    async def acall(self, budget: CallBudget, attempt: Callable[[], Awaitable[T]]) -> T:
        try:
            return await attempt()
        except UpstreamError as exc:
            delay = self._delay_after_first(exc, budget)
        await asyncio.sleep(delay)
        async for retry in tenacity.AsyncRetrying(**self._rest(budget)):
            with retry:
                return await attempt()
        raise AssertionError("tenacity ended without an outcome")  # reraise=True prevents it

    def _delay_after_first(self, exc: UpstreamError, budget: CallBudget) -> float:
        """The wait before the second attempt, or ``exc`` re-raised when there is none."""
        if self._config.retries < 1 or not _is_retryable(exc):
            raise exc
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.set_exception((type(exc), exc, exc.__traceback__))
        delay = self._first_wait(state)
        if delay >= budget.remaining():
            raise exc
        return delay

    def _rest(self, budget: CallBudget) -> dict[str, Any]:
        return {
            "retry": self._retry,
            "stop": tenacity.stop_after_attempt(self._config.retries) | _StopAtDeadline(budget),
            "wait": self._later_waits,
            "reraise": True,
        }
