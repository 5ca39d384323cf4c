"""Time to first token for prompts of several lengths, against one bare forward pass over the prompt."""

from __future__ import annotations

import argparse
import time

from bench.common import Figure, best_of_both, load, sync


def run(args: argparse.Namespace) -> list[Figure]:
    """One figure per prompt length."""
    import torch

    from llmtui.core.sampling import SamplingParams
    from llmtui.engine.generation import Engine

    loaded = load(args.model, args.device, args.dtype)
    # The baseline runs the very model the engine prefills with: the plain pass re-lays the weights (on the
    # CPU, input-major) and transformers' forward then reads that layout too, so both read the same bytes.
    model = loaded.model
    engine = Engine(loaded)
    figures: list[Figure] = []
    lengths = (100,) if args.quick else (100, 1000, 4000)
    filler = "The quick brown fox jumps over the lazy dog. "
    for length in lengths:
        words = (filler * (length // 4 + 1)).split()
        text = " ".join(words)
        token_ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"][: length - 20]
        text = loaded.tokenizer.decode(token_ids)
        p = engine.render([{"role": "user", "content": text}])
        pids = torch.tensor([p.ids], device=loaded.device)

        def ttft(p=p) -> float:
            generation = engine.generate(p, SamplingParams(max_new_tokens=1))
            list(generation)
            return generation.stats.ttft_s

        def prefill(pids=pids) -> float:
            sync(loaded.device)
            start = time.perf_counter()
            with torch.inference_mode():
                model(input_ids=pids, logits_to_keep=1)
            sync(loaded.device)
            return time.perf_counter() - start

        # No separate warm-up: a 4,000-token prefill takes seconds; the alternating order warms both alike.
        ours, bare = best_of_both(ttft, prefill, 2, warm=False)
        figures.append(
            Figure(
                f"time to first token, {len(p.ids)}-token prompt",
                ours,
                "s",
                "one bare forward pass, same weights",
                bare,
                higher_is_better=False,
                extra={"weights": f"{loaded.forward.name} forward's layout"},
            )
        )
    return figures
