"""The sidecar's OpenAPI document: what it accepts, for humans and for schemathesis."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

_KNOBS: dict[str, Any] = {
    "quality_floor": {"type": "number", "minimum": 0, "maximum": 1},
    "answer_value_usd": {"type": "number", "exclusiveMinimum": 0},
    "max_cost_usd": {"type": "number", "exclusiveMinimum": 0},
    "max_latency_ms": {"type": "number", "exclusiveMinimum": 0},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 32}, "maxItems": 4},
    "cache": {"type": "boolean"},
}

_HEADER_KNOBS = [
    {"name": "x-llmrouter-quality-floor", "in": "header", "schema": {"type": "string"}},
    {"name": "x-llmrouter-answer-value-usd", "in": "header", "schema": {"type": "string"}},
    {"name": "x-llmrouter-max-cost-usd", "in": "header", "schema": {"type": "string"}},
    {"name": "x-llmrouter-max-latency-ms", "in": "header", "schema": {"type": "string"}},
    {"name": "x-llmrouter-user", "in": "header", "schema": {"type": "string"}},
    {"name": "x-llmrouter-tags", "in": "header", "schema": {"type": "string"}},
]

_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {
            "oneOf": [
                {"type": "string", "maxLength": 200},
                {
                    "type": "array",
                    "maxItems": 3,
                    "items": {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {
                            "type": {"type": "string", "enum": ["text"]},
                            "text": {"type": "string", "maxLength": 100},
                        },
                    },
                },
            ]
        },
        "name": {"type": "string", "maxLength": 32},
    },
}

_TOOL = {
    "type": "object",
    "required": ["type", "function"],
    "properties": {
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 32},
                "description": {"type": "string", "maxLength": 100},
                "parameters": {"type": "object"},
            },
        },
    },
}

_CHAT_REQUEST = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "model": {
            "type": "string",
            "description": "'auto' routes; a backend name pins that backend.",
        },
        "messages": {"type": "array", "minItems": 1, "maxItems": 4, "items": _MESSAGE},
        "stream": {"type": "boolean"},
        "stream_options": {
            "type": "object",
            "properties": {"include_usage": {"type": "boolean"}},
        },
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "n": {"type": "integer", "minimum": 1, "maximum": 2},
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": 64},
        "max_completion_tokens": {"type": "integer", "minimum": 1, "maximum": 64},
        "stop": {
            "oneOf": [
                {"type": "string", "maxLength": 10},
                {"type": "array", "items": {"type": "string", "maxLength": 10}, "maxItems": 4},
            ]
        },
        "seed": {"type": "integer"},
        "logprobs": {"type": "boolean"},
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "user": {"type": "string", "maxLength": 64},
        "tools": {"type": "array", "maxItems": 2, "items": _TOOL},
        "tool_choice": {"oneOf": [{"type": "string", "enum": ["none", "auto", "required"]}]},
        "response_format": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"type": "string", "enum": ["text", "json_object"]}},
        },
        **_KNOBS,
    },
}

_COMPLETION_REQUEST = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "model": {"type": "string"},
        "prompt": {
            "oneOf": [
                {"type": "string", "maxLength": 200},
                {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            ]
        },
        "max_tokens": {"type": "integer", "minimum": 1, "maximum": 64},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "stream": {"type": "boolean"},
        "stop": {"type": "string", "maxLength": 10},
        "seed": {"type": "integer"},
        **_KNOBS,
    },
}

_EMBEDDINGS_REQUEST = {
    "type": "object",
    "required": ["input"],
    "properties": {
        "model": {"type": "string"},
        "input": {
            "oneOf": [
                {"type": "string", "maxLength": 200},
                {"type": "array", "minItems": 1, "maxItems": 4, "items": {"type": "string"}},
            ]
        },
        "encoding_format": {"type": "string", "enum": ["float"]},
    },
}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _responses(ok: str, content_type: str = "application/json") -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": _ERROR}}}
    return {
        "200": {"description": ok, "content": {content_type: {"schema": {}}}},
        "400": {"description": "bad JSON or a bad field (named in error.param)", **error},
        "401": {"description": "missing or invalid API key", **error},
        "404": {"description": "unknown model (the message lists the valid ones)", **error},
        "413": {"description": "body over server.max_body_bytes", **error},
        "429": {"description": "budget exhausted or upstream rate limit", **error},
        "502": {"description": "upstream failed after retries and fallbacks", **error},
        "503": {"description": "no backend can serve the request", **error},
        "504": {"description": "upstream timed out", **error},
    }


def _post(summary: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": _HEADER_KNOBS,
            "requestBody": _json_body(schema),
            "responses": _responses("the answer (JSON, or text/event-stream when stream=true)"),
        }
    }


def openapi_document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmrouter sidecar",
            "version": version,
            "description": "OpenAI-compatible API; each request goes to the cheapest capable "
            "backend. Router metadata comes back in x-llmrouter-* response headers.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/chat/completions": _post("Chat completion, routed", _CHAT_REQUEST),
            "/v1/completions": _post("Legacy text completion, routed", _COMPLETION_REQUEST),
            "/v1/embeddings": _post(
                "Embeddings from the cheapest embedding backend", _EMBEDDINGS_REQUEST
            ),
            "/v1/models": {
                "get": {"summary": "auto and every backend", "responses": _responses("models")}
            },
            "/health": {
                "get": {
                    "summary": "liveness and circuit state per backend",
                    "security": [],
                    "responses": {"200": {"description": "ok"}},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": _responses("metrics", "text/plain"),
                }
            },
        },
    }
