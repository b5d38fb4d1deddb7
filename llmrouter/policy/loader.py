"""Load a YAML policy, with errors that name the file, the line and the key.

YAML is composed into nodes (which carry line numbers) and built into plain
Python while a map from key path to line is recorded; pydantic then validates
the plain data and its errors are translated back to lines through that map.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import PolicyError
from .interpolate import MissingVariable, interpolate
from .prices import lookup_model
from .schema import Capability, Policy, Price

__all__ = ["PACKAGED_POLICIES", "default_policy_path", "load_policy", "parse_policy"]

Path_ = tuple[str | int, ...]
PACKAGED_POLICIES = ("local",)


def default_policy_path() -> Path:
    """``$LLMROUTER_POLICY``, then ``./llmrouter.yaml``, then the packaged ``local`` policy."""
    from_env = os.environ.get("LLMROUTER_POLICY")
    if from_env:
        return Path(from_env)
    here = Path("llmrouter.yaml")
    if here.is_file():
        return here
    return packaged_policy("local")


def packaged_policy(name: str) -> Path:
    return Path(__file__).parent / "builtin" / f"{name}.yaml"


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Read, interpolate, validate and complete a policy file."""
    if path is None:
        path = default_policy_path()
    text_path = Path(path)
    if not text_path.is_file() and str(path) in PACKAGED_POLICIES:
        text_path = packaged_policy(str(path))
    try:
        text = text_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError("policy file not found", file=str(path)) from None
    except OSError as exc:
        raise PolicyError(f"cannot read policy file: {exc.strerror}", file=str(path)) from None
    return parse_policy(text, source=str(path))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    data, lines = _load_yaml(text, source)
    if not isinstance(data, dict):
        raise PolicyError("a policy must be a mapping with a 'backends' list", file=source, line=1)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, source, lines) from None
    _complete(policy, source, lines)
    policy._source = source
    return policy


# --- YAML with line numbers -------------------------------------------------------------


def _load_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise PolicyError(f"invalid YAML: {problem}", file=source, line=line) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", file=source) from None
    finally:
        loader.dispose()
    if node is None:
        raise PolicyError("the policy is empty; it needs at least a 'backends' list", file=source)
    lines: dict[Path_, int] = {}
    data = _build(node, (), lines, loader, source)
    return data, lines


def _build(
    node: yaml.Node, path: Path_, lines: dict[Path_, int], loader: yaml.SafeLoader, source: str
) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                raise PolicyError(
                    f"keys must be strings, got {key!r}",
                    file=source,
                    line=key_node.start_mark.line + 1,
                )
            if key in result:
                raise PolicyError(
                    "duplicate key",
                    file=source,
                    line=key_node.start_mark.line + 1,
                    key=_dotted((*path, key)),
                )
            key_path: Path_ = (*path, key)
            result[key] = _build(value_node, key_path, lines, loader, source)
            lines[key_path] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(item, (*path, index), lines, loader, source)
            for index, item in enumerate(node.value)
        ]
    value = loader.construct_object(node)
    if isinstance(value, str) and "$" in value:
        try:
            substituted = interpolate(value)
        except MissingVariable as exc:
            raise PolicyError(
                f"environment variable {exc.name} is not set and has no default "
                f"(write ${{{exc.name}:-default}} to give one)",
                file=source,
                line=lines[path],
                key=_dotted(path),
            ) from None
        if getattr(node, "style", None) is None and substituted != value:
            # An unquoted value takes its YAML type after substitution (numbers, booleans).
            retyped = yaml.safe_load(substituted) if substituted.strip() else substituted
            return retyped if isinstance(retyped, (int, float, bool, str)) else substituted
        return substituted
    return value


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


# --- pydantic errors back to lines --------------------------------------------------------


def _translate(exc: ValidationError, source: str, lines: dict[Path_, int]) -> PolicyError:
    problems: list[tuple[int | None, str, str]] = []
    for error in exc.errors():
        loc: Path_ = tuple(p for p in error["loc"] if isinstance(p, (str, int)))
        problems.append(
            (_nearest_line(loc, lines), _dotted(loc) or "<top level>", _describe(error, loc))
        )
    line, key, message = problems[0]
    for other_line, other_key, other_message in problems[1:]:
        message += f"\n{source}:{other_line}: '{other_key}': {other_message}"
    return PolicyError(message, file=source, line=line, key=key)


def _nearest_line(loc: Path_, lines: dict[Path_, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def _describe(error: Mapping[str, Any], loc: Path_) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error" and loc and loc[-1] in ("predictor", "version"):
        return str(error.get("msg"))
    msg = str(error.get("msg", "invalid value"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if "input" in error and kind not in ("missing",):
        got = error["input"]
        if isinstance(got, (str, int, float, bool)) or got is None:
            msg += f" (got {got!r})"
    return msg


def _allowed_keys(loc: Path_) -> list[str]:
    model: Any = Policy
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = _inner_model(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        inner = _inner_model(arg)
        if inner is not None:
            return inner
    return None


# --- defaults that need data: prices and context windows ---------------------------------


def _complete(policy: Policy, source: str, lines: dict[Path_, int]) -> None:
    for index, backend in enumerate(policy.backends):
        info = lookup_model(backend.model, backend.provider)
        where = ("backends", index)
        if backend.price is None:
            if backend.is_local:
                backend.price = Price(input_per_million=0.0, output_per_million=0.0)
            elif info is not None:
                backend.price = Price(
                    input_per_million=info.input_per_million,
                    output_per_million=info.output_per_million,
                    cached_input_per_million=info.cached_input_per_million,
                    cache_write_per_million=info.cache_write_per_million,
                    reasoning_per_million=info.reasoning_per_million,
                )
            else:
                raise PolicyError(
                    f"no price is known for model {backend.model!r} (not in litellm's price "
                    "data); add price: {input_per_million: N, output_per_million: N}",
                    file=source,
                    line=lines.get(where),
                    key=f"backends[{index}].price",
                )
        if backend.context_window is None:
            if info is not None and info.context_window:
                backend.context_window = info.context_window
            else:
                raise PolicyError(
                    f"no context window is known for model {backend.model!r}; "
                    "add context_window: N (tokens)",
                    file=source,
                    line=lines.get(where),
                    key=f"backends[{index}].context_window",
                )
        if backend.max_output_tokens is None and info is not None:
            backend.max_output_tokens = info.max_output_tokens
        if not backend.capabilities and info is not None and not backend.is_local:
            inferred: list[Capability] = []
            if info.supports_tools:
                inferred.append("tools")
            if info.supports_vision:
                inferred.append("vision")
            if info.supports_json:
                inferred.append("json")
            backend.capabilities = inferred
