"""The conversation pane's keys, pressed as a user presses them: from the composer, shift+tab to the last
message, the cursor moved with the arrows, and each message key acting on the message it selects."""

from __future__ import annotations

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.tui.screens.edit import EditScreen
from llmtui.tui.widgets import message as message_module
from llmtui.tui.widgets.conversation import SYSTEM, ConversationView
from llmtui.tui.widgets.inspector import Inspector
from tests.tui.conftest import wait_for, wait_ready
from tests.tui.test_long_conversation import markdown_conversation, opened, record_renders

REPLY = "Here:\n\n```python\nprint('hi')\n```\n\nDone."


def two_turns() -> Conversation:
    conversation = Conversation(title="keys", system="Be brief.")
    conversation.add_user("Show me code")
    conversation.turns.append(Turn("assistant", [Version("An older reply."), Version(REPLY)], current=1))
    return conversation


async def test_every_message_key_acts_on_the_selected_message(make_app):
    app = make_app(conversation=two_turns())
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        pane = app.query_one(ConversationView)
        inspector = app.query_one(Inspector)
        ws = app.workstation
        await pilot.press("shift+tab")  # from the composer to the last message
        assert app.focused is pane and pane.cursor == 1
        await pilot.press("c")
        assert app.clipboard == REPLY
        await pilot.press("b")
        assert app.clipboard == "print('hi')"
        await pilot.press("left")
        assert app.conversation.turns[1].current == 0 and pane.cursor == 1 and app.focused is pane
        assert "version 1/2" in pane.text_of(1)
        await pilot.press("right")
        assert app.conversation.turns[1].current == 1
        ws.stream_turn = None
        await pilot.press("s")
        assert ws.stream_turn == 1
        await pilot.press("t")
        await wait_for(pilot, lambda: inspector.source_title == "message 2" and not inspector.chips.surprise)
        pane.focus()
        await pilot.press("up")  # the question
        assert pane.cursor == 0
        await pilot.press("p")
        await wait_for(pilot, lambda: inspector.source_title == "message 1" and inspector.chips.surprise)
        pane.focus()
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditScreen))
        assert app.screen.text == "Show me code"
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is ws)
        await pilot.press("up")  # the system prompt, above the first message
        assert pane.cursor is SYSTEM
        footer = {active.binding.description for active in app.screen.active_bindings.values() if active.enabled}
        assert {"Copy", "Edit", "Tokenize", "Surprise"} <= footer  # the system prompt's keys
        assert not footer & {"Copy code", "Show tokens", "Prev version", "Next version"}  # a message's
        await pilot.press("c")
        assert app.clipboard == "Be brief."
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, EditScreen))
        assert app.screen.text == "Be brief."
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is ws)
        # A click selects the message under it.
        start = pane._starts[pane._position(1)] - int(pane.scroll_y)
        await pilot.click(ConversationView, offset=(4, start + pane.region.y - pane.content_region.y + 2))
        assert pane.cursor == 1


async def test_the_arrows_read_a_tall_message_a_line_at_a_time_and_pages_keep_the_cursor_in_view(private_dirs):
    conversation = markdown_conversation(40)
    conversation.turns[38] = Turn("user", [Version("\n".join(f"line {i}" for i in range(80)))])
    async with opened(private_dirs, conversation) as (app, pilot):
        pane = app.query_one(ConversationView)
        await pilot.press("shift+tab")
        assert pane.cursor == 39
        await pilot.press("up")  # to the tall message: its end shown first
        assert pane.cursor == 38
        assert "line 79" in pane.render_line(pane.scrollable_content_region.height - 1).text
        top = pane.scroll_y
        await pilot.press("up", "up")  # within it, a line at a time
        assert pane.cursor == 38 and pane.scroll_y == top - 2
        await pilot.press("down", "down", "down")  # down to its end again, and on to the next message
        assert pane.cursor == 39
        await pilot.press("pageup", "pageup", "pageup", "pageup")
        assert pane.cursor in pane.shown_turns()
        await pilot.press("pagedown")
        assert pane.cursor in pane.shown_turns()


GROWING = (
    "A first paragraph, **bold**.\n\n- one\n- two\n\n1. first\n2. second\n\n```python\nprint(1)\n\n\nx = 2\n```\n\n"
    "# A title\n\n> a quote\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nThe end of it."
)


async def test_a_reply_being_written_renders_each_finished_block_once_and_joins_them_as_the_whole(
    private_dirs, monkeypatch
):
    render = message_module.render_written
    recorded = record_renders(monkeypatch)
    async with opened(private_dirs, markdown_conversation(2)) as (app, _pilot):
        live = message_module.LiveMarkdown()
        recorded.clear()  # the conversation's own messages
        for end in range(1, len(GROWING) + 1, 7):
            live.draw(app, GROWING[:end], 60)
        drawn = [line.text for line in live.draw(app, GROWING, 60)]
        assert drawn == [line.text for line in render(app, GROWING, True, 60)]
        rendered = [text for text, _width in recorded]
        heads = [text for text in rendered if GROWING.startswith(text) and text.endswith("\n\n")]
        assert heads and len(heads) == len(set(heads))  # each finished part rendered once, as it grew
        # The rest, each time: only what follows the last finished part.
        tails = [text for text in rendered if text not in heads and text != GROWING]
        assert tails and all(any(GROWING.startswith(head + text) for head in ["", *heads]) for text in tails)
