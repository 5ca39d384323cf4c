"""The tokenizer inspector: a large text to its first screen, and search over a large vocabulary."""

from __future__ import annotations

import argparse
import asyncio
import random
import string
import time
from typing import Any

from bench.common import Figure, best


def run(args: argparse.Namespace) -> list[Figure]:
    """The inspector's first screen of a large text, and vocabulary search."""
    figures: list[Figure] = []
    from tokenizers import Tokenizer, models, pre_tokenizers

    from llmtui.core.tokens import TokenizerView
    from llmtui.engine import models as llm_models

    backend = llm_models.load_tokenizer(args.model)
    view = TokenizerView(backend, args.model)
    size = 100_000 if args.quick else 1_000_000
    sample = "Tokenizers cut text into pieces. 分词器把文本切成小块。 Emoji 🙂 too.\n"
    text = (sample * (size // len(sample.encode()) + 1)).encode()[:size].decode(errors="ignore")
    first_screen, encode_only = asyncio.run(_inspector_first_screen(view, text))
    figures.append(
        Figure(
            f"inspector: {len(text.encode()) / 1e6:.1f} MB of text to its first screen",
            first_screen,
            "s",
            "tokenizer.encode alone",
            encode_only,
            higher_is_better=False,
        )
    )

    # A 150,000-token vocabulary, as large as Qwen's.
    rng = random.Random(0)
    pieces = {"".join(rng.choices(string.ascii_letters + "ĠĊ", k=rng.randint(2, 9))) for _ in range(160_000)}
    vocab = {p: i for i, p in enumerate(sorted(pieces)[:150_000])}
    big = Tokenizer(models.WordLevel(vocab, unk_token=next(iter(vocab))))
    big.pre_tokenizer = pre_tokenizers.Whitespace()
    big_view = TokenizerView(big, "150k")
    big_view.search("warm")  # builds the display table once, as the app does on the first search
    queries = ["abc", "Ġth", "zz", "Qx"]

    def ours() -> float:
        start = time.perf_counter()
        for q in queries:
            big_view.search(q)
        return (time.perf_counter() - start) / len(queries)

    def naive() -> float:
        start = time.perf_counter()
        for q in queries:
            [i for i in range(big_view.size) if q in (big.id_to_token(i) or "")]
        return (time.perf_counter() - start) / len(queries)

    figures.append(
        Figure(
            "vocabulary search, 150,000 tokens",
            best(ours, 3) * 1000,
            "ms",
            "scan via tokenizer.id_to_token",
            best(naive, 1) * 1000,
            higher_is_better=False,
        )
    )
    return figures


async def _inspector_first_screen(view: Any, text: str) -> tuple[float, float]:
    from textual.app import App, ComposeResult

    from llmtui.tui.widgets.inspector import Inspector

    class One(App):
        def compose(self) -> ComposeResult:
            yield Inspector()

    app = One()
    async with app.run_test(size=(160, 48)) as pilot:
        inspector = app.query_one(Inspector)
        inspector.view = view
        start = time.perf_counter()
        inspector.show_text(text, title="1 MB")
        while inspector.tokenization is None:
            await pilot.pause(0.01)
        await pilot.pause()
        first_screen = time.perf_counter() - start
    start = time.perf_counter()
    view.backend.encode(text)
    return first_screen, time.perf_counter() - start
