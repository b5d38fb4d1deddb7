"""PostgreSQL and Redis for the tests: from the environment (``.ci/services.sh`` exports them).

Locally, tests that need them skip when the variables are absent; under CI (``CI`` set)
a missing server is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

PG_ENV = "LLMROUTER_TEST_PG_URL"
REDIS_ENV = "LLMROUTER_TEST_REDIS_URL"


def _require(env: str) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if os.environ.get("CI"):
        pytest.fail(f"{env} is not set under CI: .ci/run must start the server", pytrace=False)
    pytest.skip(f"{env} is not set (run: source .ci/services.sh)")


def pg_server_url() -> str:
    return _require(PG_ENV)


def redis_server_url() -> str:
    return _require(REDIS_ENV)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    base = pg_server_url()
    name = f"llmrouter_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(base)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_redis() -> Iterator[tuple[str, str]]:
    """The Redis URL and a key prefix no other test uses (its keys are deleted afterwards)."""
    import redis

    url = redis_server_url()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    try:
        yield url, prefix
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
