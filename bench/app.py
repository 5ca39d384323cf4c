"""The app: start-up, keypress latency while a reply streams, the cost of one more token, decoding in the app."""

from __future__ import annotations

import argparse
import ast
import asyncio
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Figure

FIRST_PAINT = Path(__file__).with_name("first_paint.py")


def _run_first_paint(kind: str, model: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(FIRST_PAINT), repr(time.time()), kind, model],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> list[Figure]:
    """Start-up, keypress latency, rendering and decoding inside the running app."""
    figures: list[Figure] = []
    repeat = 1 if args.quick else 3
    ours = [_run_first_paint("llmtui", args.model) for _ in range(repeat)]
    bare = [_run_first_paint("bare", args.model) for _ in range(repeat)]
    figures.append(
        Figure(
            "start to first paint",
            min(o["paint"] for o in ours),
            "s",
            "a bare Textual app",
            min(b["paint"] for b in bare),
            higher_is_better=False,
            target="< 1 s",
        )
    )
    figures.append(
        Figure(
            "start to model ready (cached)",
            min(o["ready"] for o in ours),
            "s",
            "first paint",
            min(o["paint"] for o in ours),
            higher_is_better=False,
        )
    )
    latency, idle = asyncio.run(_keypress_latency(args))
    figures.append(
        Figure(
            "keypress to screen while streaming, p50",
            statistics.median(latency) * 1000,
            "ms",
            "same, idle",
            statistics.median(idle) * 1000,
            higher_is_better=False,
        )
    )
    p95 = sorted(latency)[int(0.95 * (len(latency) - 1))]
    figures.append(
        Figure(
            "keypress to screen while streaming, p95",
            p95 * 1000,
            "ms",
            "same, idle (p95)",
            sorted(idle)[int(0.95 * (len(idle) - 1))] * 1000,
            higher_is_better=False,
            target="< 50 ms",
        )
    )
    small, large = asyncio.run(_render_cost(args))
    figures.append(
        Figure(
            "render one token at token 10,000",
            large * 1000,
            "ms",
            "at token 100",
            small * 1000,
            higher_is_better=False,
            target="flat (≈1)",
        )
    )
    stream_app, stream_engine = asyncio.run(_stream_in_app(args))
    figures.append(Figure("decode rate inside the app", stream_app, "tok/s", "engine alone, same run", stream_engine))
    return figures


async def _keypress_latency(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    from textual import events

    from llmtui.core.choices import ModelOptions
    from llmtui.core.sampling import SamplingParams
    from llmtui.tui.app import LlmtuiApp

    app = LlmtuiApp(options=ModelOptions(args.model, device=args.device, dtype=args.dtype))
    presses = 5 if args.quick else 40
    async with app.run_test(size=(160, 48)) as pilot:
        while app.backend is None:
            await pilot.pause(0.05)
        composer = app.query_one("#composer")

        async def press_times() -> list[float]:
            # Pilot.press waits for the app to be idle, which it never is while streaming; post the key
            # as the terminal driver does and time it until the composer has it, plus one frame to paint.
            times = []
            for _ in range(presses):
                before = composer.text
                start = time.perf_counter()
                app.post_message(events.Key("x", "x"))
                while composer.text == before:
                    await asyncio.sleep(0.0005)
                times.append(time.perf_counter() - start + 1 / 60)
                await asyncio.sleep(0.02)
            composer.text = ""
            return times

        idle = await press_times()
        app.params = SamplingParams(max_new_tokens=4000, stop=())
        composer.text = "Tell me a very long story."
        composer.action_submit()
        while app.generation is None:
            await pilot.pause(0.01)
        while not app.generation.events:
            await pilot.pause(0.01)
        composer.focus()
        streaming = await press_times()
        app.generation and app.generation.stop()
        while app.generation is not None:
            await pilot.pause(0.05)
    return streaming, idle


async def _render_cost(args: argparse.Namespace) -> tuple[float, float]:
    """The cost of one more token in the token stream when it already holds 100 or 10,000."""
    from textual.app import App, ComposeResult

    from llmtui.core.events import Candidate, TokenEvent
    from llmtui.tui.widgets.token_stream import TokenChips

    def event(i: int) -> TokenEvent:
        return TokenEvent(i, i % 500, f" w{i % 97}", random.random(), 1.0, 0, 1.0, (Candidate(1, "a", 0.5),), 0.0)

    class Stream(App):
        def compose(self) -> ComposeResult:
            yield TokenChips()

    results = []
    for existing in (100, 10_000):
        app = Stream()
        async with app.run_test(size=(120, 40)) as pilot:
            chips = app.query_one(TokenChips)
            chips.show([event(i) for i in range(existing)])
            await pilot.pause()
            times = []
            for i in range(20 if args.quick else 200):
                start = time.perf_counter()
                chips.append([event(existing + i)])
                await pilot.pause()
                times.append(time.perf_counter() - start)
            results.append(statistics.median(times))
    return results[0], results[1]


async def _stream_in_app(args: argparse.Namespace) -> tuple[float, float]:
    from llmtui.core.choices import ModelOptions
    from llmtui.core.sampling import SamplingParams
    from llmtui.tui.app import LlmtuiApp

    n = 8 if args.quick else 64
    app = LlmtuiApp(options=ModelOptions(args.model, device=args.device, dtype=args.dtype))
    async with app.run_test(size=(200, 50)) as pilot:
        while app.backend is None:
            await pilot.pause(0.05)
        params = SamplingParams(max_new_tokens=n)
        text = "Tell me a long story about a dragon who learns to code."
        prompt = app.backend.render([{"role": "user", "content": text}])
        alone = await asyncio.to_thread(lambda: _rate(app.backend.generate(prompt, params)))
        app.params = params
        composer = app.query_one("#composer")
        composer.text = text
        composer.action_submit()
        while app.generation is None:
            await pilot.pause(0.01)
        while app.generation is not None:
            await pilot.pause(0.05)
        stats = app.conversation.turns[-1].version.stats
    return stats.tokens_per_second, alone


def _rate(generation: Any) -> float:
    list(generation)
    return generation.stats.tokens_per_second
