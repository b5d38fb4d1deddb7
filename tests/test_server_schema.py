"""schemathesis against the sidecar's ``/openapi.json``: generated requests, valid and
invalid, never make it answer 500 (a 502/503/504 from the scripted upstream is fine)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from server_conftest_helpers import Sidecar, write_policy
from test_server import scripted_backends

from upstream import Upstream


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    upstream = Upstream().start()
    policy = write_policy(tmp_path_factory.mktemp("schema"), scripted_backends(upstream.base_url))
    server = Sidecar(policy).wait()
    # Both valid and deliberately invalid requests.
    config = SchemathesisConfig.from_dict({"generation": {"mode": "all"}})
    yield schemathesis.openapi.from_url(f"{server.root}/openapi.json", config=config)
    assert server.alive()
    server.stop()
    upstream.stop()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_request_makes_it_fail(case: schemathesis.Case) -> None:
    response = case.call(timeout=10)
    assert response.status_code != 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
