"""A long conversation opens at once: only what is in view is built, however many messages it has (2,000
here; bench/conversation.py opens 10,000)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from textual.pilot import Pilot
from textual.widgets import Markdown

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.core.errors import LlmtuiError
from llmtui.store.conversations import ConversationStore
from llmtui.tui.app import LlmtuiApp
from llmtui.tui.widgets import message as message_module
from llmtui.tui.widgets.conversation import ConversationView
from llmtui.tui.widgets.message import MessageView
from tests.tui.conftest import wait_for

MESSAGES = 2_000
MOUNTED_AT_MOST = 60  # a screenful and its margin, whatever the conversation's length


def long_conversation(messages: int = MESSAGES) -> Conversation:
    conversation = Conversation(id=f"long-{messages}", title="long")
    for i in range(messages):
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


async def test_conversations_opened_one_after_another_each_show_their_end(private_dirs):
    # Opening one while the pane's window update for the last is still pending: the update must find the
    # new conversation's turns together with their own items (it raised on a turn it had no item for).
    store = ConversationStore(private_dirs / "data" / "conversations")
    app = LlmtuiApp(start_backend=no_model, store=store)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        for size in (500, 30, 800, 3, 200, 60, 1000, 5):  # each opening met the race about half the time
            app.workstation.open_conversation(long_conversation(size))
            await wait_for(pilot, lambda size=size: shown(app, size - 1), timeout=10)
        assert app.is_running


async def test_written_messages_are_drawn_from_lines_rendered_once(private_dirs, monkeypatch):
    # Paging through a long conversation builds no Markdown widget tree, and a message scrolled away and
    # back is drawn from the lines rendered the first time (that is what makes a page key cheap).
    rendered: list[tuple[str, int]] = []
    render = message_module.render_written

    def counted(app, text, markdown, width):
        rendered.append((text, width))
        return render(app, text, markdown, width)

    monkeypatch.setattr(message_module, "render_written", counted)
    async with opened(private_dirs, long_conversation(400)) as (app, pilot):
        pane = app.query_one(ConversationView)
        assert not pane.query(Markdown) and all(view.written for view in pane.query(MessageView))
        for key in ("home", "end", "home", "end"):
            pane.focus()
            await pilot.press(key)
            await wait_for(pilot, lambda key=key: shown(app, 0 if key == "home" else 399), timeout=10)
            await pilot.pause(0.3)
        assert rendered and len(rendered) == len(set(rendered))


async def test_a_window_update_between_a_message_sent_and_its_item_finds_the_turns_it_has(private_dirs):
    # Sending appends the user's turn to the conversation at once and extends the pane after the next
    # refresh: a window update in between must see the pane's turns, not the conversation's (it raised
    # on the new turn, which had no item yet, and took the app down: the benchmark then hung).
    async with opened(private_dirs, long_conversation(30), timeout=10) as (app, pilot):
        pane = app.query_one(ConversationView)
        app.conversation.add_user("one more")
        pane._update_window()
        await pane.extend(app.conversation)
        await wait_for(pilot, lambda: shown(app, 30), timeout=10)
        assert app.is_running


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


async def test_building_the_page_above_moves_nothing_on_screen(private_dirs, monkeypatch):
    # After a page key, the pane mounts the page above the viewport; their heights become known then (they
    # were estimates), and what the viewport shows must stay where it was (scroll anchoring), each message
    # mounted at the height it is laid out at.
    snapshots: list[tuple[dict[int, int], dict[int, int]]] = []
    prefetch = ConversationView._prefetch

    def on_screen(pane: ConversationView) -> dict[int, int]:
        return {
            view.index: view.region.y
            for view in pane.query(MessageView)
            if view.region.height and pane.region.contains_region(view.region)
        }

    def watched(pane: ConversationView) -> None:
        before = on_screen(pane)
        prefetch(pane)
        pane.call_after_refresh(lambda: snapshots.append((before, on_screen(pane))))

    monkeypatch.setattr(ConversationView, "_prefetch", watched)
    async with opened(private_dirs, markdown_conversation(600)) as (app, pilot):
        pane = app.query_one(ConversationView)
        pane.focus()
        await pilot.pause(0.3)
        for _ in range(6):
            await pilot.press("pageup")
            await pilot.pause(0.25)
        compared = [(before, after) for before, after in snapshots if before.keys() & after.keys()]
        assert len(compared) >= 6
        for before, after in compared:
            assert {i: after[i] for i in before if i in after} == {i: before[i] for i in after if i in before}
        for view in pane.query(MessageView):
            position = pane._items.index(view.index)
            assert pane._heights[position] == view.outer_size.height + 1


async def test_paging_gives_views_leaving_the_window_the_turns_entering_it(private_dirs, monkeypatch):
    # A page key builds no widgets once the window is full: the views of messages leaving it show the
    # ones entering it (mounting and removing a widget costs Textual a round of messages each). Each view
    # shows its own turn, in order, and the focused one keeps its message wherever the window goes.
    built: list[int] = []
    init = MessageView.__init__

    def counted(self, index, turn, lines=None):
        built.append(index)
        init(self, index, turn, lines)

    monkeypatch.setattr(MessageView, "__init__", counted)
    conversation = markdown_conversation(600)
    async with opened(private_dirs, conversation) as (app, pilot):
        pane = app.query_one(ConversationView)
        pane.focus()
        for _ in range(3):
            await pilot.press("pageup")
            await pilot.pause(0.3)
        focused = next(v for v in pane.query(MessageView) if shown(app, v.index))
        focused.focus()
        await pilot.pause(0.1)
        built.clear()
        for key in ["pageup"] * 6 + ["pagedown"] * 6:
            await pilot.press(key)
            await pilot.pause(0.25)
            views = list(pane.query(MessageView))
            assert [v.index for v in views] == sorted(v.index for v in views)
            for view in views:
                assert view.turn is conversation.turns[view.index]
                assert view.has_class(view.turn.role) and not view.has_class(*{"user", "assistant"} - {view.turn.role})
        assert len(built) <= 8, built  # a window holding more messages than before needs more views
        assert app.focused is focused and focused.turn is conversation.turns[focused.index]


async def test_a_message_resized_by_a_layout_asks_for_no_second_one(private_dirs, monkeypatch):
    # Widget.virtual_size is a layout reactive: a message the screen's layout gave a new size asked for a
    # layout again, so each page or grown reply cost two layouts of the whole screen. Nothing scrolls inside
    # a message, so its virtual size changes with no layout.
    async with opened(private_dirs, long_conversation(40)) as (app, pilot):
        await pilot.pause(0.3)
        view = next(v for v in app.query(MessageView) if v.index == 39)
        requested: list[int] = []
        refresh = MessageView.refresh

        def counted(self, *regions, layout=False, **kwargs):
            if layout:
                requested.append(self.size.height)
            return refresh(self, *regions, layout=layout, **kwargs)

        monkeypatch.setattr(MessageView, "refresh", counted)
        view.show_turn(39, Turn("assistant", [Version("a reply, now much longer " * 40)]))
        await pilot.pause(0.3)
        assert view.size.height > requested[0]  # the layout show_turn asked for made it taller
        assert len(requested) == 1, requested  # and the resize that layout made asked for none
