"""`llmtui show MODEL`: what a model is and how llmtui will run it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmtui.cli.options import add_remote_options, add_trust_option, human_size, remote_endpoint
from llmtui.core.text import escape_controls


def add_parser(sub: Any) -> None:
    """Register `show` on the verbs' subparsers."""
    show = sub.add_parser("show", help="architecture, size, context, vocabulary, special tokens, chat template")
    show.add_argument("model", help="a model spec; with --url, the server's model id")
    show.add_argument("--json", action="store_true")
    add_trust_option(show)
    add_remote_options(show)
    show.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    """Describe a model without loading its weights, as text or JSON."""
    endpoint = remote_endpoint(args)
    if endpoint is not None:
        return _show_remote(args, endpoint)
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


def _show_remote(args: argparse.Namespace, endpoint: Any) -> int:
    """What a server says of one of its models; where it is llmtui serve, all that `show` says of a local one."""
    from llmtui.backends.openai import context_length, list_models
    from llmtui.core.errors import InvalidValue
    from llmtui.core.wire import EXTENSION

    entries = list_models(endpoint)
    entry = next((e for e in entries if e["id"] == args.model), None)
    if entry is None:
        served = ", ".join(repr(e["id"]) for e in entries[:10]) or "none"
        raise InvalidValue(f"{endpoint.host} has no model {args.model!r}; it serves {served}")
    if args.json:
        print(json.dumps(entry, indent=2, ensure_ascii=False))
        return 0
    context = context_length(entry)
    print(f"  model           {escape_controls(str(entry['id']))}")
    print(f"  server          {escape_controls(endpoint.public_url)}")
    print(f"  owned by        {escape_controls(str(entry.get('owned_by', 'unknown')))}")
    print(f"  context length  {context or 'unknown (the server does not say)'}")
    described = entry.get(EXTENSION)
    if isinstance(described, dict) and isinstance(described.get("model"), dict):
        model = described["model"]
        print(f"  architecture    {escape_controls(str(model.get('architecture')))}")
        print(f"  vocabulary      {model.get('vocab_size')}")
        print(f"  device          {escape_controls(str(described.get('device')))} · {described.get('weights')}")
    return 0
