"""`llmtui show MODEL`: what a model is and how llmtui will run it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmtui.cli.options import add_trust_option, human_size
from llmtui.core.text import escape_controls


def add_parser(sub: Any) -> None:
    """Register `show` on the verbs' subparsers."""
    show = sub.add_parser("show", help="architecture, size, context, vocabulary, special tokens, chat template")
    show.add_argument("model")
    show.add_argument("--json", action="store_true")
    add_trust_option(show)
    show.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    """Describe a model without loading its weights, as text or JSON."""
    from llmtui.engine.catalog import describe

    info = describe(args.model, trust_remote_code=args.trust_remote_code)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2, ensure_ascii=False))
        return 0
    params = f"{info.parameters / 1e6:.1f}M" if info.parameters else "unknown"
    print(f"  model           {escape_controls(info.name)}")
    print(f"  path            {escape_controls(info.path)}")
    print(f"  architecture    {info.architecture} ({info.model_type})")
    print(f"  parameters      {params}")
    print(f"  context length  {info.context_length or 'unknown'}")
    print(f"  vocabulary      {info.vocab_size}")
    print(f"  weights         {human_size(info.size_bytes)} · {info.fingerprint}")
    print(f"  forward pass    {'plain' if info.forward == 'plain' else 'transformers: ' + info.forward}")
    print("  special tokens")
    for name, token in info.special_tokens.items():
        print(f"    {name:<14}{escape_controls(token)} ({info.special_token_ids[name]})")
    print("  chat template")
    template = info.chat_template or "(none: llmtui uses its plain format)"
    for line in escape_controls(template).splitlines():
        print(f"    {line}")
    return 0
