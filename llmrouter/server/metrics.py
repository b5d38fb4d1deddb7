"""Prometheus metrics kept in plain dicts: a few increments per request, rendered on scrape.

Per process: with ``--workers N`` each worker reports its own counters (the
ledger remains the exact, shared record of spend).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

from ..responses import RouterInfo

__all__ = ["Metrics"]

# Request latency buckets, in seconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(_BUCKETS, seconds)] += 1
        self.total += seconds


class Metrics:
    def __init__(self) -> None:
        self.http: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.calls: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.cost: defaultdict[str, float] = defaultdict(float)
        self.baseline: defaultdict[str, float] = defaultdict(float)
        self.cache_hits: defaultdict[str, int] = defaultdict(int)
        self.fallbacks: defaultdict[str, int] = defaultdict(int)
        self.latency: defaultdict[str, _Histogram] = defaultdict(_Histogram)

    def response(self, endpoint: str, status: int) -> None:
        self.http[(endpoint, status)] += 1

    def call(self, info: RouterInfo) -> None:
        backend = info.backend
        self.calls[(backend, info.outcome)] += 1
        self.tokens[(backend, "prompt")] += info.prompt_tokens
        self.tokens[(backend, "completion")] += info.completion_tokens
        self.cost[backend] += info.cost_usd
        self.baseline[backend] += info.baseline_cost_usd
        if info.cache == "hit":
            self.cache_hits[backend] += 1
        if info.outcome == "fallback":
            self.fallbacks[backend] += 1
        self.latency[backend].observe(info.latency_ms / 1000.0)

    def render(self) -> bytes:
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family(
            "llmrouter_http_responses_total", "counter", "HTTP responses by endpoint and status."
        )
        for (endpoint, status), n in sorted(self.http.items()):
            out.append(
                f'llmrouter_http_responses_total{{endpoint="{endpoint}",status="{status}"}} {n}'
            )
        family("llmrouter_requests_total", "counter", "Model calls by backend and outcome.")
        for (backend, outcome), n in sorted(self.calls.items()):
            out.append(f'llmrouter_requests_total{{backend="{backend}",outcome="{outcome}"}} {n}')
        family("llmrouter_tokens_total", "counter", "Tokens by backend and kind.")
        for (backend, kind), n in sorted(self.tokens.items()):
            out.append(f'llmrouter_tokens_total{{backend="{backend}",kind="{kind}"}} {n}')
        family("llmrouter_cost_usd_total", "counter", "Spend in USD by backend.")
        for backend, usd in sorted(self.cost.items()):
            out.append(f'llmrouter_cost_usd_total{{backend="{backend}"}} {usd:.10f}')
        family(
            "llmrouter_baseline_cost_usd_total",
            "counter",
            "What the same calls would have cost at the reference backend.",
        )
        for backend, usd in sorted(self.baseline.items()):
            out.append(f'llmrouter_baseline_cost_usd_total{{backend="{backend}"}} {usd:.10f}')
        family("llmrouter_cache_hits_total", "counter", "Calls answered from the cache.")
        for backend, n in sorted(self.cache_hits.items()):
            out.append(f'llmrouter_cache_hits_total{{backend="{backend}"}} {n}')
        family("llmrouter_fallbacks_total", "counter", "Calls answered by a fallback backend.")
        for backend, n in sorted(self.fallbacks.items()):
            out.append(f'llmrouter_fallbacks_total{{backend="{backend}"}} {n}')
        family("llmrouter_request_latency_seconds", "histogram", "Call latency by backend.")
        for backend, histogram in sorted(self.latency.items()):
            running = 0
            for bound, count in zip((*_BUCKETS, None), histogram.counts, strict=True):
                running += count
                le = "+Inf" if bound is None else repr(bound)
                out.append(
                    f'llmrouter_request_latency_seconds_bucket{{backend="{backend}",le="{le}"}} '
                    f"{running}"
                )
            out.append(
                f'llmrouter_request_latency_seconds_sum{{backend="{backend}"}} {histogram.total}'
            )
            out.append(f'llmrouter_request_latency_seconds_count{{backend="{backend}"}} {running}')
        return ("\n".join(out) + "\n").encode()
