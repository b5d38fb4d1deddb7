"""Package hygiene: light import, offline tokenizer, public API."""

from __future__ import annotations

import subprocess
import sys

import llmrouter


def test_import_does_not_pull_litellm_or_http_stack() -> None:
    code = (
        "import sys, llmrouter; "
        "print(','.join(m for m in ('litellm', 'httpx', 'tiktoken', 'openai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_tokenizer_works_offline_from_litellm_files() -> None:
    from llmrouter.tokens import count_message_tokens, count_text_tokens, tiktoken_cache_dir

    assert tiktoken_cache_dir() is not None
    assert count_text_tokens("hello world") == 2
    assert count_message_tokens([{"role": "user", "content": "hello world"}]) > 2


def test_public_api() -> None:
    for name in ("Router", "Decision", "ChatCompletion", "PolicyError", "load_policy"):
        assert hasattr(llmrouter, name)
    assert set(llmrouter.__all__) <= set(dir(llmrouter))
