"""The labelled-prompt JSONL format shared by ``train``, ``calibrate`` and ``eval``.

One JSON object per line::

    {"id": "mmlu-17", "prompt": "..." | "messages": [...],
     "scores": {"backend": 0.0-1.0 or null}, "costs": {"backend": usd},
     "usage": {"backend": {"prompt_tokens": n, "completion_tokens": n}},
     "task": "mmlu", "level": 3}

``scores`` null (or absent) means unknown, never 0. ``task`` and ``level`` (an ordinal
difficulty label such as MATH's 1-5) are optional extras the trainer uses. Results may be keyed
by a policy backend's name or by its model id (``data_keys`` says which, per backend).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmrouter.errors import InvalidRequest
from llmrouter.routing.request import validate_messages
from llmrouter.tokens import message_text

__all__ = [
    "DataError",
    "Record",
    "data_keys",
    "read_jsonl",
    "record_from_json",
    "unread_records",
    "write_jsonl",
]


# The ordinal difficulty scale ``level`` is on: MATH's 1-5 (the trainer fits 4 thresholds).
MAX_LEVEL = 5


class DataError(ValueError):
    """A data file line that does not follow the format (message names file and line)."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Record:
    id: str
    text: str
    scores: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    usage: dict[str, Usage] = field(default_factory=dict)
    task: str | None = None
    level: int | None = None
    messages: list[dict[str, Any]] | None = None

    def chat(self) -> list[dict[str, Any]]:
        """The record as a request's messages: its own, else its prompt as one user message
        (how ``eval`` and ``calibrate`` hand it to the router's request analysis)."""
        return self.messages or [{"role": "user", "content": self.text}]

    def under(self, keys: Mapping[str, str]) -> Record:
        """This record with its results filed under backend names (``keys``: backend name ->
        the key the data uses, from ``data_keys``); results of other keys are left out."""
        return replace(
            self,
            scores={name: self.scores[key] for name, key in keys.items() if key in self.scores},
            costs={name: self.costs[key] for name, key in keys.items() if key in self.costs},
            usage={name: self.usage[key] for name, key in keys.items() if key in self.usage},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.messages is not None:
            out["messages"] = self.messages
        else:
            out["prompt"] = self.text
        out["scores"] = self.scores
        if self.costs:
            out["costs"] = self.costs
        if self.usage:
            out["usage"] = {
                k: {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens}
                for k, u in self.usage.items()
            }
        if self.task is not None:
            out["task"] = self.task
        if self.level is not None:
            out["level"] = self.level
        return out


def data_keys(backends: Iterable[tuple[str, str]], records: Sequence[Record]) -> dict[str, str]:
    """For each (name, model id) backend, the key its scores go by in ``records``: its name
    when the data uses it, else its model id (data recorded per model, such as the shared
    sets' converters write); backends the data does not score are left out. One key per
    backend for every record, so a backend's results never mix two columns."""
    seen = {key for record in records for key in record.scores}
    keys: dict[str, str] = {}
    for name, model in backends:
        if name in seen:
            keys[name] = name
        elif model in seen:
            keys[name] = model
    return keys


def unread_records(
    backends: Iterable[tuple[str, str]], records: Sequence[Record], keys: Mapping[str, str]
) -> int:
    """How many records score a backend only under the key ``keys`` does not read for it
    (its model id when its name is read, or the reverse): data mixing the two loses them."""
    pairs = [
        (keys[name], model if keys[name] == name else name)
        for name, model in backends
        if name in keys
    ]
    return sum(
        1
        for record in records
        if any(other in record.scores and read not in record.scores for read, other in pairs)
    )


def _text_of(obj: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]] | None]:
    prompt, messages = obj.get("prompt"), obj.get("messages")
    if prompt is not None and messages is not None:
        raise ValueError('has both "prompt" and "messages"; give one')
    if isinstance(prompt, str):
        return prompt, None
    if messages is None:
        raise ValueError('needs "prompt" (string) or "messages" (list of objects)')
    try:  # as the router would read them
        checked = validate_messages(messages)
    except InvalidRequest as exc:
        raise ValueError(str(exc)) from None
    return "\n".join(message_text(m) for m in checked), checked


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f'"{key}" must be an object keyed by backend, got {type(value).__name__}')
    return value


def _amount(value: Any, what: str) -> float:
    """A finite, non-negative number (a cost in USD or a token count)."""
    number = _number(value, what)
    if not 0.0 <= number < math.inf:
        raise ValueError(f"{what} must be a finite number >= 0, got {number}")
    return number


def _tokens(value: Any, what: str) -> int:
    """A token count: a whole number >= 0 (5.0 is accepted as 5; 5.5 is an error)."""
    number = _amount(value, what)
    if number != int(number):
        raise ValueError(f"{what} must be a whole number of tokens, got {number}")
    return int(number)


def record_from_json(obj: Any) -> Record:
    """Validate one decoded line; raises ValueError saying what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    text, messages = _text_of(obj)
    scores: dict[str, float] = {}
    for name, value in _mapping(obj, "scores").items():
        if value is None:
            continue
        score = _number(value, f"scores[{name!r}]")
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"scores[{name!r}] must be in [0, 1], got {score}")
        scores[str(name)] = score
    costs = {str(k): _amount(v, f"costs[{k!r}]") for k, v in _mapping(obj, "costs").items()}
    usage: dict[str, Usage] = {}
    for name, u in _mapping(obj, "usage").items():
        if not isinstance(u, dict):
            raise ValueError(f"usage[{name!r}] must be an object")
        if not {"prompt_tokens", "completion_tokens"} <= set(u):
            raise ValueError(
                f"usage[{name!r}] needs prompt_tokens and completion_tokens, got {sorted(u)}"
            )
        usage[str(name)] = Usage(
            _tokens(u["prompt_tokens"], f"usage[{name!r}].prompt_tokens"),
            _tokens(u["completion_tokens"], f"usage[{name!r}].completion_tokens"),
        )
    level = obj.get("level")
    if level is not None and (
        isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= MAX_LEVEL
    ):
        raise ValueError(
            f"level must be an integer from 1 (easiest) to {MAX_LEVEL} (hardest), got {level!r}"
        )
    return Record(
        id=str(obj.get("id", "")),
        text=text,
        scores=scores,
        costs=costs,
        usage=usage,
        task=str(obj["task"]) if obj.get("task") is not None else None,
        level=int(level) if level is not None else None,
        messages=messages,
    )


def _iter_file(path: Path) -> Iterator[Record]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not UTF-8 ({exc.reason})") from None
            if not line.strip():
                continue
            try:
                record = record_from_json(json.loads(line))
            except (ValueError, TypeError) as exc:
                raise DataError(f"{path}:{number}: {exc}") from None
            if not record.id:
                record.id = f"{path.stem}-{number}"
            yield record


def read_jsonl(paths: Iterable[str | Path]) -> list[Record]:
    """All records of the given files, in order; raises DataError on a malformed line, and
    when the files hold no record at all."""
    records: list[Record] = []
    names = []
    for path in paths:
        names.append(str(path))
        records.extend(_iter_file(Path(path)))
    if not records:
        raise DataError(f"no records in {', '.join(names)} (one JSON object per line)")
    return records


def write_jsonl(records: Iterable[Record], path: str | Path) -> int:
    count = 0
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
            count += 1
    return count
