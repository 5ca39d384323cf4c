"""A reply in progress survives SIGTERM and a dropped SSH connection (SIGHUP), and what had arrived survives
SIGKILL: the real workstation with its real engine process, real signals; and the engine process goes with it."""

from __future__ import annotations

import contextlib
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
import os, pathlib, signal, sys
from llmtui.store.settings import Settings
from llmtui.tui.app import LlmtuiApp

marker = pathlib.Path(sys.argv[2])
hold = float(sys.argv[3])  # seconds the reply streams on before the marker says it is under way
freeze = sys.argv[4] == "freeze"

async def drive(pilot):
    app = pilot.app
    while app.backend is None:
        await pilot.pause(0.05)
    await pilot.press(*"Hello", "enter")
    while not (app.generation is not None and len(app.generation.events) > 5):
        await pilot.pause(0.02)
    assert "torch" not in sys.modules and "transformers" not in sys.modules  # the UI never imports them
    if freeze:  # the engine stops answering: the reply's worker is blocked on its stream, no event arrives
        os.kill(app.backend.process.pid, signal.SIGSTOP)
        await pilot.pause(0.3)  # the frames take what had arrived
        while app.workstation.replies._queue:
            await pilot.pause(0.05)
    await pilot.pause(hold)
    assert app.generation is not None, "the reply ended before the signal"
    shown = len(app.conversation.turns[-1].version.events)
    # Written whole, then renamed into place: the test signals as soon as the marker exists.
    part = marker.with_suffix(".part")
    part.write_text(f"{app.conversation.id} {app.backend.process.pid} {app.backend.directory} {shown}")
    os.replace(part, marker)
    while app.is_running:  # Textual waits for this coroutine before the process can end
        await pilot.pause(0.05)

app = LlmtuiApp(settings=Settings().with_value("sampling.max_new_tokens", 30_000), model=sys.argv[1])
app.run(headless=True, auto_pilot=drive)
sys.exit(app.return_code or 0)
"""


def _start(model_dir, marker, hold: float = 0.0, freeze: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", APP, str(model_dir), str(marker), str(hold), "freeze" if freeze else "run"],
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


def _saved_reply(path) -> dict:
    return json.loads(path.read_text())["turns"][-1]["versions"][-1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_handler_saves_the_reply_while_the_worker_is_blocked(tiny_long_model_dir, private_dirs, sig):
    """The engine is frozen (SIGSTOP) mid-reply, so the reply's worker is blocked on its stream and nothing
    but the signal handler can write what had arrived: the file must hold every token shown, as partial,
    before the engine runs again."""
    marker = private_dirs / "generating"
    proc = _start(tiny_long_model_dir, marker, freeze=True)
    engine_pid = None
    try:
        _wait_for_the_reply(proc, marker)
        conversation_id, engine_pid, engine_dir, shown = marker.read_text().split()
        saved = private_dirs / "data" / "conversations" / f"{conversation_id}.json"
        shown = int(shown)
        assert shown > 5
        assert len(_saved_reply(saved).get("events", ())) < shown  # no save since these arrived
        proc.send_signal(sig)
        deadline = time.monotonic() + 4  # the workstation waits 5 s for a frozen engine before SIGKILL
        while len(_saved_reply(saved).get("events", ())) < shown and time.monotonic() < deadline:
            time.sleep(0.02)
        reply = _saved_reply(saved)  # still frozen: only the handler can have written this
        assert len(reply.get("events", ())) == shown, "the handler did not save the reply"
        assert reply["partial"] is True
        assert reply["content"] == "".join(e["text"] for e in reply["events"])
        os.kill(int(engine_pid), signal.SIGCONT)  # it finds its pipe closed and exits
        assert proc.wait(30) == 0, proc.stderr.read().decode()[-3000:]
    finally:
        if engine_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(engine_pid), signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
    assert gone(int(engine_pid), within=10), "the engine process outlived the workstation"
    assert not os.path.exists(engine_dir)  # its socket and log went with it
    conversation = json.loads(saved.read_text())
    assert conversation["turns"][0]["versions"][0]["content"] == "Hello"
    assert _saved_reply(saved)["partial"] is True


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
    conversation_id, engine_pid, _engine_dir, _shown = marker.read_text().split()
    assert gone(int(engine_pid), within=10), "the engine process outlived the workstation"
    saved = private_dirs / "data" / "conversations" / f"{conversation_id}.json"
    conversation = json.loads(saved.read_text())
    assert [t["role"] for t in conversation["turns"]] == ["user", "assistant"]
    assert conversation["turns"][0]["versions"][0]["content"] == "Hello"
    reply = conversation["turns"][-1]["versions"][-1]
    assert reply["partial"] is True
    assert len(reply.get("events", ())) > 5  # the reply as it was at a save while it streamed
    assert reply["content"] == "".join(e["text"] for e in reply["events"])
