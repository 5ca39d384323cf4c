"""`llmtui embed MODEL TEXT...`: what the model's embeddings say about texts, words and tokens."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmtui.cli.options import MODEL_SPEC_HELP, add_model_options, model_options, settings, table
from llmtui.core.errors import InvalidValue
from llmtui.core.lens import POOLS
from llmtui.core.text import escape_controls


def add_parser(sub: Any) -> None:
    """Register `embed` on the verbs' subparsers."""
    embed = sub.add_parser("embed", help="texts' vectors and their cosine similarity; a token's neighbours")
    embed.add_argument("model", help=MODEL_SPEC_HELP)
    embed.add_argument("texts", nargs="*", help="texts to compare")
    embed.add_argument("--layer", type=int, help="hidden layer: 0 is the input embeddings (default: the last)")
    embed.add_argument("--pool", choices=POOLS, default="mean", help="a text's vector: mean of its tokens, or the last")
    embed.add_argument("--word", help="compare this word's contextual vector in each text instead")
    embed.add_argument("--neighbors", metavar="TOKEN", help="the nearest tokens to TOKEN (a one-token text, or id:N)")
    embed.add_argument("-k", type=int, default=10, help="how many neighbours (default 10)")
    embed.add_argument("--json", action="store_true")
    add_model_options(embed)
    embed.set_defaults(func=cmd_embed)


def cmd_embed(args: argparse.Namespace) -> int:
    """Similarity of texts (or of a word in them), or a token's neighbours in the vocabulary."""
    if not args.texts and args.neighbors is None:
        raise InvalidValue("give texts to compare, or --neighbors TOKEN")
    if args.k < 1:
        raise InvalidValue(f"-k must be 1 or more, not {args.k}")
    options = model_options(args, settings(args), args.model)

    from llmtui.backends.local import LocalBackend
    from llmtui.engine.lens import Lens

    backend = LocalBackend.load(options)
    lens = Lens(backend.engine.loaded, backend.view)
    if args.neighbors is not None:
        return _neighbours(lens, args)
    result = lens.embed(args.texts, layer=args.layer, pool=args.pool, word=args.word)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 0
    what = f"the word {escape_controls(args.word)!r} in each text" if args.word else f"{result.pool}-pooled texts"
    print(f"{escape_controls(result.model)} · layer {result.layer} · {what} · {result.dim} dimensions")
    names = [f"#{i + 1}" for i in range(len(args.texts))]
    rows = [("", *names, "TOKENS", "TEXT")]
    for i, row in enumerate(result.similarity):
        text = escape_controls(args.texts[i])
        rows.append((names[i], *(f"{c:.3f}" for c in row), str(result.tokens[i]), text[:60]))
    table(rows)
    return 0


def _neighbours(lens: Any, args: argparse.Namespace) -> int:
    spec: str = args.neighbors
    if spec.startswith("id:"):
        try:
            token_id = int(spec[3:])
        except ValueError:
            raise InvalidValue("--neighbors id:N takes a whole number") from None
    else:
        ids = lens.view.tokenize(spec, add_special_tokens=False).ids
        if len(ids) != 1:
            raise InvalidValue(f"{spec!r} is {len(ids)} tokens, not one: give one token, or id:N")
        token_id = ids[0]
    found = {which: lens.neighbours(token_id, args.k, which) for which in ("input", "output")}
    if args.json:
        payload = {
            "token_id": token_id,
            "piece": lens.view.display(token_id),
            **{which: None if n is None else [x.to_dict() for x in n] for which, n in found.items()},
        }
        print(json.dumps(payload, ensure_ascii=False))
        return 0
    for which, neighbours in found.items():
        if neighbours is None:
            print("output rows: tied to the input embeddings (the same neighbours)")
            continue
        print(f"nearest to {lens.view.display(token_id)} (id {token_id}) by cosine of the {which} embedding rows")
        table([("ID", "TOKEN", "COSINE"), *((str(n.token_id), n.piece, f"{n.cosine:.3f}") for n in neighbours)])
    return 0
