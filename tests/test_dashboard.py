"""The dashboard in a real browser: headless Chromium loads the page against a ledger with
known rows, runs its script, and the rendered DOM must show the seeded figures and charts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from canned_upstream import ThreadedServer

from llmrouter.dashboard import DashboardApp, dashboard_data
from llmrouter.ledger import CallRecord, SQLiteLedger
from llmrouter.policy.schema import BudgetConfig

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86_400.0


def row(i: int, day: int, backend: str, cost: float, baseline: float, **kw: Any) -> CallRecord:
    fields: dict[str, Any] = {
        "ts": T0 + day * DAY + 3600 + i,
        "request_id": f"req_{i}",
        "backend": backend,
        "provider_model": backend,
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cached_tokens": 0,
        "usage_source": "provider",
        "cost_usd": cost,
        "baseline_cost_usd": baseline,
        "latency_ms": 100.0,
        "ttft_ms": None,
        "cache": "miss",
        "complexity": 0.2,
        "decision_reason": "seeded",
        "outcome": "ok",
    }
    fields.update(kw)
    return CallRecord(**fields)


SEED = [
    row(1, 0, "small", 0.001, 0.010, latency_ms=100.0, compression_saved_usd=0.001),
    row(2, 0, "large", 0.005, 0.005, latency_ms=300.0),
    row(3, 0, "small", 0.0, 0.010, latency_ms=1.0, cache="hit"),
    row(4, 1, "small", 0.002, 0.010, latency_ms=200.0, user="alice"),
    row(5, 1, "large", 0.0, 0.0, latency_ms=50.0, outcome="error", error_kind="timeout"),
]
BUDGETS = [
    BudgetConfig(name="team", limit_usd=0.01, period="total"),
    BudgetConfig(name="per-user", scope="user", limit_usd=0.001, period="total", mode="soft"),
]
WINDOW = f"?since={T0:.0f}&until={T0 + 3 * DAY:.0f}"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteLedger]:
    seeded = SQLiteLedger(tmp_path_factory.mktemp("dash") / "ledger.db")
    for record in SEED:
        seeded.record(record)
    seeded.flush()
    yield seeded
    seeded.close()


def test_data_endpoint_figures(ledger: SQLiteLedger) -> None:
    data = dashboard_data(ledger, BUDGETS, T0, T0 + 3 * DAY)
    totals = data["totals"]
    assert totals["calls"] == 5 and totals["errors"] == 1 and totals["cache_hits"] == 1
    assert totals["cost_usd"] == pytest.approx(0.008)
    assert totals["cache_hit_rate"] == pytest.approx(0.2)
    assert data["savings"] == pytest.approx({"routing": 0.016, "cache": 0.01, "compression": 0.001})
    assert [d["day"] for d in data["spend_over_time"]] == ["2026-01-01", "2026-01-02"]
    # Latency of answered, uncached calls: 100, 200, 300 ms (nearest rank).
    assert data["latency"]["overall"] == {"calls": 3, "p50": 200.0, "p90": 300.0, "p99": 300.0}
    team = data["budgets"][0]
    assert team["scopes"][0]["spent_usd"] == pytest.approx(0.008)
    assert [b["remaining_usd"] for b in team["scopes"][0]["burn"]] == pytest.approx([0.004, 0.002])
    assert data["budgets"][1]["scopes"][0]["value"] == "alice"


# --- in Chromium ---------------------------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it", pytrace=False)
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


class DOM(HTMLParser):
    """Every element's attributes, and the text of elements with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: dict[str, str] = {}
        self._open: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag not in ("meta", "link", "br", "img", "input", "hr"):
            self._open.append((tag, attributes.get("id")))
            if attributes.get("id"):
                self.text.setdefault(attributes["id"], "")

    def handle_endtag(self, tag: str) -> None:
        if all(name != tag for name, _ in self._open):
            return
        while self._open:
            name, _ = self._open.pop()
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self._open:
            if ident:
                self.text[ident] += data

    def find(self, tag: str, class_: str | None = None, **attrs: str) -> list[dict[str, str]]:
        """Elements of a tag having a class (among their classes) and attribute values."""
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        found = []
        for name, attributes in self.elements:
            if name != tag:
                continue
            if class_ is not None and class_ not in attributes.get("class", "").split():
                continue
            if all(attributes.get(k) == v for k, v in wanted.items()):
                found.append(attributes)
        return found


def render(url: str, tmp_path: Path) -> DOM:
    result = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = DOM()
    dom.feed(result.stdout)
    return dom


@pytest.fixture(scope="module")
def server(ledger: SQLiteLedger) -> Iterator[ThreadedServer]:
    running = ThreadedServer(DashboardApp(ledger, BUDGETS)).start()
    yield running
    running.stop()


def test_page_renders_the_seeded_figures_in_chromium(
    server: ThreadedServer, tmp_path: Path
) -> None:
    dom = render(f"{server.url}/dashboard/{WINDOW}", tmp_path)
    body = dom.find("body")[0]
    assert body.get("data-state") == "ready", dom.text.get("status")
    text = dom.text
    assert text["total-cost"] == "$0.008000"
    assert text["total-baseline"] == "$0.035000"
    assert text["total-saved"] == "$0.027000"
    assert text["total-calls"] == "5"
    assert text["total-errors"] == "1"
    assert text["cache-hit-rate"] == "20.0%"
    assert (text["latency-p50"], text["latency-p90"], text["latency-p99"]) == (
        "200.0",
        "300.0",
        "300.0",
    )
    assert text["window"] == "2026-01-01 → 2026-01-04"

    # Spend over time: one bar per day, heights from the seeded costs.
    spend = {r["data-label"]: float(r["data-value"]) for r in dom.find("rect", class_="spend")}
    assert spend == pytest.approx({"2026-01-01": 0.006, "2026-01-02": 0.002})
    baseline = {
        r["data-label"]: float(r["data-value"]) for r in dom.find("rect", class_="baseline")
    }
    assert baseline == pytest.approx({"2026-01-01": 0.025, "2026-01-02": 0.010})
    assert "$0.006000" in text["chart-spend-time"] and "$0.002000" in text["chart-spend-time"]
    tallest = max(dom.find("rect", class_="spend"), key=lambda r: float(r["height"]))
    assert tallest["data-label"] == "2026-01-01"

    # By backend, savings by source, routes, cache, latency: values and their labels.
    by_backend = text["chart-by-backend"]
    assert "small" in by_backend and "$0.003000" in by_backend and "$0.005000" in by_backend
    savings = text["chart-savings"]
    for label, value in (
        ("routing", "$0.016000"),
        ("cache", "$0.010000"),
        ("compression", "$0.001000"),
    ):
        assert label in savings and value in savings
    routes = text["chart-routes"]
    assert "60.0% (3)" in routes and "40.0% (2)" in routes
    assert "1 hits" in text["chart-cache"] and "of 5 calls" in text["chart-cache"]
    arc = dom.find("circle", class_="hit-arc")[0]
    assert float(arc["data-value"]) == pytest.approx(0.2)
    bars = {
        r["data-label"]: float(r["data-value"])
        for r in dom.find("rect", class_="bar")
        if r.get("data-label", "").endswith(("p50", "p90", "p99"))
    }
    assert bars == {
        "large p50": 300.0,
        "large p90": 300.0,
        "large p99": 300.0,
        "small p50": 100.0,
        "small p90": 200.0,
        "small p99": 200.0,
    }
    assert "small p90200.0 ms" in text["chart-latency"]

    # Budget burn-down: the team budget's figures and the remaining line.
    budgets = text["budgets"]
    assert "all calls: spent $0.008000 of $0.010000 (80.0%), $0.002000 left" in budgets
    assert "alice: spent $0.002000 of $0.001000 (200.0%), -$0.001000 left" in budgets
    lines = dom.find("polyline", class_="line")
    assert [float(v) for v in lines[0]["data-values"].split(",")] == pytest.approx([0.004, 0.002])


def test_data_needs_the_key_and_the_page_sends_it_from_the_fragment(
    ledger: SQLiteLedger, tmp_path: Path
) -> None:
    def check(authorization: str | None, api_key: str | None) -> None:
        if authorization != "Bearer s3cret":
            raise PermissionError("invalid API key")

    guarded = ThreadedServer(DashboardApp(ledger, BUDGETS, check=check)).start()
    try:
        with pytest.raises(urllib.request.HTTPError) as refused:
            urllib.request.urlopen(f"{guarded.url}/dashboard/data.json")
        assert refused.value.code == 401
        page = urllib.request.urlopen(f"{guarded.url}/dashboard/").read().decode()
        assert '<script src="app.js">' in page and "http" not in page.split("<body>")[1]
        denied = render(f"{guarded.url}/dashboard/{WINDOW}", tmp_path / "a")
        assert denied.find("body")[0].get("data-state") == "error"
        allowed = render(f"{guarded.url}/dashboard/{WINDOW}#key=s3cret", tmp_path / "b")
        assert allowed.text["total-cost"] == "$0.008000"
    finally:
        guarded.stop()


def test_assets_are_local_and_data_is_json(server: ThreadedServer) -> None:
    page = urllib.request.urlopen(f"{server.url}/dashboard/").read().decode()
    assert "cdn" not in page.lower() and "https://" not in page
    script = urllib.request.urlopen(f"{server.url}/dashboard/app.js").read().decode()
    assert "import " not in script and "https://" not in script
    data = json.loads(urllib.request.urlopen(f"{server.url}/dashboard/data.json{WINDOW}").read())
    assert data["totals"]["calls"] == 5
