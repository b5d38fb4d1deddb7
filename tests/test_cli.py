"""The command line: outputs, JSON fields, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PolicyFactory, two_tier
from upstream import Upstream


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmrouter", *args], capture_output=True, text=True
    )


def test_route_json_has_the_decision_fields(make_policy: PolicyFactory) -> None:
    path = make_policy(two_tier("http://127.0.0.1:9/v1"), routing={"reference": "large"})
    out = run("route", "Hi! How are you?", "--policy", str(path), "--json")
    assert out.returncode == 0, out.stderr
    decision = json.loads(out.stdout)
    assert decision["backend"] == "small"
    assert {"backend", "candidates", "complexity", "reason"} <= set(decision)
    for candidate in decision["candidates"]:
        assert {"name", "predicted_quality", "estimated_cost_usd", "excluded_reason"} <= set(
            candidate
        )


def test_route_text_explains(make_policy: PolicyFactory) -> None:
    path = make_policy(two_tier("http://127.0.0.1:9/v1"))
    out = run("route", "Prove that sqrt(2) is irrational, step by step.", "--policy", str(path))
    assert out.returncode == 0
    assert "backend:" in out.stdout and "candidate" in out.stdout


def test_route_and_policy_check_show_the_value_rule(make_policy: PolicyFactory) -> None:
    path = make_policy(two_tier("http://127.0.0.1:9/v1"))
    out = run("route", "Hi! How are you?", "--policy", str(path), "--answer-value-usd", "1e-12")
    assert out.returncode == 0, out.stderr
    assert "rule:        value, $1e-12 per good answer" in out.stdout
    assert "backend:     small" in out.stdout  # worth nearly nothing: the cheapest
    valued = make_policy(
        two_tier("http://127.0.0.1:9/v1"), routing={"rule": "value", "answer_value_usd": 0.01}
    )
    out = run("policy", "check", str(valued))
    assert out.returncode == 0, out.stderr
    assert "value rule ($0.01 per good answer)" in out.stdout


def test_complete_takes_an_answer_value(make_policy: PolicyFactory, upstream: Upstream) -> None:
    path = make_policy(two_tier(upstream.base_url))
    for worth, backend in (("1e-12", "small"), ("100", "large")):
        out = run("complete", "Hi!", "--policy", str(path), "--answer-value-usd", worth)
        assert out.returncode == 0, out.stderr
        assert out.stderr.startswith(f"[{backend}]"), (worth, out.stderr)
    bad = run("complete", "Hi!", "--policy", str(path), "--answer-value-usd", "0")
    assert bad.returncode == 2 and "answer_value_usd" in bad.stderr


def test_policy_check_summarises(make_policy: PolicyFactory) -> None:
    path = make_policy(two_tier("http://127.0.0.1:9/v1"))
    out = run("policy", "check", str(path))
    assert out.returncode == 0, out.stderr
    assert "valid" in out.stdout and "small" in out.stdout and "what routes where" in out.stdout


def test_bad_policy_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("backends:\n  - name: a\n    model: m\n    colour: blue\n")
    out = run("policy", "check", str(bad))
    assert out.returncode == 2
    assert f"{bad}:4" in out.stderr and "colour" in out.stderr


def test_prompt_too_large_exits_2(make_policy: PolicyFactory) -> None:
    path = make_policy(two_tier("http://127.0.0.1:9/v1"))
    out = run("route", "word " * 9000, "--policy", str(path))
    assert out.returncode == 2
    assert "context window" in out.stderr


def test_unknown_backend_exits_2(make_policy: PolicyFactory) -> None:
    path = make_policy(two_tier("http://127.0.0.1:9/v1"))
    out = run("complete", "hi", "--model", "nope", "--policy", str(path))
    assert out.returncode == 2 and "unknown model 'nope'" in out.stderr


def test_unreachable_backend_exits_1(make_policy: PolicyFactory) -> None:
    path = make_policy(
        two_tier("http://127.0.0.1:9/v1"), fallback={"retries": 0, "backoff_initial_s": 0}
    )
    out = run("complete", "hi", "--policy", str(path))
    assert out.returncode == 1 and "all backends failed" in out.stderr


def test_spend_on_empty_ledger(make_policy: PolicyFactory) -> None:
    path = make_policy(two_tier("http://127.0.0.1:9/v1"))
    out = run("spend", "--policy", str(path), "--json")
    assert out.returncode == 0
    assert json.loads(out.stdout)["calls"] == 0
    bad = run("spend", "--policy", str(path), "--since", "yesterday-ish")
    assert bad.returncode == 2 and "cannot read time" in bad.stderr


def test_no_command_prints_help() -> None:
    out = run()
    assert out.returncode == 2 and "usage" in out.stdout


def test_route_explains_demands_and_reads_a_whole_request(
    make_policy: PolicyFactory, tmp_path: Path
) -> None:
    path = make_policy(two_tier("http://127.0.0.1:9/v1"))
    out = run(
        "route", "Write a Python function that merges two sorted lists.", "--policy", str(path)
    )
    assert out.returncode == 0, out.stderr
    demands = next(line for line in out.stdout.splitlines() if line.startswith("demands:"))
    assert demands.split()[1] == "code"  # the largest share first
    signals = next(line for line in out.stdout.splitlines() if line.startswith("signals:"))
    assert "no numbers" in signals and "digits" not in signals  # the prompt has no digits
    # A whole request: a conversation with list-of-parts content and tools, which the small
    # backend lacks.
    request = {
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "Hi! How are you?"}]},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    }
    (tmp_path / "request.json").write_text(json.dumps(request))
    out = run(
        "route", "--messages", str(tmp_path / "request.json"), "--policy", str(path), "--json"
    )
    assert out.returncode == 0, out.stderr
    decision = json.loads(out.stdout)
    assert decision["backend"] == "large"
    assert sum(decision["demands"].values()) == pytest.approx(1.0)
    small = next(c for c in decision["candidates"] if c["name"] == "small")
    assert small["excluded_reason"] == "lacks capability: tools"
    for bad in ([], ["--messages", str(tmp_path / "request.json"), "Hi"]):
        out = run("route", *bad, "--policy", str(path))
        assert out.returncode == 2 and "one of them" in out.stderr
    (tmp_path / "broken.json").write_text("{")
    out = run("route", "--messages", str(tmp_path / "broken.json"), "--policy", str(path))
    assert out.returncode == 2 and "not JSON" in out.stderr


def test_route_messages_file_that_is_not_utf8(make_policy: PolicyFactory, tmp_path: Path) -> None:
    path = make_policy(two_tier("http://127.0.0.1:9/v1"))
    (tmp_path / "latin1.json").write_bytes(b'[{"role": "user", "content": "caf\xe9"}]')
    out = run("route", "--messages", str(tmp_path / "latin1.json"), "--policy", str(path))
    assert out.returncode == 2 and "latin1.json: not UTF-8" in out.stderr
