"""Scoring a text (`llmtui score`) against one bare forward pass over the same tokens."""

from __future__ import annotations

import argparse
import time

from bench.common import Figure, Target, best_of_both, load, sync


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

        ours, bare = best_of_both(score, forward, 1 if args.quick else 3)
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
    return figures
