"""`llmtui serve [MODEL]`: the engine behind an OpenAI-compatible HTTP API, as ollama's `serve`."""

from __future__ import annotations

import argparse
import os
from typing import Any

from llmtui.cli.options import MODEL_SPEC_HELP, add_model_options, model_options, settings
from llmtui.core.wire import API_KEY_ENV


def add_parser(sub: Any) -> None:
    """Register `serve` on the verbs' subparsers."""
    serve = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API")
    serve.add_argument("model", nargs="?", help=f"{MODEL_SPEC_HELP} (default: the settings' model)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--uds", metavar="PATH", help="listen on this Unix socket instead of a TCP port")
    serve.add_argument(
        "--api-key", help=f"require this key as 'Authorization: Bearer KEY' (or set {API_KEY_ENV}, unseen by ps)"
    )
    serve.add_argument(
        "--max-queue", type=int, default=8, help="requests that may wait behind the reply decoding (default 8)"
    )
    # The workstation's engine process: exit at once when the parent holding stdin dies.
    serve.add_argument("--watch-stdin", action="store_true", help=argparse.SUPPRESS)
    add_model_options(serve)
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT; 1 when the model cannot be loaded."""
    from llmtui.server import serve

    options = model_options(args, settings(args), args.model)
    return serve(
        options,
        host=args.host,
        port=args.port,
        uds=args.uds,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        max_queue=args.max_queue,
        watch_stdin=args.watch_stdin,
    )
