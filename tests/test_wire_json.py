"""The sidecar sends the upstream's JSON as validated, unless an integer field arrived as
something else (strict clients need integers); completions keep their router metadata
through copies and pickling."""

from __future__ import annotations

import json
import pickle
from typing import Any

from llmrouter.responses import ChatCompletion, ChatCompletionChunk, RouterInfo
from llmrouter.server.chat import _wire_json


def completion(wire: dict[str, Any]) -> ChatCompletion:
    model = ChatCompletion.model_validate(wire)
    model._wire = wire
    return model


def test_a_well_typed_answer_is_sent_as_it_came() -> None:
    wire = {
        "id": "x",
        "created": 1,
        "choices": [{"index": 0, "message": {"content": "hi"}, "vendor_field": [1, 2]}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    assert json.loads(_wire_json(completion(wire))) == wire


def test_loosely_typed_integers_are_normalised() -> None:
    wire = {
        "id": "x",
        "created": 1.7e9,
        "choices": [{"index": "0", "message": {"content": "hi"}}],
        "usage": {"prompt_tokens": 9.0, "completion_tokens": 1, "total_tokens": 10},
    }
    sent = json.loads(_wire_json(completion(wire)))
    assert sent["created"] == 1_700_000_000 and isinstance(sent["created"], int)
    assert sent["choices"][0]["index"] == 0
    assert sent["usage"]["prompt_tokens"] == 9 and isinstance(sent["usage"]["prompt_tokens"], int)
    chunk = ChatCompletionChunk.model_validate({"id": "c", "created": 2.0, "choices": []})
    chunk._wire = {"id": "c", "created": 2.0, "choices": []}
    assert json.loads(_wire_json(chunk))["created"] == 2


def test_router_metadata_survives_copies_and_pickling_but_the_wire_form_does_not() -> None:
    model = completion({"id": "x", "choices": [{"message": {"content": "hi"}}]})
    model._router = RouterInfo("rid", "b", "m", None, 0.0, 0.0, "miss", 1.0, None, 1, 1)
    for other in (
        model.model_copy(),
        model.model_copy(deep=True),
        pickle.loads(pickle.dumps(model)),
    ):
        assert other.router.request_id == "rid"
        assert other.wire() is None  # a copy may be edited: it is serialised from the model
        assert other.model_dump() == model.model_dump()
