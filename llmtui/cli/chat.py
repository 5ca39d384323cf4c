"""`llmtui chat [MODEL]`: the workstation (also what bare `llmtui` runs)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from llmtui.cli.options import MODEL_SPEC_HELP, add_model_options, add_remote_options, model_options, remote_endpoint

if TYPE_CHECKING:
    from llmtui.backends.base import Progress, StartBackend
    from llmtui.backends.http import Endpoint
    from llmtui.core.choices import ModelOptions


def add_parser(sub: Any) -> None:
    """Register `chat` on the verbs' subparsers."""
    chat = sub.add_parser("chat", help="start the chat workstation (the default command)")
    chat.add_argument("model", nargs="?", help=MODEL_SPEC_HELP + "; with --url, the server's model id")
    add_model_options(chat)
    add_remote_options(chat)
    chat.set_defaults(func=cmd_chat)


def remote_starter(endpoint: Endpoint, model: str | None) -> StartBackend:
    """How the workstation starts (and restarts) its backend when it is a client of a server: it connects,
    for ``model`` (the one the server serves when None)."""

    def start(options: ModelOptions, progress: Progress) -> Any:
        from llmtui.backends.openai import connect

        progress(0.0, f"connecting to {endpoint.host}")
        return connect(endpoint, model)

    return start


def cmd_chat(args: argparse.Namespace) -> int:
    """Run the workstation until the user quits; its return code is ours."""
    from llmtui.store.settings import load_settings
    from llmtui.tui.app import LlmtuiApp

    # Problems in settings.toml are shown inside the app, where they are not scrolled away.
    settings, problems = load_settings(args.config)
    notices = [str(p) for p in problems]
    endpoint = remote_endpoint(args, notices, settings)
    options = model_options(args, settings, args.model)
    app = LlmtuiApp(
        settings=settings,
        notices=notices,
        options=options,
        config_path=args.config,
        start_backend=remote_starter(endpoint, args.model) if endpoint is not None else None,
    )
    app.run()
    return app.return_code or 0
