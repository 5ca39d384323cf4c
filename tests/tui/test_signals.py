"""A reply in progress survives SIGTERM and a dropped SSH connection (SIGHUP): the real workstation with its
real engine process, real signals; and the engine process goes with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from builders import gone

APP = """
import pathlib, sys
from llmtui.store.settings import Settings
from llmtui.tui.app import LlmtuiApp

marker = pathlib.Path(sys.argv[2])

async def drive(pilot):
    app = pilot.app
    while app.backend is None:
        await pilot.pause(0.05)
    await pilot.press(*"Hello", "enter")
    while not (app.generation is not None and len(app.generation.events) > 5):
        await pilot.pause(0.02)
    assert "torch" not in sys.modules and "transformers" not in sys.modules  # the UI never imports them
    marker.write_text(f"{app.conversation.id} {app.backend.process.pid} {app.backend.directory}")
    while app.is_running:  # Textual waits for this coroutine before the process can end
        await pilot.pause(0.05)

app = LlmtuiApp(settings=Settings().with_value("sampling.max_new_tokens", 4000), model=sys.argv[1])
app.run(headless=True, auto_pilot=drive)
sys.exit(app.return_code or 0)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_during_a_reply_saves_it_as_partial(tiny_long_model_dir, private_dirs, sig):
    marker = private_dirs / "generating"
    proc = subprocess.Popen(
        [sys.executable, "-c", APP, str(tiny_long_model_dir), str(marker)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the reply never started"
            time.sleep(0.05)
        proc.send_signal(sig)
        assert proc.wait(30) == 0, proc.stderr.read().decode()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    conversation_id, engine_pid, engine_dir = marker.read_text().split()
    assert gone(int(engine_pid), within=10), "the engine process outlived the workstation"
    assert not os.path.exists(engine_dir)  # its socket and log went with it
    saved = private_dirs / "data" / "conversations" / f"{conversation_id}.json"
    conversation = json.loads(saved.read_text())
    reply = conversation["turns"][-1]["versions"][-1]
    assert conversation["turns"][0]["versions"][0]["content"] == "Hello"
    assert reply["partial"] is True
    assert len(reply["events"]) > 5
    assert reply["content"] == "".join(e["text"] for e in reply["events"])
