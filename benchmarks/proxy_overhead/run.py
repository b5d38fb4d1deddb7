"""Proxy overhead: llmrouter's sidecar vs LiteLLM's proxy, in front of the same canned upstream.

Rig (public tools only): nginx serves a canned chat completion (and a canned SSE
stream) on loopback; wrk is the load generator; each proxy is pinned to core 0
with taskset, nginx and wrk to core 1. Every wrk request carries a unique prompt,
so llmrouter routes it, looks it up in the exact cache (a miss), forwards it,
prices it and writes its ledger row: routing, cache lookup and ledger all on.

Prints, per proxy: requests/s and latency at concurrency 1 and 32, the latency it
adds over calling nginx directly, streaming time-to-first-byte added (curl's
time_starttransfer; the sidecar sends its headers with the first chunk), chunk
pass-through and usage, RSS, time to ready, memory growth over a soak, and the
ratio to LiteLLM. Run by hand (root, Debian): ``python benchmarks/proxy_overhead/run.py``.
Needs ``apt-get install -y nginx wrk``; LiteLLM's proxy is installed into its own
virtualenv on first use (``--litellm-venv``) so it does not disturb this one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROXY_CORE, LOAD_CORE = "0", "1"
KEY = "sk-bench-0123456789abcdef0123456789abcdef"  # both proxies check it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> float:
    """Seconds until ``url`` answers 200 (polled every 10 ms)."""
    import urllib.request

    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} was ready")
        try:
            request = urllib.request.Request(url, headers={"authorization": f"Bearer {KEY}"})
            with urllib.request.urlopen(request, timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def wrk(url: str, connections: int, seconds: float, **env: str) -> dict[str, Any]:
    command = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "-s",
        str(HERE / "chat.lua"),
        "--latency",
        url,
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **env}, check=True
    )
    for line in result.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return dict(json.loads(line[len("WRK_JSON ") :]))
    raise RuntimeError(f"wrk printed no summary:\n{result.stdout}\n{result.stderr}")


def ttfb_ms(url: str, body: dict[str, Any], samples: int) -> float:
    """Median time to first response byte, in ms, measured by curl itself (a fresh prompt
    each time, so nothing is served from the cache)."""
    values = []
    for sample in range(samples):
        payload = json.dumps(fresh(body, sample))
        result = subprocess.run(
            [
                "taskset",
                "-c",
                LOAD_CORE,
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{time_starttransfer}",
                "-H",
                "content-type: application/json",
                "-H",
                f"authorization: Bearer {KEY}",
                "-d",
                payload,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        values.append(float(result.stdout) * 1000)
    return statistics.median(values)


def fresh(body: dict[str, Any], salt: object = "") -> dict[str, Any]:
    """The body with a prompt no one sent before."""
    unique = f"Hello there {time.time_ns()} {salt}"
    return {**body, "messages": [{"role": "user", "content": unique}]}


def sse_events(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            "curl",
            "-s",
            "-N",
            "-H",
            "content-type: application/json",
            "-H",
            f"authorization: Bearer {KEY}",
            "-d",
            json.dumps(fresh(body)),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        json.loads(line[6:])
        for line in result.stdout.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        [
            "curl",
            "-s",
            "-H",
            "content-type: application/json",
            "-H",
            f"authorization: Bearer {KEY}",
            "-d",
            json.dumps(body),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(result.stdout))


# --- the upstream -------------------------------------------------------------------------------


def start_nginx(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    conf = (HERE / "nginx.conf.template").read_text()
    conf = conf.replace("__DIR__", str(workdir)).replace("__PORT__", str(port))
    path = workdir / "nginx.conf"
    path.write_text(conf)
    process = subprocess.Popen(["taskset", "-c", LOAD_CORE, "nginx", "-c", str(path)])
    wait_http(f"http://127.0.0.1:{port}/v1/models", 10, process)
    return process


# --- the proxies --------------------------------------------------------------------------------


def llmrouter_policy(workdir: Path, upstream: str) -> Path:
    policy = f"""
backends:
  - name: cheap
    base_url: {upstream}/v1
    model: bench-model
    price: {{input_per_million: 0.15, output_per_million: 0.60}}
    context_window: 128000
    quality: 0.6
  - name: strong
    base_url: {upstream}/v1
    model: bench-model
    price: {{input_per_million: 2.50, output_per_million: 10.00}}
    context_window: 128000
    quality: 0.9
  - name: sse
    base_url: {upstream}/sse/v1
    model: bench-model
    price: {{input_per_million: 50.0, output_per_million: 50.0}}
    context_window: 128000
    quality: 0.1
routing: {{quality_floor: 0.5, reference: strong}}
cache: {{path: {workdir}/cache}}
ledger: {{url: "sqlite:///{workdir}/ledger.db"}}
server: {{api_keys_env: [LLMROUTER_BENCH_KEY]}}
"""
    path = workdir / "llmrouter.yaml"
    path.write_text(policy)
    return path


def start_llmrouter(
    workdir: Path, upstream: str, port: int
) -> tuple[subprocess.Popen[bytes], float]:
    policy = llmrouter_policy(workdir, upstream)
    executable = shutil.which("llmrouter") or sys.executable
    command = (
        [executable]
        if executable != sys.executable
        else [sys.executable, "-m", "llmrouter.cli.main"]
    )
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            PROXY_CORE,
            *command,
            "serve",
            "--policy",
            str(policy),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, "LLMROUTER_BENCH_KEY": KEY},
        cwd=workdir,
    )
    ready = wait_http(f"http://127.0.0.1:{port}/health", 60, process)
    return process, ready


def ensure_litellm(venv: Path) -> Path:
    executable = venv / "bin" / "litellm"
    if not executable.exists():
        print(f"installing LiteLLM's proxy into {venv} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return executable


def start_litellm(
    executable: Path, workdir: Path, upstream: str, port: int
) -> tuple[subprocess.Popen[bytes], float]:
    config = f"""
model_list:
  - model_name: auto
    litellm_params: {{model: openai/bench-model, api_base: "{upstream}/v1", api_key: none}}
  - model_name: sse
    litellm_params: {{model: openai/bench-model, api_base: "{upstream}/sse/v1", api_key: none}}
litellm_settings:
  telemetry: false
"""
    path = workdir / "litellm.yaml"
    path.write_text(config)
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MASTER_KEY": KEY,
    }
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            PROXY_CORE,
            str(executable),
            "--config",
            str(path),
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        env=env,
        cwd=workdir,
        stdout=(workdir / "litellm.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    ready = wait_http(f"http://127.0.0.1:{port}/health/liveliness", 120, process)
    return process, ready


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- measuring ----------------------------------------------------------------------------------


def measure(
    name: str,
    process: subprocess.Popen[bytes],
    ready_s: float,
    port: int,
    direct: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    print(f"\n== {name} (ready in {ready_s:.2f} s) ==", flush=True)
    wrk(base, 8, 2)  # warm up
    rss_before = rss_mb(process.pid)
    c1 = wrk(base, 1, args.duration)
    c32 = wrk(base, 32, args.duration)
    soak = wrk(base, 32, args.soak_seconds) if args.soak_seconds else None
    rss_after = rss_mb(process.pid)
    stream_body = {
        "model": "sse",
        "messages": [{"role": "user", "content": "Hello there"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    ttfb = ttfb_ms(f"{base}/v1/chat/completions", stream_body, args.ttft_samples)
    events = sse_events(f"{base}/v1/chat/completions", stream_body)
    plain = post_json(
        f"{base}/v1/chat/completions",
        {"model": "auto", "messages": [{"role": "user", "content": f"Hi {time.time()}"}]},
    )
    result = {
        "name": name,
        "ready_s": ready_s,
        "c1": c1,
        "c32": c32,
        "added_p50_ms_c1": (c1["p50_us"] - direct["c1"]["p50_us"]) / 1000,
        "added_p99_ms_c1": (c1["p99_us"] - direct["c1"]["p99_us"]) / 1000,
        "ttfb_added_ms": ttfb - direct["ttfb_ms"],
        "stream_chunks": len(events),
        "upstream_chunks": direct["stream_chunks"],
        "stream_usage": events[-1].get("usage") if events else None,
        "plain_usage": plain.get("usage"),
        "rss_mb": rss_after,
        "soak_requests": soak["requests"] if soak else 0,
        "rss_growth_mb": rss_after - rss_before,
    }
    for key, value in result.items():
        print(f"  {key}: {value}", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--soak-seconds", type=float, default=30, help="extra c=32 run for RSS")
    parser.add_argument("--ttft-samples", type=int, default=200)
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument(
        "--litellm-venv", type=Path, default=Path.home() / ".cache/llmrouter-bench/litellm-venv"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "taskset", "curl"):
        if shutil.which(tool) is None:
            print(f"missing {tool}: apt-get install -y nginx wrk curl util-linux", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        print("needs 2 cores (proxy on core 0, nginx + wrk on core 1)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="proxy-overhead-"))
    upstream_port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    nginx = start_nginx(workdir / "nginx", upstream_port)
    results: list[dict[str, Any]] = []
    try:
        direct_stream = {"model": "x", "messages": [], "stream": True}
        direct = {
            "c1": wrk(upstream, 1, args.duration),
            "c32": wrk(upstream, 32, args.duration),
            "ttfb_ms": ttfb_ms(
                f"{upstream}/sse/v1/chat/completions", direct_stream, args.ttft_samples
            ),
            "stream_chunks": len(sse_events(f"{upstream}/sse/v1/chat/completions", direct_stream)),
        }
        print("== nginx direct ==")
        for key, value in direct.items():
            print(f"  {key}: {value}")
        port = free_port()
        (workdir / "llmrouter").mkdir()
        process, ready = start_llmrouter(workdir / "llmrouter", upstream, port)
        try:
            results.append(measure("llmrouter", process, ready, port, direct, args))
        finally:
            stop(process)
        if not args.skip_litellm:
            executable = ensure_litellm(args.litellm_venv)
            port = free_port()
            (workdir / "litellm").mkdir()
            process, ready = start_litellm(executable, workdir / "litellm", upstream, port)
            try:
                results.append(measure("litellm-proxy", process, ready, port, direct, args))
            finally:
                stop(process)
    finally:
        stop(nginx)
    print(
        "\n| proxy | req/s c=32 | p99 c=32 ms | req/s c=1 | added p50 c=1 ms | added p99 c=1 ms "
        "| stream TTFB added ms | chunks (upstream) | RSS MB | ready s | RSS growth MB (reqs) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['name']} | {r['c32']['rps']:.0f} | {r['c32']['p99_us'] / 1000:.1f} "
            f"| {r['c1']['rps']:.0f} | {r['added_p50_ms_c1']:.2f} | {r['added_p99_ms_c1']:.2f} "
            f"| {r['ttfb_added_ms']:.2f} | {r['stream_chunks']} ({r['upstream_chunks']}) "
            f"| {r['rss_mb']:.0f} | {r['ready_s']:.2f} "
            f"| {r['rss_growth_mb']:.1f} ({r['soak_requests'] + r['c32']['requests']}) |"
        )
    if len(results) == 2:
        ratio = results[0]["c32"]["rps"] / max(results[1]["c32"]["rps"], 1e-9)
        print(f"\nllmrouter / LiteLLM requests/s at c=32: {ratio:.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"direct": direct, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
