"""`llmtui list`: the models llmtui can find (named ls so that it does not shadow the builtin)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmtui.cli.options import human_size, settings, table
from llmtui.core.text import escape_controls


def add_parser(sub: Any) -> None:
    """Register `list` on the verbs' subparsers."""
    ls = sub.add_parser("list", help="list the models llmtui can find")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    """The default model, the HF cache's and the settings' model_dirs', as a table or JSON."""
    from llmtui.engine.catalog import list_models

    entries = list_models(settings(args).model_dirs)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    rows = [("NAME", "ARCHITECTURE", "SIZE", "SOURCE")]
    rows += [(escape_controls(e.spec), e.architecture, human_size(e.size_bytes), e.where) for e in entries]
    table(rows)
    return 0
