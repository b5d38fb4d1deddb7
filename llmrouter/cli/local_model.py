"""``llmrouter local-model``: serve the embedded Gemma 3 270M with llama.cpp."""

from __future__ import annotations

import argparse
import time


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "local-model", help="serve the embedded local model (llama.cpp) on loopback"
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..local_model import LocalModelServer

    with LocalModelServer(port=args.port, n_ctx=args.n_ctx) as server:
        print(f"local model ready at {server.base_url} (Ctrl-C to stop)", flush=True)
        while True:
            time.sleep(3600)
