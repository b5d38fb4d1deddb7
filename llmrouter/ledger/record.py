"""One ledger row: everything recorded about a call, never its prompt unless opted in."""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["COLUMNS", "CallRecord", "new_request_id"]


@dataclass(slots=True)
class CallRecord:
    ts: float
    request_id: str
    backend: str
    provider_model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    usage_source: str
    cost_usd: float
    baseline_cost_usd: float
    latency_ms: float
    ttft_ms: float | None
    cache: str
    complexity: float | None
    decision_reason: str
    outcome: str
    error_kind: str | None = None
    fallback_from: str | None = None
    attempts: int = 1
    user: str | None = None
    tags: list[str] = field(default_factory=list)
    stream: bool = False
    tokens_before_compression: int | None = None
    compression_saved_usd: float = 0.0
    api_key_id: str | None = None
    prompt: str | None = None

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CallRecord))


def new_request_id() -> str:
    """``req_`` + 32 hex digits: the time in ms, then 80 random bits (UUIDv7's layout).
    Unique across replicas, and time-ordered, so the ledgers' unique index on it grows at
    its end (random ids cost SQLite ~2x per row). A private generator, seeded from the OS
    and again after fork (so ``random.seed()`` in the host app cannot repeat ids);
    ``os.urandom`` per request would release the GIL."""
    return f"req_{time.time_ns() // 1_000_000:012x}{_ids.getrandbits(80):020x}"


_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)
