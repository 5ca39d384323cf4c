"""Long conversations: opening one of 10,000 messages, its memory, and scrolling it, against a short one.

Each size runs in a fresh process (`python -m bench.conversation MESSAGES`), so that its peak memory is
its own. The app runs without a model: these figures are the conversation pane's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, FrameClock, below, paints, percentile

ROOT = Path(__file__).parent.parent
LONG = 10_000
SHORT = 20
PRESSES = 20
SKIM_S = 0.25  # between page keys when skimming
TIMEOUT_S = 120


def run(args: argparse.Namespace) -> list[Figure]:
    """Open a long and a short conversation in the workstation; time the first screen, the memory, and
    keys that scroll."""
    presses = 4 if args.quick else PRESSES
    long = _child(500 if args.quick else LONG, presses)
    short = _child(SHORT, presses)
    n = f"{500 if args.quick else LONG:,}"
    baseline = f"a {SHORT}-message one"
    figures = [
        Figure(
            f"open a {n}-message conversation: first screen",
            long["open_s"],
            "s",
            baseline,
            short["open_s"],
            higher_is_better=False,
            target=below(1.0, "s"),
            extra={"drawn_messages": long["drawn"]},
        ),
        Figure(
            f"open a {n}-message conversation: more memory",
            long["rss_mb"] - short["rss_mb"],
            "MB",
            "",
            0.0,
            higher_is_better=False,
            target=below(300, "MB"),
            extra={"peak_rss_mb": long["rss_mb"], "baseline_peak_rss_mb": short["rss_mb"]},
        ),
    ]
    for key, how in (("up", "up, held"), ("pageup", "pageup, held"), ("pageup_skim", f"pageup every {SKIM_S} s")):
        figures.append(
            Figure(
                f"scroll a {n}-message conversation ({how}), keypress p95",
                percentile(long[key], 0.95) * 1000,
                "ms",
                f"{baseline} (p95)",
                percentile(short[key], 0.95) * 1000,
                higher_is_better=False,
                target=below(50, "ms"),
                extra={"presses": len(long[key]), "p50_ms": percentile(long[key], 0.5) * 1000},
            )
        )
    return figures


def _child(messages: int, presses: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.conversation", str(messages), str(presses)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    if out.returncode:
        raise RuntimeError(f"the conversation benchmark ({messages}) failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def conversation(messages: int) -> Any:
    """A conversation of ``messages`` turns, replies in Markdown, of varied lengths."""
    from llmtui.core.conversation import Conversation, Turn, Version

    c = Conversation(id=f"long-{messages}", title="long")
    for i in range(messages):
        if i % 2 == 0:
            c.turns.append(Turn("user", [Version(f"Question {i}: how would I do thing number {i}? " * (1 + i % 3))]))
        else:
            reply = f"Here is **answer** {i}.\n\n- one point\n- another point\n\n```python\nprint({i})\n```\n"
            c.turns.append(Turn("assistant", [Version(reply + "More words here. " * (i % 30))]))
    return c


def _no_model(options: Any, progress: Any) -> Any:
    from llmtui.core.errors import LlmtuiError

    raise LlmtuiError("no model in this benchmark: the pane alone is measured")


async def _measure(messages: int, presses: int) -> dict[str, Any]:
    import tempfile

    from textual import events

    from llmtui.store.conversations import ConversationStore
    from llmtui.tui.app import LlmtuiApp
    from llmtui.tui.widgets.conversation import ConversationView

    tmp = tempfile.TemporaryDirectory(prefix="llmtui-bench-")
    store = ConversationStore(Path(tmp.name) / "conversations")
    app = LlmtuiApp(start_backend=_no_model, store=store)
    frames = FrameClock(app)
    result: dict[str, Any] = {}
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(0.2)
        pane = app.query_one(ConversationView)
        loaded = conversation(messages)

        def last_shown() -> bool:
            return messages - 1 in pane.shown_turns()

        start = time.perf_counter()
        app.workstation.open_conversation(loaded)
        while not last_shown():
            if not app.is_running or time.perf_counter() - start > TIMEOUT_S:
                raise RuntimeError(f"the last of {messages} messages was not shown within {TIMEOUT_S} s")
            await asyncio.sleep(0.002)
        result["open_s"] = time.perf_counter() - start
        result["drawn"] = pane.drawn
        await pilot.pause(0.5)
        pane.focus()
        await pilot.pause(0.2)  # the footer shows the pane's keys: that frame is the focus change's, not a key's
        # Keys at the terminal's repeat rate (held down), and page keys at a skimming reader's pace.
        paced = (("up", "up", presses, 0.03), ("pageup", "pageup", presses, 0.03))
        paced += (("pageup_skim", "pageup", max(1, presses // 4), SKIM_S),)
        for name, key, count, gap in paced:
            await pilot.press("end")
            await pilot.pause(0.5)  # from the end each time, its neighbourhood built
            times = []
            for _ in range(count):
                before = pane.scroll_y
                shown = frames.next_frame(lambda update: paints(update, pane.region))
                started = time.perf_counter()
                app.post_message(events.Key(key, None))
                try:
                    times.append(await asyncio.wait_for(shown, 5) - started)
                except TimeoutError:
                    if pane.scroll_y == before == 0:
                        break  # at the top: nothing to paint
                    times.append(5.0)  # a key that painted nothing: counted as 5 s, and no more keys
                    break
                await asyncio.sleep(gap)
            result[name] = times or [0.0]
        app.exit()
    result["rss_mb"] = _peak_rss_mb()
    tmp.cleanup()
    return result


def _peak_rss_mb() -> float:
    """This process's peak resident memory. Linux keeps getrusage's maximum across exec, so a child of a
    process that had loaded a model would report the model; /proc's high-water mark is the address space's own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_measure(int(sys.argv[1]), int(sys.argv[2])))))
