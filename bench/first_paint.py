"""Run by the app suite in a fresh process: `python bench/first_paint.py START KIND MODEL`.

Prints a dict of seconds since START (the parent's time.time() when it launched this process): "paint", the
first composed frame of the main screen, and for KIND "llmtui" also "ready", when the model is loaded.
KIND "bare" runs a bare Textual app instead, the baseline.
"""

import sys
import time

start = float(sys.argv[1])
from textual.app import App  # noqa: E402 - timed from the process's start, so imported after the clock

stamps = {}
display = App._display


def first_frame(self, screen, renderable):
    # The first composed frame of the main screen (headless mode composes it, then skips the write).
    if renderable is not None and "paint" not in stamps:
        stamps["paint"] = time.time() - start
    return display(self, screen, renderable)


App._display = first_frame
if sys.argv[2] == "llmtui":
    from llmtui.tui.app import LlmtuiApp

    app = LlmtuiApp(model=sys.argv[3])
else:
    from textual.widgets import Static

    class Bare(App):
        def compose(self):
            yield Static("hello " * 400)

    app = Bare()


async def pilot(p):
    if sys.argv[2] == "llmtui":
        while p.app.backend is None and p.app.status.state != "error":
            await p.pause(0.02)
        stamps["ready"] = time.time() - start
    await p.pause(0.1)
    p.app.exit()


app.run(headless=True, auto_pilot=pilot)
print(stamps)
