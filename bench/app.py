"""The app: start-up, keypress latency, the cost of one more token, and a reply decoding in the app.

The backend starter is one parameter (`--start-backend MODULE:FUNCTION`, the app's `start_backend=`): the
same figures measure the engine in the app's process or in a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import CpuClock, Figure, FrameClock, Target, below, cores, paints, percentile

STARTER = "llmtui.backends.process:start_engine_process"  # the workstation as it ships
ROOT = Path(__file__).parent.parent
PROMPT = "Tell me a long story about a dragon who learns to code."
REPLY_TIMEOUT_S = 300  # far beyond any reply here: only a stuck app takes this long


def starter(path: str) -> Any:
    """The backend starter named ``module:function``, as the app's ``start_backend=`` takes it."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def run(args: argparse.Namespace) -> list[Figure]:
    """Start-up, keypress latency, rendering, and decoding inside the running app."""
    from llmtui.core.choices import ModelOptions
    from llmtui.core.sampling import SamplingParams

    options = ModelOptions(args.model, device=args.device, dtype=args.dtype).validate()
    start_backend: str = args.start_backend
    repeat = 1 if args.quick else 3
    figures: list[Figure] = []

    ours: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    for _ in range(repeat):  # interleaved, so drift in the machine's speed hits both alike
        ours.append(_first_paint("llmtui", options.to_dict(), start_backend))
        bare.append(_first_paint("bare", options.to_dict(), start_backend))
    paint = min(o["paint"] for o in ours)
    figures.append(
        Figure(
            "start to first paint",
            paint,
            "s",
            "a bare Textual app",
            min(b["paint"] for b in bare),
            higher_is_better=False,
            target=below(1.0, "s"),
        )
    )
    figures.append(
        Figure("start to model ready (cached)", min(o["ready"] for o in ours), "s", "first paint", paint, False)
    )

    params = SamplingParams(max_new_tokens=8 if args.quick else 128)  # greedy
    with EngineAlone(options.to_dict(), params.to_dict()) as alone:
        work = asyncio.run(
            _workstation(options, starter(start_backend), params, repeat, 5 if args.quick else 40, alone)
        )
    for q, name in ((0.5, "p50"), (0.95, "p95")):
        figures.append(
            Figure(
                f"keypress to screen while streaming, {name}",
                percentile(work.streaming, q) * 1000,
                "ms",
                f"same, idle ({name})",
                percentile(work.idle, q) * 1000,
                higher_is_better=False,
                target=below(50, "ms") if name == "p95" else None,
                extra={"presses": len(work.streaming)},
            )
        )
    render = asyncio.run(_render_cost(5 if args.quick else 100))
    unshown = render.unshown
    figures.append(
        Figure(
            "render one token at token 10,000",
            render.large * 1000,
            "ms",
            "at token 100",
            render.small * 1000,
            higher_is_better=False,
            target=Target("flat (≤ 1.5), every token shown", lambda f: f.ratio <= 1.5 and not any(unshown)),
            extra={"appends": render.appends, "unshown_at_100_and_10000": unshown},
        )
    )
    extra = {"new_tokens": params.max_new_tokens, "start_backend": start_backend}
    figures.append(_decoded("decode rate inside the app", "engine alone, its own process", work, extra))
    spare = _cores() - 1
    if spare and not args.quick:
        # Again with the engine on a core fewer than the machine has, alone and in the app: the UI then has a
        # core of its own, as it has on a GPU server (where the engine's decode loop is one thread). What
        # gap is left is the split's own cost (the socket, the client), not a contest for cores.
        with _engine_threads(spare), EngineAlone(options.to_dict(), params.to_dict()) as alone:
            own = asyncio.run(_workstation(options, starter(start_backend), params, repeat, 0, alone))
        name = f"decode rate inside the app, the UI on a core of its own (engine on {spare} of {spare + 1})"
        figures.append(_decoded(name, f"engine alone, its own process, on {spare}", own, extra))
    process, thread = cores(work.cpu)
    figures.append(
        Figure(
            "UI process CPU while a reply streams",
            process,
            "cores",
            "engine alone, same replies",
            cores(work.alone_cpu)[0],
            higher_is_better=False,
            extra={
                "event_loop_thread_cores": thread,
                "peak_cores": max(work.peaks),
                "machine_cores": _cores(),
                "start_backend": start_backend,
            },
        )
    )
    figures.append(Figure("  of which the UI's event-loop thread", thread, "cores", "", 0.0, False))
    return figures


def _decoded(name: str, baseline: str, work: Workstation, extra: dict[str, Any]) -> Figure:
    """The app's best decode rate against the engine alone's, both on the same greedy tokens."""
    same = work.token_ids == work.alone_token_ids
    return Figure(
        name,
        max(work.rates),
        "tok/s",
        baseline,
        max(work.alone_rates),
        target=Target("≥ 0.95, same tokens", lambda f: f.ratio >= 0.95 and same),
        extra={"same_tokens": same, "rates": work.rates, "alone_rates": work.alone_rates, **extra},
    )


@contextmanager
def _engine_threads(n: int) -> Iterator[None]:
    """Engine processes started meanwhile (the app's, the engine alone) run ``n`` threads: torch reads
    OMP_NUM_THREADS when it starts."""
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(n)
    try:
        yield
    finally:
        if before is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = before


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _first_paint(kind: str, options: dict[str, Any], start_backend: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.first_paint", repr(time.time()), kind, json.dumps(options), start_backend],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    if out.returncode:
        raise RuntimeError(f"first paint ({kind}) failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class EngineAlone:
    """The same replies decoded in a process where no app runs (bench/engine_alone.py), one on each request."""

    def __init__(self, options: dict[str, Any], params: dict[str, Any]) -> None:
        # A file, not a pipe: read only on failure, so the child can never fill it and block.
        self._errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in __exit__
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.engine_alone", json.dumps(options), json.dumps(params), PROMPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
            cwd=ROOT,
        )
        self._ready = False

    def __enter__(self) -> EngineAlone:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._errors.close()

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._errors.seek(0)
            raise RuntimeError(f"the engine alone failed: {self._errors.read().strip()[-2000:]}")
        return json.loads(line)

    def wait_ready(self) -> None:
        """Block until the model is loaded."""
        if not self._ready:
            self._read()
            self._ready = True

    def reply(self) -> dict[str, Any]:
        """Decode one reply there and return its rate, token ids and CPU window. Blocks the caller: in
        the app's event loop that keeps the app from running while the engine decodes alone."""
        self.wait_ready()
        assert self._process.stdin is not None
        self._process.stdin.write("reply\n")
        self._process.stdin.flush()
        return self._read()


@dataclass
class Workstation:
    """What one session of the app measured."""

    idle: list[float] = field(default_factory=list)  # keypress to frame, seconds, no reply streaming
    streaming: list[float] = field(default_factory=list)  # the same while a reply streams
    rates: list[float] = field(default_factory=list)  # decode rate of each timed reply
    token_ids: list[int] = field(default_factory=list)  # the last timed reply's tokens
    cpu: list[tuple[float, float, float]] = field(default_factory=list)  # per reply, first token to end
    peaks: list[float] = field(default_factory=list)  # the highest process share between two samples
    alone_rates: list[float] = field(default_factory=list)  # the same for the engine alone, interleaved
    alone_token_ids: list[int] = field(default_factory=list)
    alone_cpu: list[tuple[float, float, float]] = field(default_factory=list)


async def _workstation(
    options: Any, start_backend: Any, params: Any, repeat: int, presses: int, alone: EngineAlone
) -> Workstation:
    """One session of the app: keys while idle; ``repeat`` timed replies, each beside one of the engine
    alone's (both after one untimed reply); then keys while a long reply streams."""
    from textual import events

    from llmtui.core.sampling import SamplingParams
    from llmtui.tui.app import LlmtuiApp

    result = Workstation()
    app = LlmtuiApp(options=options, start_backend=start_backend)
    frames = FrameClock(app)
    async with app.run_test(size=(160, 48)) as pilot:
        while app.backend is None:
            if app.status.state == "error":
                raise RuntimeError(f"the app could not load {options.model}: {app.status.detail}")
            await pilot.pause(0.05)
        alone.wait_ready()  # its loading would take the CPU from the app's keys
        composer = app.query_one("#composer")

        async def press_times() -> list[float]:
            # Pilot.press waits for the app to be idle, which it never is while streaming; post the key as
            # the terminal driver does and time it to the first frame that paints the composer holding it.
            times = []
            for _ in range(presses):
                before, region = composer.text, composer.region
                shown = frames.next_frame(
                    lambda update, before=before, region=region: composer.text != before and paints(update, region)
                )
                start = time.perf_counter()
                app.post_message(events.Key("x", "x"))
                times.append(await asyncio.wait_for(shown, 10) - start)
                await asyncio.sleep(0.02)
            composer.text = ""
            return times

        def alive(deadline: float, what: str) -> None:
            # An app that died (an exception in a callback) leaves its reply unstarted or unfinished: say so
            # rather than wait for it until the caller's timeout.
            if not app.is_running:
                raise RuntimeError(f"the app stopped {what}")
            if time.monotonic() > deadline:
                # What the app was doing, for a hang that will not come back on demand (CI met one once).
                replies, status, turns = app.workstation.replies, app.status, app.conversation.turns
                raise RuntimeError(
                    f"the app took too long {what}: status {status.state!r} {status.detail!r}, "
                    f"reply in flight {replies.busy} (turn {replies.live_turn}), "
                    f"{len(app.generation.events) if app.generation is not None else 'no'} events, "
                    f"last turn {turns[-1].role if turns else None!r}"
                )

        def last_version() -> Any:
            turns = app.conversation.turns
            return turns[-1].version if turns else None

        def ended(before: Any) -> bool:
            """A reply asked for after ``before`` (the last version then) has come and gone: a short reply
            of a small model can start and end between two looks at app.generation."""
            version = last_version()
            return version is not before and version.stats is not None and not app.workstation.replies.busy

        async def reply_started(before: Any) -> Any:
            deadline = time.monotonic() + REPLY_TIMEOUT_S
            while (app.generation is None or not app.generation.events) and not ended(before):
                alive(deadline, "before a reply began")
                await asyncio.sleep(0.002)
            return app.generation

        async def app_reply(ask: Callable[[], Any], timed: bool = True) -> None:
            """Ask for a reply and wait for its end; the UI's CPU is counted from the asking (the pane shown,
            the reply started) to the end."""
            before = last_version()
            clock = CpuClock()
            clock.sample()
            ask()
            deadline = time.monotonic() + REPLY_TIMEOUT_S
            while not ended(before):
                alive(deadline, "before the reply ended")
                await asyncio.sleep(0.02)
                clock.sample()
            version = app.conversation.turns[-1].version
            if timed and version.stats is not None:
                result.rates.append(version.stats.tokens_per_second)
                result.cpu.append(clock.totals())
                result.peaks.append(clock.peak())
                result.token_ids = list(version.token_ids)

        def alone_reply() -> None:
            reply = alone.reply()
            result.alone_rates.append(reply["rate"])
            result.alone_cpu.append(tuple(reply["cpu"]))
            result.alone_token_ids = reply["token_ids"]

        result.idle = await press_times()
        app.params = params
        composer.text = PROMPT
        await app_reply(composer.action_submit, timed=False)  # both warm up, untimed
        alone.reply()
        for i in range(repeat):  # interleaved in alternating order, so drift hits both alike
            if i % 2:
                alone_reply()
            await app_reply(app.workstation.action_regenerate)  # the same prompt again: the same greedy tokens
            if not i % 2:
                alone_reply()

        app.params = SamplingParams(max_new_tokens=4000, stop=())
        composer.text = "Tell me a very long story."
        before = last_version()
        composer.action_submit()
        generation = await reply_started(before)
        composer.focus()
        result.streaming = await press_times()
        if not generation.events or generation.stats is not None:
            raise RuntimeError("the reply ended before the keys were timed; the figure would be of an idle app")
        generation.stop()
        while app.generation is not None:
            await pilot.pause(0.05)
    return result


@dataclass
class Render:
    """The median time from one more token to the frame that shows it, with 100 and 10,000 before it."""

    small: float
    large: float
    appends: int
    unshown: tuple[int, int]  # tokens no frame showed within UNSHOWN seconds (counted as UNSHOWN)


UNSHOWN = 0.25  # seconds: 15 frames at 60 a second; a token not painted by then is not being shown


async def _render_cost(appends: int) -> Render:
    """One more token appended to the token stream, timed to the first frame that paints the stream."""
    from textual.app import App, ComposeResult

    from llmtui.core.events import Candidate, TokenEvent
    from llmtui.tui.widgets.token_stream import TokenChips

    def event(i: int) -> TokenEvent:
        return TokenEvent(i, i % 500, f" w{i % 97}", random.random(), 1.0, 0, 1.0, (Candidate(1, "a", 0.5),), 0.0)

    class Stream(App):
        def compose(self) -> ComposeResult:
            yield TokenChips()

    medians: list[float] = []
    unshown: list[int] = []
    for existing in (100, 10_000):
        app = Stream()
        frames = FrameClock(app)
        async with app.run_test(size=(120, 40)) as pilot:
            chips = app.query_one(TokenChips)
            chips.show([event(i) for i in range(existing)])
            chips.scroll_end(animate=False, immediate=True, x_axis=False)  # following, as while streaming
            await pilot.pause()
            times = []
            missed = 0
            for i in range(appends):
                shown = frames.next_frame(lambda update, chips=chips: paints(update, chips.region))
                start = time.perf_counter()
                chips.append([event(existing + i)])
                try:
                    times.append(await asyncio.wait_for(shown, UNSHOWN) - start)
                except TimeoutError:
                    times.append(UNSHOWN)
                    missed += 1
            medians.append(statistics.median(times))
            unshown.append(missed)
    return Render(medians[0], medians[1], appends, (unshown[0], unshown[1]))
