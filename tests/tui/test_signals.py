"""A reply in progress survives SIGTERM and a dropped SSH connection (SIGHUP), and what had arrived survives
SIGKILL: the real workstation with its real engine process, real signals; and the engine process goes with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from builders import gone

from llmtui.tui.reply import SAVE_SECONDS

APP = """
import pathlib, sys
from llmtui.store.settings import Settings
from llmtui.tui.app import LlmtuiApp

marker = pathlib.Path(sys.argv[2])
hold = float(sys.argv[3])  # seconds the reply streams on before the marker says it is under way

async def drive(pilot):
    app = pilot.app
    while app.backend is None:
        await pilot.pause(0.05)
    await pilot.press(*"Hello", "enter")
    while not (app.generation is not None and len(app.generation.events) > 5):
        await pilot.pause(0.02)
    assert "torch" not in sys.modules and "transformers" not in sys.modules  # the UI never imports them
    await pilot.pause(hold)
    assert app.generation is not None, "the reply ended before the signal"
    marker.write_text(f"{app.conversation.id} {app.backend.process.pid} {app.backend.directory}")
    while app.is_running:  # Textual waits for this coroutine before the process can end
        await pilot.pause(0.05)

app = LlmtuiApp(settings=Settings().with_value("sampling.max_new_tokens", 30_000), model=sys.argv[1])
app.run(headless=True, auto_pilot=drive)
sys.exit(app.return_code or 0)
"""


def _start(model_dir, marker, hold: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", APP, str(model_dir), str(marker), str(hold)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for_the_reply(proc: subprocess.Popen, marker) -> None:
    deadline = time.monotonic() + 90
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the reply never started"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_during_a_reply_saves_it_as_partial(tiny_long_model_dir, private_dirs, sig):
    marker = private_dirs / "generating"
    proc = _start(tiny_long_model_dir, marker)
    try:
        _wait_for_the_reply(proc, marker)
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


def test_sigkill_during_a_reply_keeps_the_message_and_the_reply_so_far(tiny_long_model_dir, private_dirs):
    """No handler runs on SIGKILL (or a power cut): what is on disk is what was saved as the reply began and
    while it streamed, every few seconds."""
    marker = private_dirs / "generating"
    proc = _start(tiny_long_model_dir, marker, hold=SAVE_SECONDS + 1.5)
    try:
        _wait_for_the_reply(proc, marker)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    conversation_id, engine_pid, _engine_dir = marker.read_text().split()
    assert gone(int(engine_pid), within=10), "the engine process outlived the workstation"
    saved = private_dirs / "data" / "conversations" / f"{conversation_id}.json"
    conversation = json.loads(saved.read_text())
    assert [t["role"] for t in conversation["turns"]] == ["user", "assistant"]
    assert conversation["turns"][0]["versions"][0]["content"] == "Hello"
    reply = conversation["turns"][-1]["versions"][-1]
    assert reply["partial"] is True
    assert len(reply.get("events", ())) > 5  # the reply as it was at a save while it streamed
    assert reply["content"] == "".join(e["text"] for e in reply["events"])
