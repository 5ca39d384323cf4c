"""`llmtui score MODEL TEXT`: how surprised the model is by every token of a text it did not write."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from llmtui.cli.options import (
    MODEL_SPEC_HELP,
    add_model_options,
    add_remote_options,
    open_backend,
    read_text,
    settings,
    table,
)
from llmtui.core.errors import InvalidValue
from llmtui.core.text import visible

TOP_SHOWN = 3  # candidates in the table (--json gives --top)


def add_parser(sub: Any) -> None:
    """Register `score` on the verbs' subparsers."""
    score = sub.add_parser("score", help="the probability of every token of a text, and its perplexity")
    score.add_argument("model", help=MODEL_SPEC_HELP)
    score.add_argument("text", help="the text, or - to read it from stdin")
    score.add_argument("--chat", action="store_true", help="score the text as a user turn inside the chat template")
    score.add_argument("--top", type=int, default=5, help="candidates per token (0 to 20; default 5)")
    score.add_argument(
        "--stride", type=int, help="tokens between windows when the text is longer than the context (half of it)"
    )
    score.add_argument("--json", action="store_true", help="one JSON object per token, then one with the summary")
    add_model_options(score)
    add_remote_options(score)
    score.set_defaults(func=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    """Score a text: a table (or JSON lines) of its tokens, then its perplexity and bits per byte."""
    from llmtui.core.score import ScoreSummary, surprisal_bits, windows

    text = read_text(args.text, "text")
    if not text:
        raise InvalidValue("the text is empty")
    if not 0 <= args.top <= 20:
        raise InvalidValue(f"--top must be 0 to 20, not {args.top}")
    if args.stride is not None and args.stride < 1:
        raise InvalidValue(f"--stride must be 1 or more, not {args.stride}")
    backend = open_backend(args, settings(args))
    view = backend.view  # None for a server whose model's tokenizer is not on this machine
    # --chat: as the model meets a user's message, the template's tokens around it scored too.
    if args.chat:
        ids = list(backend.render([{"role": "user", "content": text}]).ids)
    elif view is not None:
        ids = view.tokenize(text).ids
    else:
        from llmtui.backends.served_tokenizer import server_tokenize

        ids = list(server_tokenize(backend, backend.model_id, text).ids)  # type: ignore[arg-type]
    if len(ids) < 2:
        raise InvalidValue("the text is one token: there is nothing to score after the first")
    passes = windows(len(ids), backend.info.context_length, args.stride)
    if len(passes) > 1:
        print(
            f"llmtui: note: {len(ids)} tokens do not fit the context of {backend.info.context_length}: scored in "
            f"{len(passes)} windows, each token seeing at least {passes[0].end - passes[1].start} before it",
            file=sys.stderr,
        )
    events = backend.score(ids, args.top, stride=args.stride)
    summary = ScoreSummary.of(events, passes)
    if args.json:
        for event in events:
            print(json.dumps(event.to_dict(), ensure_ascii=False))
        print(json.dumps(summary.to_dict()))
        return 0

    def shown(token_id: int | None, piece: str) -> str:
        return view.display(token_id) if view is not None and token_id is not None else visible(piece)

    rows = [("INDEX", "ID", "TEXT", "PROB", "RANK", "BITS", "ENTROPY", "TOP")]
    for e in events:
        top = "  ".join(f"{shown(c.token_id, c.piece)} {c.prob:.2f}" for c in e.candidates[:TOP_SHOWN])
        rows.append(
            (
                str(e.index),
                str(e.token_id),
                shown(e.token_id, e.text),
                f"{e.prob:.4f}",
                "?" if e.rank is None else str(e.rank),  # a server's echoed top shows no rank
                f"{surprisal_bits(e.prob):.2f}",
                "?" if e.entropy is None else f"{e.entropy:.2f}",
                top,
            )
        )
    table(rows)
    print(
        f"{summary.tokens} tokens scored · perplexity {summary.perplexity:.2f} · "
        f"{summary.bits_per_byte:.3f} bits per byte"
    )
    return 0
