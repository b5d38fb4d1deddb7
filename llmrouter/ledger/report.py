"""Spend reports: totals by backend and by day, and what routing and caching saved."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = ["SpendReport", "spend_report"]


class _Queryable(Protocol):
    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...


_TOTALS = """
SELECT COUNT(*) AS calls,
       COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(SUM(completion_tokens), 0) AS completion_tokens,
       COALESCE(SUM(cost_usd), 0) AS cost_usd,
       COALESCE(SUM(baseline_cost_usd), 0) AS baseline_cost_usd,
       COALESCE(SUM(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END), 0) AS cache_hits,
       COALESCE(SUM(CASE WHEN cache = 'hit' THEN baseline_cost_usd ELSE 0 END), 0)
           AS cache_saved_usd,
       COALESCE(SUM(compression_saved_usd), 0) AS compression_saved_usd,
       COALESCE(SUM(CASE WHEN outcome NOT IN ('ok', 'fallback') THEN 1 ELSE 0 END), 0)
           AS errors
FROM calls {where}
"""

_GROUPED = """
SELECT {key} AS key,
       COUNT(*) AS calls,
       COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,
       COALESCE(SUM(completion_tokens), 0) AS completion_tokens,
       COALESCE(SUM(cost_usd), 0) AS cost_usd,
       COALESCE(SUM(baseline_cost_usd), 0) AS baseline_cost_usd,
       COALESCE(SUM(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END), 0) AS cache_hits
FROM calls {where}
GROUP BY {key} ORDER BY {key}
"""

_GROUP_KEYS = {
    "backend": "backend",
    "day": "date(ts, 'unixepoch')",
    "user": "COALESCE(user, '')",
    "outcome": "outcome",
}


@dataclass
class SpendReport:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    baseline_cost_usd: float
    saved_usd: float
    cache_hits: int
    cache_saved_usd: float
    routing_saved_usd: float
    compression_saved_usd: float
    errors: int
    by_backend: list[dict[str, Any]] = field(default_factory=list)
    by_day: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spend_report(
    ledger: _Queryable, since: float | None = None, until: float | None = None
) -> SpendReport:
    clauses, args = [], []
    if since is not None:
        clauses.append("ts >= ?")
        args.append(since)
    if until is not None:
        clauses.append("ts < ?")
        args.append(until)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    params = tuple(args)
    totals = ledger.query(_TOTALS.format(where=where), params)[0]
    saved = totals["baseline_cost_usd"] - totals["cost_usd"]
    # A cache hit saves its whole baseline; compression saves what it reports; the rest of
    # the gap between baseline and actual spend is what choosing cheaper backends saved.
    routing_saved = saved - totals["cache_saved_usd"] - totals["compression_saved_usd"]
    return SpendReport(
        calls=totals["calls"],
        prompt_tokens=totals["prompt_tokens"],
        completion_tokens=totals["completion_tokens"],
        cost_usd=totals["cost_usd"],
        baseline_cost_usd=totals["baseline_cost_usd"],
        saved_usd=saved,
        cache_hits=totals["cache_hits"],
        cache_saved_usd=totals["cache_saved_usd"],
        routing_saved_usd=routing_saved,
        compression_saved_usd=totals["compression_saved_usd"],
        errors=totals["errors"],
        by_backend=ledger.query(_GROUPED.format(key=_GROUP_KEYS["backend"], where=where), params),
        by_day=ledger.query(_GROUPED.format(key=_GROUP_KEYS["day"], where=where), params),
    )
