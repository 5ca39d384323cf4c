"""Exactness, free-running: the engine's greedy replies against transformers' `generate` on weights as loaded.

The decode suite checks exactness teacher-forced (both see the same context at every step); here each side
runs on its own output, so one token that differs anywhere shows as a departure from then on.
"""

from __future__ import annotations

import argparse

from bench.common import Figure, Target, load

# English, Chinese and code, as users ask: 20 prompts.
PROMPTS = (
    "What is the capital of France?",
    "Explain photosynthesis in two sentences.",
    "Write a haiku about the sea.",
    "Give me three tips for learning a new language.",
    "What is the difference between weather and climate?",
    "Summarise the plot of Romeo and Juliet.",
    "Why is the sky blue?",
    "List the planets of the solar system in order.",
    "你是谁?",
    "请用一句话介绍北京。",
    "什么是机器学习？",
    "写一首关于月亮的短诗。",
    "如何学习编程？",
    "Write a Python function that reverses a list.",
    "Write a SQL query that counts the rows of a table named users.",
    "Write a bash one-liner that counts the lines of every .py file.",
    "Explain what this code does: print(sum(range(10)))",
    "Write a JavaScript function that checks whether a number is prime.",
    "Fix the bug: def add(a, b): return a - b",
    "Write a Rust function that returns the largest element of a slice.",
)
QUICK_PROMPTS = (PROMPTS[0], PROMPTS[8], PROMPTS[13])  # one of each kind


def run(args: argparse.Namespace) -> list[Figure]:
    """One figure: how many prompts give token-for-token the same greedy reply, with every token compared."""
    import torch

    from llmtui.core.sampling import SamplingParams
    from llmtui.engine.generation import Engine

    # The reference is an untouched load: the engine's own load re-lays its weights for the plain pass.
    reference = load(args.model, args.device, args.dtype, forward="transformers")
    engine = Engine(load(args.model, args.device, args.dtype))
    prompts = QUICK_PROMPTS if args.quick else PROMPTS
    n = 16 if args.quick else 64
    identical, tokens, departures = 0, 0, {}
    with torch.inference_mode():
        for text in prompts:
            prompt = engine.render([{"role": "user", "content": text}])
            ours = [e.token_id for e in engine.generate(prompt, SamplingParams(max_new_tokens=n))]
            ids = torch.tensor([prompt.ids], device=reference.device)
            out = reference.model.generate(ids, do_sample=False, max_new_tokens=n, top_k=None, top_p=None)
            theirs = out[0, len(prompt.ids) :].tolist()  # up to and with EOS, as the engine's reply
            tokens += len(theirs)
            if ours == theirs:
                identical += 1
            else:
                departures[text] = next(
                    (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
                    min(len(ours), len(theirs)),
                )
    total = len(prompts)
    return [
        Figure(
            f"greedy replies as transformers' generate, free-running, {len(prompts)} prompts",
            identical,
            "prompts",
            "",
            0.0,
            target=Target(f"all {total}, {tokens} tokens", lambda f: f.value == total),
            extra={
                "prompts": len(prompts),
                "tokens": tokens,
                "engine_forward": engine.forward.name,
                "first_departure": departures,
            },
        )
    ]
