"""The reply controller: one guard for every action while a reply is in flight, and replay through
core.replay's playback, driven with real keystrokes."""

from __future__ import annotations

import copy
import time

from textual.events import Key

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.tui.widgets.conversation import Composer, ConversationView
from llmtui.tui.widgets.probabilities import ProbabilitySidebar
from llmtui.tui.widgets.token_stream import TokenChips
from tests.conftest import LONG_REPLY
from tests.tui.conftest import run_command, wait_for, wait_idle, wait_ready

REFUSED = "A reply is being written; stop it with escape first."


def record_notices(app) -> list[str]:
    """Every notification's message, kept (the toasts themselves expire)."""
    seen: list[str] = []
    notify = app.notify

    def record(message: str, *args, **kwargs) -> None:
        seen.append(message)
        notify(message, *args, **kwargs)

    app.notify = record
    return seen


async def test_every_action_waits_for_the_reply_in_flight(make_app, tiny_long_model_dir):
    earlier = Conversation(title="earlier")
    earlier.add_user("Hi")
    earlier.turns.append(Turn("assistant", [Version("one"), Version("two")], current=1))
    app = make_app(str(tiny_long_model_dir), max_new_tokens=LONG_REPLY, conversation=earlier)
    notices = record_notices(app)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await pilot.press(*"Hello", "enter")
        await wait_for(pilot, lambda: app.generation is not None and len(app.generation.events) > 2)
        backend, conversation = app.backend, app.conversation
        composer = app.query_one(Composer)

        async def refused(widget, *keys: str) -> None:
            # Keys posted as the terminal driver posts them: Pilot.press waits for the app to be idle after
            # each key, which it never is while a reply streams.
            before = notices.count(REFUSED)
            widget.focus()
            await pilot.pause(0.05)
            for key in keys:
                app.post_message(Key(key, key if len(key) == 1 else None))
            await wait_for(pilot, lambda: notices.count(REFUSED) == before + 1)

        for key in ("ctrl+r", "ctrl+o", "ctrl+t"):  # regenerate, continue, restart the engine
            await refused(composer, key)
        composer.text = "/clear"  # a new conversation
        await refused(composer, "enter")
        composer.text = "More"  # another message
        await refused(composer, "enter")
        pane = app.query_one(ConversationView)
        pane.cursor = 0
        await refused(pane, "e")  # edit
        pane.cursor = 1
        await refused(pane, "left")  # another version of an earlier reply
        await refused(app.query_one("#candidates"), "down", "enter")  # branch
        app.workstation.action_replay()  # what the palette's "Replay reply" runs
        await pilot.pause(0.1)

        assert notices.count(REFUSED) == 9, notices
        assert composer.text == "More"  # the refused message is given back
        assert app.backend is backend and app.conversation is conversation and app.screen is app.workstation
        assert [len(t.versions) for t in conversation.turns] == [1, 2, 1, 1] and conversation.turns[1].current == 1
        assert app.generation is not None  # and the reply goes on
        composer.focus()
        await pilot.pause(0.05)
        app.post_message(Key("escape", None))
        await wait_idle(pilot)
        assert conversation.turns[-1].version.stats.stop_reason == "stopped"


async def test_replay_plays_a_reply_back_at_its_recorded_pace(make_app, recorded_conversation):
    app = make_app(conversation=copy.deepcopy(recorded_conversation))
    events = recorded_conversation.turns[-1].version.events  # 40 steps, 0.05 s apart
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await wait_for(pilot, lambda: app.workstation.stream_turn is not None)
        chips = app.query_one(TokenChips)

        async def replay(command: str) -> float:
            started = await run_command(pilot, command)
            await wait_for(pilot, lambda: app.workstation.replies.replaying)
            return started

        started = await replay("Replay reply")
        await wait_for(pilot, lambda: len(chips.events) >= 5)
        assert len(chips.events) < len(events), "played at once, not at the recorded pace"
        assert "replaying at 1x" in app.status.detail
        await pilot.press("escape")
        await wait_idle(pilot)
        assert 5 <= len(chips.events) < len(events) and time.monotonic() - started < 2.0
        assert app.status.state == "ready"

        started = await replay("Replay reply ×4")
        await wait_idle(pilot)
        assert time.monotonic() - started >= events[-1].elapsed / 4 - 0.05
        assert chips.events == events
        assert app.query_one(ProbabilitySidebar).event == events[-1]
        assert app.conversation.turns[-1].version.events == events  # the conversation is not touched
