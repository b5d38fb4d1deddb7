"""Spend reports: totals by backend, day, user, tag or API key, and where savings came from.

The same report runs on SQLite and PostgreSQL: only the few expressions that differ
(day of a timestamp, unnesting the tags list) are chosen by the ledger's ``dialect``.
Queries use ``?`` placeholders; the PostgreSQL ledger translates them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["GROUPS", "SpendReport", "group_rows", "spend_report", "window"]

Group = Literal["backend", "day", "user", "tag", "key", "outcome"]
GROUPS: tuple[str, ...] = ("backend", "day", "user", "tag", "key", "outcome")


class _Queryable(Protocol):
    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...


_SUMS = """
       COUNT(*) AS calls,
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
"""

_DAY = {
    "sqlite": "date(ts, 'unixepoch')",
    "postgres": "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
_TAG_SOURCE = {
    "sqlite": "calls, json_each(calls.tags) AS t",
    "postgres": "calls, jsonb_array_elements_text(calls.tags) AS t(value)",
}


def _key(group: str, dialect: str) -> str:
    if group == "day":
        return _DAY[dialect]
    if group == "user":
        return "COALESCE(\"user\", '')"
    if group == "key":
        return "COALESCE(api_key_id, '')"
    if group == "tag":
        return "t.value"
    if group in ("backend", "outcome"):
        return group
    raise ValueError(f"cannot group by {group!r}; one of: {', '.join(GROUPS)}")


def window(since: float | None, until: float | None) -> tuple[str, tuple[Any, ...]]:
    """A ``WHERE`` clause (with ``?`` placeholders) for a time window."""
    clauses, args = [], []
    if since is not None:
        clauses.append("ts >= ?")
        args.append(since)
    if until is not None:
        clauses.append("ts < ?")
        args.append(until)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", tuple(args)


def group_rows(
    ledger: _Queryable, group: str, since: float | None = None, until: float | None = None
) -> list[dict[str, Any]]:
    """Totals per backend, day, user, tag, API key id or outcome (``key`` holds the value).

    A call with several tags counts under each of them; one with none is under no tag.
    """
    dialect = getattr(ledger, "dialect", "sqlite")
    key = _key(group, dialect)
    where, args = window(since, until)
    source = _TAG_SOURCE[dialect] if group == "tag" else "calls"
    sql = f"SELECT {key} AS key, {_SUMS} FROM {source} {where} GROUP BY {key} ORDER BY {key}"
    rows = ledger.query(sql, args)
    for row in rows:
        row["saved_usd"] = row["baseline_cost_usd"] - row["cost_usd"]
    return rows


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
    group_by: str | None = None
    groups: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spend_report(
    ledger: _Queryable,
    since: float | None = None,
    until: float | None = None,
    by: str | None = None,
) -> SpendReport:
    where, args = window(since, until)
    totals = ledger.query(f"SELECT {_SUMS} FROM calls {where}", args)[0]
    saved = totals["baseline_cost_usd"] - totals["cost_usd"]
    # A cache hit saves its whole baseline; compression saves what it reports; the rest of
    # the gap between baseline and actual spend is what choosing cheaper backends saved.
    routing_saved = saved - totals["cache_saved_usd"] - totals["compression_saved_usd"]
    return SpendReport(
        calls=int(totals["calls"]),
        prompt_tokens=int(totals["prompt_tokens"]),
        completion_tokens=int(totals["completion_tokens"]),
        cost_usd=float(totals["cost_usd"]),
        baseline_cost_usd=float(totals["baseline_cost_usd"]),
        saved_usd=float(saved),
        cache_hits=int(totals["cache_hits"]),
        cache_saved_usd=float(totals["cache_saved_usd"]),
        routing_saved_usd=float(routing_saved),
        compression_saved_usd=float(totals["compression_saved_usd"]),
        errors=int(totals["errors"]),
        by_backend=_plain(group_rows(ledger, "backend", since, until)),
        by_day=_plain(group_rows(ledger, "day", since, until)),
        group_by=by,
        groups=_plain(group_rows(ledger, by, since, until)) if by is not None else [],
    )


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PostgreSQL returns Decimal for integer sums; reports carry plain ints and floats."""
    out = []
    for row in rows:
        item: dict[str, Any] = {}
        for name, value in row.items():
            if name == "key":
                item[name] = value
            elif name in ("calls", "prompt_tokens", "completion_tokens", "cache_hits", "errors"):
                item[name] = int(value)
            else:
                item[name] = float(value)
        out.append(item)
    return out
