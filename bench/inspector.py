"""The tokenizer inspector: a large text to its first screen, and search over a large vocabulary."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import string
import time
from dataclasses import dataclass
from typing import Any

from bench.common import Figure, FrameClock, below, best_of_both, paints, timed


def run(args: argparse.Namespace) -> list[Figure]:
    """The inspector's first screen of a large text, and vocabulary search."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from llmtui.core.tokens import TokenizerView
    from llmtui.engine.specs import load_tokenizer

    figures: list[Figure] = []
    repeat = 1 if args.quick else 3
    backend = load_tokenizer(args.model)
    view = TokenizerView(backend, args.model)
    size = 100_000 if args.quick else 1_000_000
    sample = "Tokenizers cut text into pieces. 分词器把文本切成小块。 Emoji 🙂 too.\n"
    text = (sample * (size // len(sample.encode()) + 1)).encode()[:size].decode(errors="ignore")
    screen = asyncio.run(_first_screen(view, text, 1 if args.quick else 2))
    megabytes = len(text.encode()) / 1e6
    figures.append(
        Figure(
            f"inspector: {megabytes:.1f} MB of text to its first screen",
            screen.seconds,
            "s",
            "tokenizer.encode alone",
            screen.encode_seconds,
            higher_is_better=False,
        )
    )
    figures.append(
        Figure(
            f"inspector: longest UI stall while it shows {megabytes:.1f} MB",
            screen.stall * 1000,
            "ms",
            "same, idle",
            screen.idle_stall * 1000,
            higher_is_better=False,
            target=below(100, "ms", "never frozen (< 100 ms)"),
        )
    )

    # A 150,000-token vocabulary, as large as Qwen's.
    rng = random.Random(0)
    pieces = {"".join(rng.choices(string.ascii_letters + "ĠĊ", k=rng.randint(2, 9))) for _ in range(160_000)}
    vocab = {p: i for i, p in enumerate(sorted(pieces)[:150_000])}
    big = Tokenizer(models.WordLevel(vocab, unk_token=next(iter(vocab))))
    big.pre_tokenizer = pre_tokenizers.Whitespace()
    queries = ["abc", "Ġth", "zz", "Qx"]

    # Tables built for both: the view's tables (as after the app's first search) against a plain list of
    # every piece, built once.
    big_view = TokenizerView(big, "150k")
    big_view.search("warm")
    piece_list = [big.id_to_token(i) or "" for i in range(big_view.size)]

    def ours() -> None:
        for q in queries:
            big_view.search(q)

    def scan() -> None:
        for q in queries:
            [i for i, piece in enumerate(piece_list) if q in piece]

    searched, scanned = best_of_both(timed(ours), timed(scan), repeat)
    figures.append(
        Figure(
            "vocabulary search, 150,000 tokens",
            searched / len(queries) * 1000,
            "ms",
            "scan of a list of every piece",
            scanned / len(queries) * 1000,
            higher_is_better=False,
            extra={"tables": "built for both", "queries": queries},
        )
    )

    # Tables built for neither: the first search of a fresh view builds them; the baseline asks the
    # tokenizer for every piece.
    def first() -> None:
        TokenizerView(big, "150k").search(queries[0])

    def ask() -> None:
        [i for i in range(big_view.size) if queries[0] in (big.id_to_token(i) or "")]

    searched, scanned = best_of_both(timed(first), timed(ask), repeat, warm=False)
    figures.append(
        Figure(
            "vocabulary search, the first (builds its tables)",
            searched * 1000,
            "ms",
            "scan via tokenizer.id_to_token",
            scanned * 1000,
            higher_is_better=False,
            extra={"tables": "built for neither"},
        )
    )
    return figures


@dataclass
class _Screen:
    seconds: float  # text handed over to the frame that paints its chips
    encode_seconds: float  # tokenizer.encode of the same text
    stall: float  # the UI's longest stall meanwhile
    idle_stall: float  # the same over as long idle


async def _first_screen(view: Any, text: str, repeat: int) -> _Screen:
    """The best of ``repeat`` of: text handed to the inspector to the first frame that paints its chips,
    and tokenizer.encode alone; each after one untimed encode of the same text (its caches warm for both).
    Also the longest stall of the UI's event loop while the inspector works, and over as long idle."""
    from textual.app import App, ComposeResult

    from llmtui.tui.collector import QuietCollector
    from llmtui.tui.widgets.inspector import Inspector

    class One(App):
        """The inspector alone, its garbage collected as the workstation collects it (tui/app.py)."""

        def compose(self) -> ComposeResult:
            yield Inspector()

        def on_mount(self) -> None:
            self.collector = QuietCollector()
            self.collector.start()
            self.set_interval(0.25, self.collector.tick)

        def on_unmount(self) -> None:
            self.collector.stop()

    def encode() -> float:
        start = time.perf_counter()
        view.backend.encode(text)
        return time.perf_counter() - start

    encode()
    app = One()
    frames = FrameClock(app)
    shown: list[float] = []
    stalls: list[float] = []
    encoded: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        inspector = app.query_one(Inspector)
        inspector.view = view
        await pilot.pause()
        for _ in range(repeat):
            before = inspector.tokenization
            painted = frames.next_frame(
                lambda update, before=before: (
                    inspector.tokenization is not before and paints(update, inspector.chips.region)
                )
            )
            async with _LoopStalls() as stalled:
                start = time.perf_counter()
                inspector.show_text(text, title="1 MB")
                shown.append(await asyncio.wait_for(painted, 600) - start)
            stalls.append(stalled.longest)
            encoded.append(encode())
        async with _LoopStalls() as stalled:
            await asyncio.sleep(min(shown))
    return _Screen(min(shown), min(encoded), max(stalls), stalled.longest)


class _LoopStalls:
    """While entered: the longest the event loop kept a task that sleeps 5 ms at a time waiting past its
    wake-up (what a key pressed then would wait before anything handled it)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _LoopStalls:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            self.longest = max(self.longest, time.perf_counter() - start - 0.005)
