"""Policies: the contract policy validates; every broken one names file, line and key."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from llmrouter import PolicyError, load_policy
from llmrouter.policy import parse_policy

REPO = Path(__file__).resolve().parent.parent

CONTRACT = """\
backends:
  - name: small
    provider: openai-compatible
    base_url: ${LOCAL_BASE_URL:-http://127.0.0.1:8080/v1}
    model: gemma-3-270m
    price: {input_per_million: 0.10, output_per_million: 0.40}
    context_window: 8192
    quality: 0.35
  - name: large
    provider: openai-compatible
    base_url: ${LOCAL_BASE_URL:-http://127.0.0.1:8080/v1}
    model: gemma-3-270m
    api_key_env: LARGE_API_KEY
    price: {input_per_million: 5.00, output_per_million: 15.00}
    context_window: 8192
    quality: 0.90
    capabilities: [tools, json]
routing:
  quality_floor: 0.7
  reference: large
"""


def test_contract_policy_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_BASE_URL", raising=False)
    policy = parse_policy(CONTRACT, source="contract.yaml")
    small, large = policy.backends
    assert small.endpoint == "http://127.0.0.1:8080/v1"
    assert large.api_key_env == "LARGE_API_KEY"
    assert large.capabilities == ["tools", "json"]
    assert policy.routing.quality_floor == 0.7
    assert policy.reference_backend.name == "large"


def test_env_interpolation_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_BASE_URL", "http://127.0.0.1:9999/v1")
    policy = parse_policy(CONTRACT)
    assert policy.backends[0].endpoint == "http://127.0.0.1:9999/v1"


def test_unquoted_interpolated_value_takes_its_yaml_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOOR", "0.55")
    policy = parse_policy(CONTRACT.replace("quality_floor: 0.7", "quality_floor: ${FLOOR}"))
    assert policy.routing.quality_floor == 0.55


def expect_error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="broken.yaml")
    return info.value


def test_broken_yaml_names_file_and_line() -> None:
    error = expect_error("backends:\n  - name: a\n    model: [unclosed\n")
    assert error.file == "broken.yaml"
    assert error.line is not None and error.line >= 3
    assert "broken.yaml:" in str(error)


def test_unknown_key_names_line_key_and_allowed_keys() -> None:
    error = expect_error(
        CONTRACT.replace("    quality: 0.35\n", "    quality: 0.35\n    qualty: 1\n")
    )
    assert error.line == 9
    assert error.key == "backends[0].qualty"
    message = str(error)
    assert "unknown key" in message and "quality" in message and "context_window" in message


def test_misspelled_calibration_key_is_an_error() -> None:
    typo = "    quality: 0.35\n    calibration: {abilty: 1.0}\n"
    error = expect_error(CONTRACT.replace("    quality: 0.35\n", typo))
    assert error.key == "backends[0].calibration"
    assert "abilty" in str(error) and "discrimination" in str(error)


def test_calibration_keys_match_the_brain() -> None:
    from llmrouter.brain.model import CATEGORIES
    from llmrouter.policy.schema import CALIBRATION_KEYS

    assert ("ability", "discrimination", *CATEGORIES) == CALIBRATION_KEYS


def test_wrong_type_names_key() -> None:
    error = expect_error(
        CONTRACT.replace(
            "context_window: 8192\n    quality: 0.35", "context_window: lots\n    quality: 0.35"
        )
    )
    assert error.key == "backends[0].context_window"
    assert error.line == 7
    assert "lots" in str(error)


def test_negative_price_is_rejected_with_its_line() -> None:
    error = expect_error(CONTRACT.replace("input_per_million: 0.10", "input_per_million: -1"))
    assert error.key == "backends[0].price.input_per_million"
    assert error.line == 6
    assert "greater than or equal to 0" in str(error)


def test_missing_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_URL", raising=False)
    error = expect_error(
        CONTRACT.replace("${LOCAL_BASE_URL:-http://127.0.0.1:8080/v1}", "${NOPE_URL}", 1)
    )
    assert error.line == 4
    assert error.key == "backends[0].base_url"
    assert "NOPE_URL" in str(error) and "not set" in str(error)


def test_reference_must_be_a_backend() -> None:
    error = expect_error(CONTRACT.replace("reference: large", "reference: huge"))
    assert "huge" in str(error) and "large, small" in str(error)


def test_duplicate_backend_names() -> None:
    error = expect_error(CONTRACT.replace("name: large", "name: small"))
    assert "duplicate backend name" in str(error)


def test_duplicate_yaml_key() -> None:
    error = expect_error(
        CONTRACT.replace("    quality: 0.35\n", "    quality: 0.35\n    quality: 0.4\n")
    )
    assert error.line == 9 and "duplicate key" in str(error)


def test_unknown_cloud_model_needs_a_price() -> None:
    error = expect_error(
        "backends:\n  - name: x\n    provider: anthropic\n    model: no-such-model-xyz\n"
    )
    assert error.key == "backends[0].price"
    assert "input_per_million" in str(error)


def test_prices_default_from_litellm_data_without_importing_litellm() -> None:
    import sys

    sys.modules.pop("litellm", None)
    policy = parse_policy(
        "backends:\n  - name: mini\n    provider: openai\n    model: gpt-4o-mini\n"
        "    api_key_env: OPENAI_API_KEY\n"
    )
    price = policy.backends[0].resolved_price
    assert price.input_per_million == pytest.approx(0.15)
    assert price.output_per_million == pytest.approx(0.60)
    assert policy.backends[0].resolved_context_window == 128000
    assert "tools" in policy.backends[0].capabilities
    assert "litellm" not in sys.modules


def test_local_endpoint_defaults_to_free() -> None:
    policy = parse_policy(
        "backends:\n  - name: l\n    base_url: http://localhost:8080/v1\n    model: m\n"
        "    context_window: 4096\n"
    )
    assert policy.backends[0].resolved_price.input_per_million == 0


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted((REPO / "policies").glob("*.yaml")))
def test_shipped_policies_validate(path: Path) -> None:
    policy = load_policy(path)
    assert policy.backends


def test_packaged_local_policy_matches_repo_copy() -> None:
    packaged = REPO / "llmrouter" / "policy" / "builtin" / "local.yaml"
    assert filecmp.cmp(packaged, REPO / "policies" / "local.yaml", shallow=False)


def test_default_policy_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrouter.policy import default_policy_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMROUTER_POLICY", raising=False)
    assert default_policy_path().name == "local.yaml"
    (tmp_path / "llmrouter.yaml").write_text(CONTRACT)
    assert default_policy_path() == Path("llmrouter.yaml")
    monkeypatch.setenv("LLMROUTER_POLICY", "/some/where.yaml")
    assert default_policy_path() == Path("/some/where.yaml")
