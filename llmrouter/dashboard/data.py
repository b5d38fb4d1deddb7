"""The figures the dashboard shows, computed from the ledger (any replica's view is the same
when the ledger is PostgreSQL): spend over time, by backend, savings by source, cache hit
rate, latency percentiles, route distribution and budget burn-down."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

from ..ledger.report import group_rows, spend_report, window
from ..policy.schema import BudgetConfig

__all__ = ["dashboard_data", "percentile", "period_start"]


class _Ledger(Protocol):
    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(math.ceil(q / 100 * len(sorted_values)), 1)
    return float(sorted_values[rank - 1])


def period_start(period: str, now: float) -> float | None:
    """Start (Unix time, UTC) of the budget period containing ``now``; None for 'total'."""
    moment = datetime.fromtimestamp(now, tz=timezone.utc)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    elif period == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        return None
    return start.timestamp()


def _latency(ledger: _Ledger, since: float | None, until: float | None) -> dict[str, Any]:
    where, args = window(since, until)
    condition = "cache <> 'hit' AND outcome IN ('ok', 'fallback')"
    where = f"{where} AND {condition}" if where else f"WHERE {condition}"
    rows = ledger.query(f"SELECT backend, latency_ms FROM calls {where}", args)
    by_backend: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        by_backend[row["backend"]].append(float(row["latency_ms"]))
    everything = sorted(v for values in by_backend.values() for v in values)

    def summary(values: list[float]) -> dict[str, Any]:
        values.sort()
        return {
            "calls": len(values),
            "p50": percentile(values, 50),
            "p90": percentile(values, 90),
            "p99": percentile(values, 99),
        }

    return {
        "overall": summary(everything),
        "by_backend": [{"backend": k, **summary(v)} for k, v in sorted(by_backend.items())],
    }


def _applies(config: BudgetConfig, row: dict[str, Any]) -> list[str]:
    """The scope values of one ledger row this budget counts it under."""
    if config.scope == "global":
        return ["*"]
    if config.scope == "user":
        values = [row["user"]] if row["user"] else []
    elif config.scope == "key":
        values = [row["api_key_id"]] if row["api_key_id"] else []
    else:
        tags = row["tags"]
        values = json.loads(tags) if isinstance(tags, str) else list(tags or [])
    return [v for v in dict.fromkeys(values) if config.match is None or v == config.match]


def _budgets(ledger: _Ledger, configs: Sequence[BudgetConfig], now: float) -> list[dict[str, Any]]:
    """Each budget's current period: spent so far and the day-by-day burn-down (from the
    ledger, so it is the settled spend; in-flight reservations are not shown)."""
    if not configs:
        return []
    starts = [period_start(c.period, now) for c in configs]
    earliest = None if any(s is None for s in starts) else min(s for s in starts if s is not None)
    where, args = window(earliest, None)
    rows = ledger.query(f'SELECT ts, cost_usd, "user", api_key_id, tags FROM calls {where}', args)
    out = []
    for config, start in zip(configs, starts, strict=True):
        per_value: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for row in rows:
            if start is not None and row["ts"] < start:
                continue
            day = datetime.fromtimestamp(row["ts"], tz=timezone.utc).strftime("%Y-%m-%d")
            for value in _applies(config, row):
                per_value[value][day] += float(row["cost_usd"])
        scopes: list[dict[str, Any]] = []
        for value, days in per_value.items():
            running, burn = 0.0, []
            for day in sorted(days):
                running += days[day]
                burn.append(
                    {"day": day, "spent_usd": running, "remaining_usd": config.limit_usd - running}
                )
            scopes.append(
                {
                    "value": value,
                    "spent_usd": running,
                    "remaining_usd": config.limit_usd - running,
                    "used": running / config.limit_usd,
                    "burn": burn,
                }
            )
        scopes.sort(key=lambda s: -s["spent_usd"])
        out.append(
            {
                "label": config.label,
                "scope": config.scope,
                "match": config.match,
                "period": config.period,
                "mode": config.mode,
                "limit_usd": config.limit_usd,
                "period_start": start,
                "scopes": scopes[:10],
            }
        )
    return out


def dashboard_data(
    ledger: _Ledger,
    budgets: Sequence[BudgetConfig] = (),
    since: float | None = None,
    until: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Everything the page draws, as plain JSON-able data."""
    import time

    report = spend_report(ledger, since, until)
    hit_rate = report.cache_hits / report.calls if report.calls else 0.0
    routes = group_rows(ledger, "backend", since, until)
    total_routed = sum(r["calls"] for r in routes)
    return {
        "window": {"since": since, "until": until},
        "totals": {
            "calls": report.calls,
            "cost_usd": report.cost_usd,
            "baseline_cost_usd": report.baseline_cost_usd,
            "saved_usd": report.saved_usd,
            "cache_hits": report.cache_hits,
            "cache_hit_rate": hit_rate,
            "errors": report.errors,
            "prompt_tokens": report.prompt_tokens,
            "completion_tokens": report.completion_tokens,
        },
        "savings": {
            "routing": report.routing_saved_usd,
            "cache": report.cache_saved_usd,
            "compression": report.compression_saved_usd,
        },
        "spend_over_time": [
            {
                "day": r["key"],
                "cost_usd": r["cost_usd"],
                "baseline_cost_usd": r["baseline_cost_usd"],
                "calls": r["calls"],
            }
            for r in report.by_day
        ],
        "by_backend": [
            {"backend": r["key"], "cost_usd": r["cost_usd"], "calls": r["calls"]}
            for r in report.by_backend
        ],
        "routes": [
            {
                "backend": r["key"],
                "calls": int(r["calls"]),
                "share": int(r["calls"]) / total_routed if total_routed else 0.0,
            }
            for r in routes
        ],
        "latency": _latency(ledger, since, until),
        "budgets": _budgets(ledger, budgets, time.time() if now is None else now),
    }
