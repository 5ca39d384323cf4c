"""`llmtui tokenize TEXT`: how a tokenizer cuts text; never loads weights."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from llmtui.cli.options import add_remote_options, add_trust_option, read_text, remote_endpoint, settings, table
from llmtui.core.errors import InvalidValue
from llmtui.core.text import escape_controls

if TYPE_CHECKING:
    from llmtui.core.tokens import Tokenization


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
            results.append(view.tokenize(text, share_gil=False))
    if args.json:
        payload = [r.to_dict() for r in results]
        print(json.dumps(payload if args.compare else payload[0], ensure_ascii=False))
        return 0
    for result in results:
        print(f"{escape_controls(result.view.name)} ({result.view.family}, vocabulary {result.view.size})")
        _print_tokens(result)
        if args.ids:
            print(f"text: {escape_controls(result.text)}")
        print(
            f"{result.count} tokens · {result.chars} chars · {result.bytes} bytes · "
            f"{result.chars_per_token:.2f} chars/token\n"
        )
    return 0


def _print_tokens(result: Tokenization) -> None:
    """The tokens as a table, a line each, written as it is made: a text of millions of tokens costs
    little more than cutting it (each distinct token's cells are made once, the widths from those)."""
    view = result.view
    cells = {t: (str(t), escape_controls(view.pieces[t]), view.display(t)) for t in set(result.ids)}
    header = ("INDEX", "ID", "PIECE", "TEXT", "START", "END", "SPECIAL")
    offset = len(str(len(result.text)))  # no offset is past the text's end
    widths = [
        max(len(header[0]), len(str(len(result.ids) - 1))),
        *(max([len(header[c + 1]), *(len(row[c]) for row in cells.values())]) for c in range(3)),
        max(len(header[4]), offset),
        max(len(header[5]), offset),
    ]
    # Each distinct token's line as a format of its index and offsets, its own cells filled in, padded and
    # encoded once: formatting bytes, not text, halves the time of a million rows (pieces such as `Ġ` make
    # a str two bytes a character, and its encoding on the way out is a second pass). A special token's
    # END is padded for its SPECIAL column; any other line ends at END.
    encoding = sys.stdout.encoding or "utf-8"
    forms = {}
    for token_id, row in cells.items():
        middle = "  ".join(c.ljust(w) for c, w in zip(row, widths[1:4], strict=True)).replace("%", "%%")
        end = f"%-{widths[5]}d  yes" if token_id in view.special_ids else "%d"
        forms[token_id] = f"%-{widths[0]}d  {middle}  %-{widths[4]}d  {end}".encode(encoding, "replace")
    print("  ".join(h.ljust(w) for h, w in zip(header, [*widths, 0], strict=True)).rstrip(), flush=True)
    out = sys.stdout.buffer
    ids, offsets = result.ids, result.offsets
    for lo in range(0, len(ids), 8192):
        hi = lo + 8192
        rows = zip(range(lo, hi), ids[lo:hi], offsets[lo:hi], strict=False)
        out.write(b"\n".join([forms[t] % (i, start, end) for i, t, (start, end) in rows]) + b"\n")


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
