"""What the workstation writes, and when it writes nothing: real keystrokes (Pilot), a real store and model.
A reply killed mid-way is test_signals' (it needs a real process to kill)."""

from __future__ import annotations

import os

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.store.conversations import ConversationStore
from llmtui.tui.screens.history import HistoryScreen
from llmtui.tui.workstation import Workstation
from tests.tui.conftest import wait_for, wait_ready

OLD_MTIME = 1_000_000_000_000_000_000  # 2001: a time no write made now could leave


def _saved(store: ConversationStore, title: str, updated: float, **fields) -> Conversation:
    conversation = Conversation(title=title, updated=updated, **fields)
    conversation.turns.append(Turn("user", [Version(f"about {title}")]))
    conversation.turns.append(Turn("assistant", [Version(f"{title} are fruit", model="elsewhere")]))
    store.save(conversation)
    return conversation


async def _open_from_history(pilot, search: str) -> None:
    """f10, type the search, enter: the top match opens."""
    await pilot.press("f10")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen), timeout=10)
    await pilot.press(*search, "enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, Workstation), timeout=10)


async def test_enter_in_the_history_search_opens_the_top_match(make_app):
    app = make_app()
    for i, title in enumerate(["apples", "bananas, yellow", "bananas, green", "cherries"]):
        _saved(app.store, title, updated=1_700_000_000.0 + i)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await _open_from_history(pilot, "banana")
        await wait_for(pilot, lambda: app.conversation.title == "bananas, green", timeout=10)  # the newest match
        await _open_from_history(pilot, "")  # no search: the newest of all
        await wait_for(pilot, lambda: app.conversation.title == "cherries", timeout=10)
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), timeout=10)
        await pilot.press(*"durian", "enter")  # nothing matches: the dialog stays, and says so
        await wait_for(pilot, lambda: any("No conversation matches" in str(n.message) for n in app._notifications))
        assert isinstance(app.screen, HistoryScreen)


async def test_opening_a_conversation_and_quitting_writes_nothing(make_app):
    """Opened, the engine restarted (which once stamped the running model on it), quit: the file keeps its
    bytes and its mtime, and no fork appears."""
    app = make_app()
    conversation = _saved(app.store, "figs", 1_700_000_000.0, model="elsewhere", fingerprint="sha256:other")
    path = app.store.path(conversation.id)
    os.utime(path, ns=(OLD_MTIME, OLD_MTIME))
    before = path.read_bytes()
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await _open_from_history(pilot, "figs")
        await wait_for(pilot, lambda: app.conversation.id == conversation.id, timeout=10)
        engine = app.backend
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: app.backend is not None and app.backend is not engine)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, timeout=10)
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == OLD_MTIME
    assert sorted(p.name for p in app.store.root.glob("*.json")) == [path.name]


async def test_a_broken_store_never_ends_the_app_and_the_turns_wait_in_memory(make_app):
    import shutil

    app = make_app()
    directory = app.store.root
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(directory)
        directory.write_text("not a directory")  # every store call fails now
        await pilot.press(*"Hello", "enter")
        await wait_for(pilot, lambda: not app.workstation.replies.busy and len(app.conversation.turns) == 2)
        await pilot.press("f10")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), timeout=10)
        status = app.screen.query_one("#history-status")
        await wait_for(pilot, lambda: "Cannot list" in str(status.render()), timeout=10)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, Workstation), timeout=10)
        assert app.is_running and len(app.conversation.turns) == 2
        # The store works again: the next save writes every turn it missed.
        directory.unlink()
        directory.mkdir()
        await pilot.press(*"Again", "enter")
        await wait_for(pilot, lambda: not app.workstation.replies.busy and len(app.conversation.turns) == 4)
        await pilot.pause(0.3)
    saved = ConversationStore(directory).load(app.conversation.id)
    assert [t.content for t in saved.turns if t.role == "user"] == ["Hello", "Again"]
