"""``llmrouter serve``: the OpenAI-compatible sidecar."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the OpenAI-compatible sidecar",
        description="Serve /v1/chat/completions (and friends): point any OpenAI client here.",
    )
    parser.add_argument(
        "--policy",
        default=None,
        help="policy file (default: $LLMROUTER_POLICY, "
        "./llmrouter.yaml, then the packaged local policy)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4000, help="port (default 4000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="allow a non-loopback --host with no API keys in the policy (server.api_keys_env)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    _skip_httpx_command_line()
    from ..errors import InvalidRequest
    from ..server import serve

    if args.workers < 1:
        raise InvalidRequest("--workers must be at least 1")
    if not 0 < args.port < 65536:
        raise InvalidRequest("--port must be between 1 and 65535")
    serve(
        args.policy,
        host=args.host,
        port=args.port,
        workers=args.workers,
        allow_unauthenticated=args.allow_unauthenticated,
        log_level=args.log_level,
    )
    return 0


def _skip_httpx_command_line() -> None:
    """httpx imports its own command-line tool (click, rich, pygments: ~6 MB) whenever those
    are installed; the sidecar process never runs it, so it is kept out."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
