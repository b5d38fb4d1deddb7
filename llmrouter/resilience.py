"""Retries on one backend (tenacity), within a deadline shared by the whole call.

429s wait what ``Retry-After`` asks; other transient failures back off
exponentially with jitter. A wait that would overrun the deadline is not
taken: the caller moves on to the next backend instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import tenacity

from .backends import RETRYABLE_KINDS
from .errors import StreamInterrupted, UpstreamError
from .policy.schema import FallbackConfig

__all__ = ["Attempt", "CallBudget", "async_retrying", "retrying"]


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
    def __init__(self, config: FallbackConfig) -> None:
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
        return float(self._backoff(retry_state))


class _StopAtDeadline(tenacity.stop.stop_base):
    def __init__(self, budget: CallBudget) -> None:
        self._budget = budget

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        upcoming = retry_state.upcoming_sleep or 0.0
        return upcoming >= self._budget.remaining()


def _kwargs(config: FallbackConfig, budget: CallBudget) -> dict[str, Any]:
    return {
        "retry": tenacity.retry_if_exception(_is_retryable),
        "stop": tenacity.stop_after_attempt(config.retries + 1) | _StopAtDeadline(budget),
        "wait": _WaitRetryAfterOrBackoff(config),
        "reraise": True,
    }


def retrying(config: FallbackConfig, budget: CallBudget) -> tenacity.Retrying:
    return tenacity.Retrying(**_kwargs(config, budget))


def async_retrying(config: FallbackConfig, budget: CallBudget) -> tenacity.AsyncRetrying:
    return tenacity.AsyncRetrying(**_kwargs(config, budget))
