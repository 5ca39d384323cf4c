"""Run by the app suite in a fresh process: `python -m bench.first_paint START KIND OPTIONS STARTER`.

Prints, as JSON, seconds since START (the parent's time.time() when it launched this process): "paint",
the first frame of the main screen, and for KIND "llmtui" also "ready", when the model is loaded (OPTIONS,
a ModelOptions as JSON, started by STARTER, "module:function"). KIND "bare" runs a bare Textual app
instead, the baseline.
"""

import sys
import time

start = float(sys.argv[1])
# Imported after the clock started: importing is part of starting.
import json  # noqa: E402

from textual.app import App  # noqa: E402

from bench.common import FrameClock  # noqa: E402

kind, options, start_backend = sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
if kind == "llmtui":
    from bench.app import starter
    from llmtui.core.choices import ModelOptions
    from llmtui.tui.app import LlmtuiApp

    app = LlmtuiApp(options=ModelOptions(**options), start_backend=starter(start_backend))
else:
    from textual.widgets import Static

    class Bare(App):
        def compose(self):
            yield Static("hello " * 400)

    app = Bare()
frames = FrameClock(app, clock=time.time)
stamps = {}


async def pilot(p):
    if kind == "llmtui":
        while p.app.backend is None and p.app.status.state != "error":
            await p.pause(0.02)
        stamps["ready"] = time.time() - start
    await p.pause(0.1)
    p.app.exit()


app.run(headless=True, auto_pilot=pilot)
stamps["paint"] = frames.times[0] - start
print(json.dumps(stamps))
