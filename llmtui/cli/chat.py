"""`llmtui chat [MODEL]`: the workstation (also what bare `llmtui` runs)."""

from __future__ import annotations

import argparse
from typing import Any

from llmtui.cli.options import MODEL_SPEC_HELP, add_model_options, add_remote_options, model_options, remote_endpoint


def add_parser(sub: Any) -> None:
    """Register `chat` on the verbs' subparsers."""
    chat = sub.add_parser("chat", help="start the chat workstation (the default command)")
    chat.add_argument("model", nargs="?", help=MODEL_SPEC_HELP + "; with --url, the server's model id")
    add_model_options(chat)
    add_remote_options(chat)
    chat.set_defaults(func=cmd_chat)


def cmd_chat(args: argparse.Namespace) -> int:
    """Run the workstation until the user quits; its return code is ours."""
    from llmtui.backends.openai import starter
    from llmtui.backends.process import start_engine_process
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
        start_backend=starter(endpoint, args.model) if endpoint is not None else None,
        local_backend=start_engine_process,
    )
    app.run()
    return app.return_code or 0
