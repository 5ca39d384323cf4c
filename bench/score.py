"""The model lens's speed: scoring a text (`llmtui score`) against one bare forward pass over the same
tokens, and a token's neighbours in a large vocabulary."""

from __future__ import annotations

import argparse
import time

from bench.common import Figure, Target, below, best_of_both, load, sync


def run(args: argparse.Namespace) -> list[Figure]:
    """One figure per text length: Engine.score against the model's own forward pass, full logits."""
    import torch

    from llmtui.engine.generation import Engine

    loaded = load(args.model, args.device, args.dtype)
    engine = Engine(loaded)
    filler = "The quick brown fox jumps over the lazy dog, and the dog, unbothered, sleeps on. "
    figures: list[Figure] = []
    for length in (64,) if args.quick else (256, 2000):
        ids = loaded.tokenizer(filler * (length // 10 + 1), add_special_tokens=False)["input_ids"][:length]
        tensor = torch.tensor([ids], device=loaded.device)

        def score(ids=ids) -> float:
            sync(loaded.device)
            start = time.perf_counter()
            engine.score(ids, top=10)
            sync(loaded.device)
            return time.perf_counter() - start

        def forward(tensor=tensor) -> float:
            sync(loaded.device)
            start = time.perf_counter()
            with torch.inference_mode():
                loaded.model(tensor, use_cache=False)  # every position's logits, as scoring needs
            sync(loaded.device)
            return time.perf_counter() - start

        # A short text's half second is noisier than a long one's seconds: more runs of both.
        ours, bare = best_of_both(score, forward, 1 if args.quick else 5 if length < 1000 else 3)
        figures.append(
            Figure(
                f"score a {len(ids)}-token text (top 10 at every token)",
                ours,
                "s",
                "one bare forward pass over it",
                bare,
                higher_is_better=False,
                target=Target("≤ 1.1", lambda f: f.ratio <= 1.1),
            )
        )
    figures.append(neighbours(args))
    return figures


# Qwen2-7B's vocabulary and width: the "150,000-token vocabulary" at a real model's shape.
NEIGHBOUR_ROWS, NEIGHBOUR_DIM = 151_936, 3_584


def neighbours(args: argparse.Namespace) -> Figure:
    """Nearest tokens by cosine (engine.neighbours, its index built first, as the first query builds it)
    in an embedding table of a real model's shape (random values: the time does not depend on them),
    against the bare matrix-vector product over the table that a plain search is."""
    import torch

    from llmtui.engine.neighbours import NeighbourIndex

    rows = NEIGHBOUR_ROWS // 16 if args.quick else NEIGHBOUR_ROWS
    table = torch.randn(rows, NEIGHBOUR_DIM)
    started = time.perf_counter()
    index = NeighbourIndex.build(table, coded=True)
    built = time.perf_counter() - started
    unit = torch.nn.functional.normalize(table, dim=-1)

    def ours() -> float:
        start = time.perf_counter()
        index.nearest(1234, 10)
        return time.perf_counter() - start

    def product() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            unit @ unit[1234]
        return time.perf_counter() - start

    found, bare = best_of_both(ours, product, 1 if args.quick else 5)
    return Figure(
        f"neighbours of a token in a {rows:,}-token vocabulary ({NEIGHBOUR_DIM} dims)",
        found * 1000,
        "ms",
        "the bare matrix-vector product",
        bare * 1000,
        higher_is_better=False,
        target=below(50, "ms"),
        extra={"index_build_s": built, "certified": index.certified(1234, 10) is not None},
    )
