"""Scale soak: two ``llmrouter serve`` replicas sharing a PostgreSQL ledger and Redis state.

1. ``--requests`` (10,000) chat requests at ``--concurrency`` (64), round-robin over both
   replicas, under a shared hard budget that stops part of them. Checks: ledger rows equal
   requests exactly (successes plus recorded refusals), no duplicate request ids, the
   summed ledger cost equals the sum of the per-call costs the clients were told, and the
   budget is never exceeded.
2. ``kill -9`` of one replica under load (``ledger.sync`` off, then on): the other keeps
   serving (the client retries a refused connection on it), the killed one restarts and
   serves again; the ledger has no duplicated or corrupt rows. Reports how many answered
   requests lost their row with the batched writer (queued rows die with the process) and
   with ``sync: true`` (should be none).

Upstream: nginx serving a canned completion (benchmarks/proxy_overhead). Needs
LLMROUTER_TEST_PG_URL and LLMROUTER_TEST_REDIS_URL (``source .ci/services.sh``).

    python benchmarks/soak_replicas.py [--requests 10000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "proxy_overhead"))
sys.path.insert(0, str(HERE.parent / "tests"))

import psycopg  # noqa: E402
from replicas import Load, Replica, free_port, write_policy  # noqa: E402
from run import start_nginx, stop  # noqa: E402
from services import fresh_database, fresh_redis  # noqa: E402


def rows(pg_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(pg_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT * FROM calls ORDER BY id")
        names = [d.name for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def corrupt(row: dict[str, Any]) -> bool:
    return not (
        row["backend"] in ("small", "large")
        and row["outcome"] in ("ok", "fallback", "error", "cancelled")
        and row["cost_usd"] is not None
        and row["cost_usd"] >= 0
        and row["prompt_tokens"] > 0
        and row["request_id"].startswith("req_")
    )


def phase_load(workdir: Path, upstream: str, args: argparse.Namespace) -> None:
    limit = args.budget_usd
    with fresh_database() as pg_url, fresh_redis() as (redis_url, prefix):
        policy = write_policy(
            workdir / "load.yaml",
            upstream,
            pg_url,
            redis_url,
            prefix,
            budgets=[{"name": "team", "limit_usd": limit, "period": "day"}],
        )
        replicas = [Replica(policy, free_port(), workdir / f"load{i}.log") for i in range(2)]
        for replica in replicas:
            replica.start()
        load = Load([r.url for r in replicas], args.requests, args.concurrency)
        try:
            elapsed = asyncio.run(load.run())
        finally:
            for replica in replicas:
                replica.stop()
        ledger = rows(pg_url)
    statuses: dict[int, int] = {}
    for result in load.results:
        statuses[result.status] = statuses.get(result.status, 0) + 1
    answered = [r for r in load.results if r.status == 200]
    told = sum(r.cost_usd or 0.0 for r in answered)
    total = sum(r["cost_usd"] for r in ledger)
    ids = {r["request_id"] for r in ledger}
    refusals = sum(1 for r in ledger if r["error_kind"] == "budget_exceeded")
    by_id = {r["request_id"]: r["cost_usd"] for r in ledger}
    mismatched = sum(1 for r in answered if abs(by_id.get(r.request_id, -1) - r.cost_usd) > 1e-12)
    print(f"== {args.requests} requests, concurrency {args.concurrency}, two replicas")
    print(f"   {elapsed:.1f} s, {args.requests / elapsed:.0f} req/s (load generator included)")
    print(f"   statuses: {dict(sorted(statuses.items()))}")
    print(f"   ledger rows: {len(ledger)} (unique ids {len(ids)}); requests {args.requests}")
    print(
        f"   rows ok/fallback: {sum(1 for r in ledger if r['outcome'] in ('ok', 'fallback'))},"
        f" budget refusals: {refusals}"
    )
    print(
        f"   summed ledger cost ${total:.6f}; sum of per-call costs told ${told:.6f};"
        f" rows whose cost differs from what the client was told: {mismatched}"
    )
    print(
        f"   hard budget ${limit:.6f}: {'held' if total <= limit else 'EXCEEDED'}"
        f" (headroom ${limit - total:.6f})"
    )
    ok = (
        len(ledger) == args.requests == len(ids)
        and statuses.get(200, 0) + statuses.get(429, 0) == args.requests
        and refusals == statuses.get(429, 0)
        and abs(total - told) < 1e-9
        and mismatched == 0
        and total <= limit
    )
    print(f"   => {'PASS' if ok else 'FAIL'}")


def phase_kill(workdir: Path, upstream: str, args: argparse.Namespace, sync: bool) -> None:
    with fresh_database() as pg_url, fresh_redis() as (redis_url, prefix):
        policy = write_policy(
            workdir / f"kill-{sync}.yaml", upstream, pg_url, redis_url, prefix, sync=sync
        )
        victim, survivor = (
            Replica(policy, free_port(), workdir / f"kill{sync}{i}.log") for i in range(2)
        )
        victim.start()
        survivor.start()
        total = args.kill_requests
        load = Load([victim.url, survivor.url], total, args.concurrency, retry_elsewhere=True)

        async def run_and_kill() -> float:
            task = asyncio.create_task(load.run())
            while len(load.results) < total // 4:
                await asyncio.sleep(0.002)
            victim.kill()
            killed_at = len(load.results)
            await task
            return killed_at

        try:
            killed_at = asyncio.run(run_and_kill())
            began = time.perf_counter()
            victim.start()
            restart_s = time.perf_counter() - began
            again = Load([victim.url], 500, 16)
            asyncio.run(again.run())
        finally:
            victim.stop()
            survivor.stop()
        ledger = rows(pg_url)
    ids = [r["request_id"] for r in ledger]
    answered = {r.request_id for r in load.results + again.results if r.status == 200}
    lost = answered - set(ids)
    failed = [r for r in load.results if r.status != 200]
    print(f"== kill -9 of one replica under load (ledger.sync={str(sync).lower()})")
    kinds = sorted({f"{r.status} {r.error or ''}".strip() for r in failed})
    print(
        f"   killed after {killed_at:.0f} of {total} results; client-visible failures: "
        f"{len(failed)} {kinds} (a failed connection is retried once on the other replica)"
    )
    print(
        f"   after the kill: {sum(1 for r in load.results[int(killed_at) :] if r.status == 200)}"
        " answered (by the survivor)"
    )
    print(
        f"   restarted replica ready in {restart_s:.2f} s; then answered "
        f"{sum(1 for r in again.results if r.status == 200)}/500"
    )
    print(
        f"   ledger rows {len(ledger)}, duplicates {len(ids) - len(set(ids))}, "
        f"corrupt {sum(1 for r in ledger if corrupt(r))}"
    )
    print(
        f"   answered requests without a row: {len(lost)}"
        + (" (rows still queued in the killed process)" if lost and not sync else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--budget-usd", type=float, default=0.2)
    parser.add_argument("--kill-requests", type=int, default=4000)
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()
        nginx = start_nginx(workdir / "nginx", port)
        upstream = f"http://127.0.0.1:{port}/v1"
        try:
            if not args.skip_load:
                phase_load(workdir, upstream, args)
            if not args.skip_kill:
                phase_kill(workdir, upstream, args, sync=False)
                phase_kill(workdir, upstream, args, sync=True)
        finally:
            stop(nginx)


if __name__ == "__main__":
    main()
