"""A conversation of 10,000 messages opens at once: only what is in view is built."""

from __future__ import annotations

import time

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.core.errors import LlmtuiError
from llmtui.store.conversations import ConversationStore
from llmtui.tui.app import LlmtuiApp
from llmtui.tui.widgets.conversation import ConversationView, MessageView
from tests.tui.conftest import wait_for

MESSAGES = 10_000
MOUNTED_AT_MOST = 60  # a screenful and its margin, whatever the conversation's length


def long_conversation() -> Conversation:
    conversation = Conversation(id="long", title="long")
    for i in range(MESSAGES):
        role = "user" if i % 2 == 0 else "assistant"
        conversation.turns.append(Turn(role, [Version(f"message {i}: " + "words " * (i % 40))]))
    return conversation


def shown(app, index: int) -> bool:
    """Whether message ``index`` is mounted and on screen, inside the conversation pane."""
    pane = app.query_one(ConversationView)
    view = next((v for v in app.query(MessageView) if v.index == index), None)
    return view is not None and view.region.height > 0 and pane.region.contains_region(view.region)


def no_model(options, progress):
    # The pane alone: a loaded model would also render the 10,000 messages into the inspector's prompt.
    raise LlmtuiError("no model in this test")


async def test_a_long_conversation_opens_at_once_and_scrolls_end_to_end(private_dirs):
    conversation = long_conversation()
    store = ConversationStore(private_dirs / "data" / "conversations")
    app = LlmtuiApp(start_backend=no_model, store=store, conversation=conversation)
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: shown(app, MESSAGES - 1), timeout=30)
        # Building a widget per message took minutes here; a screenful takes a fraction of a second.
        assert time.perf_counter() - started < 10
        pane = app.query_one(ConversationView)
        assert len(app.query(MessageView)) <= MOUNTED_AT_MOST
        await pilot.press("shift+tab")  # from the composer to the last message
        assert isinstance(app.focused, MessageView) and app.focused.index == MESSAGES - 1
        await pilot.press("home")
        await wait_for(pilot, lambda: shown(app, 0), timeout=10)
        assert pane.scroll_y == 0
        assert len(app.query(MessageView)) <= MOUNTED_AT_MOST
        await pilot.press("end")
        await wait_for(pilot, lambda: shown(app, MESSAGES - 1), timeout=10)
        assert pane.scroll_y == pane.max_scroll_y
        assert len(app.query(MessageView)) <= MOUNTED_AT_MOST
