"""`llmtui tokenize TEXT`: how a tokenizer cuts text; never loads weights."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmtui.cli.options import add_remote_options, add_trust_option, read_text, remote_endpoint, settings, table
from llmtui.core.errors import InvalidValue
from llmtui.core.text import escape_controls


def add_parser(sub: Any) -> None:
    """Register `tokenize` on the verbs' subparsers."""
    tok = sub.add_parser("tokenize", help="show how a tokenizer cuts text (never loads weights)")
    tok.add_argument("text", help="the text, or - to read it from stdin")
    tok.add_argument("--model", help="model or tokenizer directory (default: the settings' model)")
    tok.add_argument("--ids", action="store_true", help="decode token ids instead of tokenizing text")
    tok.add_argument("--compare", metavar="MODEL2", help="tokenize with a second tokenizer too")
    tok.add_argument("--json", action="store_true")
    add_trust_option(tok)
    add_remote_options(tok)
    tok.set_defaults(func=cmd_tokenize)


def cmd_tokenize(args: argparse.Namespace) -> int:
    """Tokenize text (or decode ids) with one tokenizer, or two side by side with --compare."""
    from llmtui.core.tokens import TokenizerView
    from llmtui.engine.specs import load_tokenizer

    text = read_text(args.text, "text")
    if not text:
        raise InvalidValue("the text is empty")
    endpoint = remote_endpoint(args)
    if endpoint is not None:
        return _tokenize_remote(args, endpoint, text)
    chosen = settings(args)
    specs = [args.model or chosen.model, *([args.compare] if args.compare else [])]
    results = []
    for spec in specs:
        view = TokenizerView(load_tokenizer(spec, trust_remote_code=args.trust_remote_code), spec)
        if args.ids:
            try:
                ids = [int(x) for x in text.replace(",", " ").split()]
            except ValueError:
                raise InvalidValue("--ids takes whole numbers separated by spaces or commas") from None
            results.append(view.from_ids(ids))
        else:
            results.append(view.tokenize(text))
    if args.json:
        payload = [r.to_dict() for r in results]
        print(json.dumps(payload if args.compare else payload[0], ensure_ascii=False))
        return 0
    for result in results:
        print(f"{escape_controls(result.view.name)} ({result.view.family}, vocabulary {result.view.size})")
        rows = [("INDEX", "ID", "PIECE", "TEXT", "START", "END", "SPECIAL")]
        rows += [
            (
                str(t.index),
                str(t.token_id),
                escape_controls(t.piece),
                t.display,
                str(t.start),
                str(t.end),
                "yes" if t.special else "",
            )
            for t in result
        ]
        table(rows)
        if args.ids:
            print(f"text: {escape_controls(result.text)}")
        print(
            f"{result.count} tokens · {result.chars} chars · {result.bytes} bytes · "
            f"{result.chars_per_token:.2f} chars/token\n"
        )
    return 0


def _tokenize_remote(args: argparse.Namespace, endpoint: object, text: str) -> int:
    """Tokenize with a server's own tokenizer (its /tokenize), and say whose tokenizer that is."""
    from llmtui.backends.openai import connect
    from llmtui.backends.served_tokenizer import server_tokenize

    if args.ids or args.compare:
        raise InvalidValue("--ids and --compare work on local tokenizers; with --url, tokenize text")
    backend = connect(endpoint, args.model)  # type: ignore[arg-type]
    try:
        found = server_tokenize(backend, backend.model_id, text)
    finally:
        backend.close()
    pairs = list(enumerate(zip(found.ids, found.pieces, strict=True)))
    if args.json:
        tokens = [{"index": i, "token_id": t, "piece": p} for i, (t, p) in pairs]
        print(json.dumps({"tokenizer": found.whose, "count": len(found.ids), "tokens": tokens}, ensure_ascii=False))
        return 0
    print(escape_controls(found.whose))
    rows = [("INDEX", "ID", "PIECE")]
    rows += [(str(i), str(t), escape_controls(p) if p is not None else "") for i, (t, p) in pairs]
    table(rows)
    print(f"{len(found.ids)} tokens · {len(text)} chars · {len(text.encode())} bytes\n")
    return 0
