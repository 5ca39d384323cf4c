"""A long conversation opens at once: only what is in view is drawn, however many messages it has (2,000
here; bench/conversation.py opens 10,000), and scrolling it lays nothing out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from textual.pilot import Pilot
from textual.widget import Widget

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.core.errors import LlmtuiError
from llmtui.store.conversations import ConversationStore
from llmtui.tui.app import LlmtuiApp
from llmtui.tui.widgets import message as message_module
from llmtui.tui.widgets.conversation import SYSTEM, ConversationView
from tests.tui.conftest import wait_for

MESSAGES = 2_000
DRAWN_AT_MOST = 60  # a screenful and a page either side, whatever the conversation's length


def long_conversation(messages: int = MESSAGES) -> Conversation:
    conversation = Conversation(id=f"long-{messages}", title="long")
    for i in range(messages):
        role = "user" if i % 2 == 0 else "assistant"
        conversation.turns.append(Turn(role, [Version(f"message {i}: " + "words " * (i % 40))]))
    return conversation


def shown(app, index: int) -> bool:
    """Whether message ``index`` is on screen in the conversation pane."""
    return index in app.query_one(ConversationView).shown_turns()


def no_model(options, progress):
    # The pane alone: a loaded model would also render the 10,000 messages into the inspector's prompt.
    raise LlmtuiError("no model in this test")


@contextlib.asynccontextmanager
async def opened(
    private_dirs, conversation: Conversation, timeout: float = 30
) -> AsyncIterator[tuple[LlmtuiApp, Pilot]]:
    """The workstation (no model) with ``conversation`` open, once its last message is on screen."""
    store = ConversationStore(private_dirs / "data" / "conversations")
    app = LlmtuiApp(start_backend=no_model, store=store, conversation=conversation)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: shown(app, len(conversation.turns) - 1), timeout=timeout)
        yield app, pilot


async def test_a_long_conversation_opens_at_once_and_scrolls_end_to_end(private_dirs):
    conversation = long_conversation()
    async with opened(private_dirs, conversation) as (app, pilot):
        pane = app.query_one(ConversationView)
        assert pane.drawn <= DRAWN_AT_MOST
        await pilot.press("shift+tab")  # from the composer to the last message
        assert app.focused is pane and pane.cursor == MESSAGES - 1
        await pilot.press("home")
        await wait_for(pilot, lambda: shown(app, 0), timeout=10)
        assert pane.scroll_y == 0 and pane.cursor is SYSTEM
        await pilot.press("end")
        await wait_for(pilot, lambda: shown(app, MESSAGES - 1), timeout=10)
        assert pane.scroll_y == pane.max_scroll_y and pane.cursor == MESSAGES - 1
        await pilot.pause(0.3)  # the pages either side drawn
        assert pane.drawn <= DRAWN_AT_MOST


async def test_conversations_opened_one_after_another_each_show_their_end(private_dirs):
    store = ConversationStore(private_dirs / "data" / "conversations")
    app = LlmtuiApp(start_backend=no_model, store=store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        for size in (500, 30, 800, 3, 200, 60, 1000, 5):
            app.workstation.open_conversation(long_conversation(size))
            await wait_for(pilot, lambda size=size: shown(app, size - 1), timeout=10)
        assert app.is_running


def record_renders(monkeypatch) -> list[tuple[str, int]]:
    """Every text the pane's messages render from now on (render_written's), with its width."""
    rendered: list[tuple[str, int]] = []
    render = message_module.render_written

    def counted(app, text, markdown, width):
        rendered.append((text, width))
        return render(app, text, markdown, width)

    monkeypatch.setattr(message_module, "render_written", counted)
    return rendered


async def test_written_messages_are_drawn_from_lines_rendered_once(private_dirs, monkeypatch):
    # A message scrolled away and back is drawn from the lines rendered the first time (that is what makes
    # a page key cheap).
    rendered = record_renders(monkeypatch)
    async with opened(private_dirs, long_conversation(400)) as (app, pilot):
        pane = app.query_one(ConversationView)
        pane.focus()
        for key in ("home", "end", "home", "end"):
            await pilot.press(key)
            await wait_for(pilot, lambda key=key: shown(app, 0 if key == "home" else 399), timeout=10)
            await pilot.pause(0.3)
        assert rendered and len(rendered) == len(set(rendered))


def markdown_conversation(messages: int) -> Conversation:
    """Replies whose Markdown (a list, a code block) takes more lines than their text has: estimates of
    their heights are wrong until their lines are rendered."""
    conversation = Conversation(id=f"markdown-{messages}", title="markdown")
    for i in range(messages):
        if i % 2 == 0:
            conversation.turns.append(Turn("user", [Version(f"question {i}: " + "why " * (i % 50))]))
        else:
            text = f"Answer **{i}**.\n\n- one\n- two\n\n```python\nprint({i})\n```\n" + "More words. " * (i % 30)
            conversation.turns.append(Turn("assistant", [Version(text)]))
    return conversation


def screen_of(pane: ConversationView) -> list[str]:
    return [pane.render_line(y).text for y in range(pane.scrollable_content_region.height)]


async def test_drawing_the_page_above_moves_nothing_on_screen(private_dirs, monkeypatch):
    # After a page key, the pane draws the page above the viewport; those messages' heights become known
    # then (they were estimates), and what the viewport shows must stay where it was (scroll anchoring).
    compared: list[tuple[list[str], list[str]]] = []
    measure = ConversationView._measure

    def watched(pane: ConversationView, positions) -> None:
        positions = list(positions)
        top = int(pane.scroll_y)
        above = [p for p in positions if pane._starts[p + 1] <= top and not pane._measured[p]]
        before = screen_of(pane)
        measure(pane, positions)
        if above:
            compared.append((before, screen_of(pane)))

    monkeypatch.setattr(ConversationView, "_measure", watched)
    async with opened(private_dirs, markdown_conversation(600)) as (app, pilot):
        pane = app.query_one(ConversationView)
        pane.focus()
        await pilot.pause(0.3)
        for _ in range(6):
            await pilot.press("pageup")
            await pilot.pause(0.25)
        assert len(compared) >= 6
        for before, after in compared:
            assert after == before


async def test_scrolling_and_a_growing_reply_lay_nothing_out(private_dirs, monkeypatch):
    # A layout reflows and repaints the whole screen (10 to 25 ms here): a page key that asked for one
    # missed the 50 ms a key has, and a reply that asked for one at every update took that time from the
    # decode loop on a small machine. Scrolling is a repaint of the pane; a reply grows its scroll range.
    async with opened(private_dirs, markdown_conversation(600)) as (app, pilot):
        pane = app.query_one(ConversationView)
        pane.focus()
        await pilot.pause(0.3)
        layouts: list[Widget] = []
        refresh = Widget.refresh

        def counted(self, *regions, layout=False, **kwargs):
            if layout:
                layouts.append(self)
            return refresh(self, *regions, layout=layout, **kwargs)

        monkeypatch.setattr(Widget, "refresh", counted)
        for key in ["pageup"] * 6 + ["up"] * 6 + ["pagedown"] * 3 + ["down"] * 3 + ["end"]:
            await pilot.press(key)
            await pilot.pause(0.05)
        assert pane.scroll_y == pane.max_scroll_y
        app.conversation.turns.append(Turn("assistant", [Version("")]))
        pane.extend(app.conversation)
        await pilot.pause(0.1)
        layouts.clear()
        pane.begin_live(600)
        for words in range(1, 40):
            app.conversation.turns[600].version.content = "a growing reply, " * words * 5
            pane.grew()
            await pilot.pause(0.01)
        pane.end_live()
        await pilot.pause(0.1)
        assert pane.scroll_y == pane.max_scroll_y and shown(app, 600)
        assert layouts == []


def assert_painted(app, pane: ConversationView) -> None:
    """The screen shows what the pane draws now, row by row: nothing it changed was left unrepainted."""
    screen = app.screen._compositor.render_strips()  # from the lines each widget last repainted
    region = pane.scrollable_content_region
    for y in range(region.height):
        painted = screen[region.y + y].crop(region.x, region.right).text
        assert painted.rstrip() == pane.render_line(y).text.rstrip(), f"row {y}"


def record_repaints(monkeypatch, pane: ConversationView) -> list[tuple[int, int] | None]:
    """The pane's rows asked to be repainted from now on: (first row on screen, rows); None: the whole pane."""
    repainted: list[tuple[int, int] | None] = []
    refresh = Widget.refresh

    def recorded(self, *regions, **kwargs):
        if self is pane:
            repainted.extend([(r.y, r.height) for r in regions] or [None])
        return refresh(self, *regions, **kwargs)

    monkeypatch.setattr(Widget, "refresh", recorded)
    return repainted


async def test_a_growing_reply_repaints_only_its_lines_that_changed(private_dirs, monkeypatch):
    # A frame repaints every widget within the box around all that changed in it: the whole pane's box took
    # 10 ms here, several times a second while a reply streams, for a reply that had gained a few words.
    conversation = long_conversation(3)
    conversation.turns.append(Turn("assistant", [Version("")]))
    async with opened(private_dirs, conversation) as (app, pilot):
        pane = app.query_one(ConversationView)
        repainted = record_repaints(monkeypatch, pane)
        reply = app.conversation.turns[3].version
        pane.begin_live(3)
        reply.content = "The first words"
        pane.grew()
        await pilot.pause(0.05)
        start = pane._starts[pane._position(3)] - int(pane.scroll_y)  # the reply's header row on screen

        repainted.clear()
        reply.content = "The first words and more"  # its one line changed: that row alone
        pane.grew()
        await pilot.pause(0.05)
        assert repainted == [(start + 1, 1)]
        assert_painted(app, pane)

        repainted.clear()
        reply.content = "The first words and more, " + "then a line of its own " * 8  # a line more
        pane.grew()
        await pilot.pause(0.05)
        assert repainted and None not in repainted
        assert min(y for y, _ in repainted) == start  # from the reply down (it moved what is below it)
        assert_painted(app, pane)


async def test_an_item_that_grows_repaints_the_messages_it_moves(private_dirs, monkeypatch):
    # A longer system prompt pushes every message down by the lines it gained: they are repainted where
    # they now are, though none of them changed.
    async with opened(private_dirs, long_conversation(3)) as (app, pilot):
        pane = app.query_one(ConversationView)
        assert_painted(app, pane)
        repainted = record_repaints(monkeypatch, pane)
        pane.show_system("A system prompt long enough to take three lines of the pane. " * 4)
        await pilot.pause(0.05)
        assert None not in repainted
        assert_painted(app, pane)
