"""`llmtui list`: the models llmtui can find (named ls so that it does not shadow the builtin)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmtui.cli.options import add_remote_options, human_size, remote_endpoint, settings, table
from llmtui.core.text import escape_controls


def add_parser(sub: Any) -> None:
    """Register `list` on the verbs' subparsers."""
    ls = sub.add_parser("list", help="list the models llmtui can find")
    ls.add_argument("--json", action="store_true")
    add_remote_options(ls)
    ls.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    """The default model, the HF cache's and the settings' model_dirs', as a table or JSON."""
    endpoint = remote_endpoint(args)
    if endpoint is not None:
        return _list_remote(args, endpoint)
    from llmtui.engine.catalog import list_models

    entries = list_models(settings(args).model_dirs)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    rows = [("NAME", "ARCHITECTURE", "SIZE", "SOURCE")]
    rows += [(escape_controls(e.spec), e.architecture, human_size(e.size_bytes), e.where) for e in entries]
    table(rows)
    return 0


def _list_remote(args: argparse.Namespace, endpoint: Any) -> int:
    """The models a server serves (its /v1/models), with what it says of each."""
    from llmtui.backends.openai import context_length, list_models

    entries = list_models(endpoint)
    if args.json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    rows = [("ID", "OWNED BY", "CONTEXT", "SERVER")]
    for e in entries:
        context = context_length(e)
        rows.append((str(e["id"]), str(e.get("owned_by", "")), str(context) if context else "unknown", endpoint.host))
    table(rows)
    return 0
