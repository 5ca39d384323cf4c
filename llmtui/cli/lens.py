"""`llmtui lens MODEL TEXT`: the logit lens, what each layer would have said comes next."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmtui.cli.options import MODEL_SPEC_HELP, add_model_options, model_options, read_text, settings, table
from llmtui.core.errors import InvalidValue


def add_parser(sub: Any) -> None:
    """Register `lens` on the verbs' subparsers."""
    lens = sub.add_parser("lens", help="the logit lens: the next token each layer would have chosen")
    lens.add_argument("model", help=MODEL_SPEC_HELP)
    lens.add_argument("text", help="the text, or - to read it from stdin")
    lens.add_argument(
        "--position",
        type=int,
        action="append",
        help="token index to read (repeatable; default: the last; -1 counts back)",
    )
    lens.add_argument("--all", action="store_true", help="every position (with --json)")
    lens.add_argument("--top", type=int, default=5, help="candidates per layer (1 to 20; default 5)")
    lens.add_argument("--json", action="store_true", help="one JSON object per position")
    add_model_options(lens)
    lens.set_defaults(func=cmd_lens)


def cmd_lens(args: argparse.Namespace) -> int:
    """Each layer's top next tokens at the chosen positions, read through the final norm and the head."""
    text = read_text(args.text, "text")
    if not text:
        raise InvalidValue("the text is empty")
    if not 1 <= args.top <= 20:
        raise InvalidValue(f"--top must be 1 to 20, not {args.top}")
    options = model_options(args, settings(args), args.model)

    from llmtui.backends.local import LocalBackend
    from llmtui.engine.lens import Lens

    backend = LocalBackend.load(options)
    lens = Lens(backend.engine.loaded, backend.view)
    ids = backend.view.tokenize(text).ids
    count = len(ids)
    wanted = range(count) if args.all else args.position or [-1]
    positions = [p + count if p < 0 else p for p in wanted]
    steps = lens.lens(ids, positions, args.top)
    if args.json:
        for step in steps:
            print(json.dumps(step.to_dict(), ensure_ascii=False))
        return 0
    for step in steps:
        print(f"after token {step.index} {step.piece} (id {step.token_id}): what each layer would say comes next")
        rows = [("LAYER", "TOP")]
        for layer in step.layers:
            top = "  ".join(f"{backend.view.display(c.token_id)} {c.prob:.2f}" for c in layer.candidates)
            rows.append((str(layer.layer), top))
        table(rows)
    return 0
