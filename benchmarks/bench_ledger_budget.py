"""The cost of spend accounting on the sidecar: single-core throughput with and without the
ledger and budget checks (target: within 10%).

Rig: the same as benchmarks/proxy_overhead (nginx serving a canned completion, wrk with a
unique prompt per request, both on core 1; ``llmrouter serve`` pinned to core 0), with the
exact cache off in every configuration so only the ledger and budgets differ:

- ``bare``: ledger disabled, no budgets.
- ``sqlite``: SQLite ledger (batched writer thread) + three budgets (global hard, per-key
  hard, per-user soft) on in-process counters: the embedded default.
- ``shared``: PostgreSQL ledger (batches written as one JSON array by a writer thread) +
  the same budgets on Redis counters with leases (the default: calls spend from in-memory
  pools that one Lua call every 50 ms refills, off the request path; see docs/spend.md),
  plus Redis-shared breakers and latency. Needs LLMROUTER_TEST_PG_URL /
  LLMROUTER_TEST_REDIS_URL (``source .ci/services.sh``); the PostgreSQL and Redis servers
  are pinned to core 1 too.

Prints requests/s and p50/p99 latency at concurrency 32 (the median of ``--rounds`` runs,
interleaved across configurations), the sidecar's CPU time per request (median, and each
round's), and each configuration's throughput relative to ``bare``. The CPU figure is the
fairer one on a shared machine: requests/s moves with whatever else runs on the cores.
When ``perf`` is installed (and allowed: ``kernel.perf_event_paranoid`` ≤ 2), it also
prints the sidecar's instructions per request (user + kernel, all threads), which do not
move with the machine's load at all: the steadiest figure for comparing two versions.

    python benchmarks/bench_ledger_budget.py [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "proxy_overhead"))

from run import KEY, PROXY_CORE, free_port, start_nginx, stop, wait_http, wrk  # noqa: E402

BUDGETS = """
budgets:
  - {name: global, limit_usd: 1000000, period: month}
  - {name: per-key, scope: key, limit_usd: 1000000, period: day}
  - {name: per-user, scope: user, limit_usd: 1000000, period: day, mode: soft}
"""


def policy(workdir: Path, upstream: str, mode: str) -> Path:
    ledger = {
        "bare": "ledger: {enabled: false}",
        "sqlite": f'ledger: {{url: "sqlite:///{workdir}/ledger.db"}}',
        "shared": f'ledger: {{url: "{os.environ.get("LLMROUTER_TEST_PG_URL")}"}}',
    }[mode]
    shared = (
        f'shared_state: {{redis_url: "{os.environ.get("LLMROUTER_TEST_REDIS_URL")}", '
        f"key_prefix: bench{uuid.uuid4().hex[:8]}}}"
        if mode == "shared"
        else ""
    )
    text = f"""
backends:
  - name: cheap
    base_url: {upstream}/v1
    model: bench-model
    price: {{input_per_million: 0.15, output_per_million: 0.60}}
    context_window: 128000
    max_output_tokens: 4096
    quality: 0.6
  - name: strong
    base_url: {upstream}/v1
    model: bench-model
    price: {{input_per_million: 2.50, output_per_million: 10.00}}
    context_window: 128000
    max_output_tokens: 4096
    quality: 0.9
routing: {{quality_floor: 0.5, reference: strong, predictor: heuristic}}
cache: {{enabled: false}}
{ledger}
{shared}
server: {{api_keys_env: [LLMROUTER_BENCH_KEY]}}
{BUDGETS if mode != "bare" else ""}
"""
    path = workdir / f"{mode}.yaml"
    path.write_text(text)
    return path


def pin_services_to_load_core() -> None:
    """Keep PostgreSQL and Redis off the sidecar's core, like nginx and wrk."""
    for name in ("postgres", "redis-server"):
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
        for pid in found.stdout.split():
            subprocess.run(["taskset", "-a", "-p", "-c", "1", pid], capture_output=True)


def start_sidecar(workdir: Path, upstream: str, mode: str) -> tuple[subprocess.Popen[bytes], str]:
    path = policy(workdir, upstream, mode)
    port = free_port()
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            PROXY_CORE,
            sys.executable,
            "-m",
            "llmrouter",
            "serve",
            "--policy",
            str(path),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, "LLMROUTER_BENCH_KEY": KEY},
        cwd=workdir,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health", 60, process)
    wrk(base, 8, 2)  # warm up
    return process, base


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (the ledger writer included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_perf(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """Count the sidecar's instructions (all threads) until stopped; None without perf."""
    if shutil.which("perf") is None:
        return None
    return subprocess.Popen(
        ["perf", "stat", "-x,", "-e", "instructions:u,instructions:k", "-p", str(pid)],
        stderr=out.open("w"),
        stdout=subprocess.DEVNULL,
    )


def stop_perf(counter: subprocess.Popen[bytes] | None, out: Path) -> float | None:
    """Instructions counted, or None when perf was absent or could not count."""
    if counter is None:
        return None
    counter.send_signal(signal.SIGINT)
    counter.wait(timeout=10)
    total = 0.0
    for line in out.read_text().splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].replace(".", "").isdigit():
            total += float(fields[0])
    return total or None


def measure(workdir: Path, upstream: str, modes: list[str], args: argparse.Namespace) -> list[Any]:
    """All sidecars run at once (idle ones cost nothing); rounds interleave the modes, so a
    burst of background load on the machine hits every mode alike. Besides requests/s, the
    sidecar's CPU time per request is measured: it is what bounds one core's throughput, and
    it does not depend on what else the machine is running."""
    started = [start_sidecar(workdir, upstream, mode) for mode in modes]
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    try:
        for _ in range(args.rounds):
            for mode, (process, base) in zip(modes, started, strict=True):
                counts = workdir / "perf.txt"
                counter = start_perf(process.pid, counts)
                before = cpu_seconds(process.pid)
                result = wrk(base, 32, args.seconds)
                result["cpu_us"] = (cpu_seconds(process.pid) - before) / result["requests"] * 1e6
                instructions = stop_perf(counter, counts)
                result["kinstr"] = instructions / result["requests"] / 1e3 if instructions else None
                runs[mode].append(result)
    finally:
        for process, _ in started:
            stop(process)
    results = []
    for mode in modes:
        ordered = sorted(runs[mode], key=lambda r: r["rps"])
        middle = ordered[len(ordered) // 2]
        cpu = sorted(r["cpu_us"] for r in runs[mode])
        kinstr = sorted(r["kinstr"] for r in runs[mode] if r["kinstr"] is not None)
        results.append(
            {
                "mode": mode,
                "rps": middle["rps"],
                "all_rps": [round(r["rps"]) for r in runs[mode]],
                "p50_ms": middle["p50_us"] / 1000,
                "p99_ms": middle["p99_us"] / 1000,
                "cpu_us": cpu[len(cpu) // 2],
                "all_cpu_us": [round(r["cpu_us"]) for r in runs[mode]],
                "kinstr": kinstr[len(kinstr) // 2] if kinstr else None,
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    modes = ["bare", "sqlite"]
    if os.environ.get("LLMROUTER_TEST_PG_URL") and os.environ.get("LLMROUTER_TEST_REDIS_URL"):
        modes.append("shared")
        pin_services_to_load_core()
    else:
        print("(no LLMROUTER_TEST_PG_URL/REDIS_URL: skipping the PostgreSQL+Redis mode)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        upstream_port = free_port()
        nginx = start_nginx(workdir / "nginx", upstream_port)
        try:
            upstream = f"http://127.0.0.1:{upstream_port}"
            results = measure(workdir, upstream, modes, args)
        finally:
            stop(nginx)
    bare = results[0]
    print(f"\nsidecar on one core, concurrency 32, {args.seconds:.0f} s x {args.rounds} rounds")
    print(
        f"{'mode':<8} {'req/s':>8} {'vs bare':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU µs/req':>11} {'vs bare':>8}   runs (req/s; CPU µs/req)"
    )
    for result in results:
        print(
            f"{result['mode']:<8} {result['rps']:>8.0f} {result['rps'] / bare['rps']:>8.1%} "
            f"{result['p50_ms']:>8.2f} {result['p99_ms']:>8.2f} {result['cpu_us']:>11.0f} "
            f"{bare['cpu_us'] / result['cpu_us']:>8.1%}   {result['all_rps']}; "
            f"{result['all_cpu_us']}"
        )
    print(
        "(CPU 'vs bare' is bare's CPU per request over this one's: the throughput ratio a "
        "dedicated core would see)"
    )
    if all(r["kinstr"] for r in results):
        print("\ninstructions per request (median; user + kernel, all sidecar threads):")
        for result in results:
            extra = result["kinstr"] - bare["kinstr"]
            print(
                f"{result['mode']:<8} {result['kinstr']:>8.0f}k  "
                f"{'' if result is bare else f'+{extra:.0f}k over bare'}"
            )


if __name__ == "__main__":
    main()
