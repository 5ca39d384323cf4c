"""The history browser: newest first, full-text search, open, rename, delete (with undo), duplicate."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from llmtui.core.conversation import Conversation
from llmtui.core.text import escape_controls
from llmtui.store.conversations import ConversationStore, StoreError, Summary
from llmtui.tui.screens.edit import EditScreen

SHOWN = 500  # rows built at once; search narrows the rest


class HistoryScreen(ModalScreen[Conversation | None]):
    """Returns the conversation to open, or None."""

    BINDINGS = [
        Binding("escape", "cancel", "Close"),
        Binding("ctrl+d", "delete", "Delete"),
        Binding("ctrl+z", "undo", "Undo delete"),
        Binding("ctrl+e", "rename", "Rename"),
        Binding("ctrl+n", "duplicate", "Duplicate"),
    ]

    def __init__(self, store: ConversationStore, query: str = "") -> None:
        super().__init__()
        self.store = store
        self.query_text = query
        self.summaries: list[Summary] = []
        self.listed: str | None = None  # the query the list shows the matches of (None: not listed yet)
        self.open_when_listed = False  # enter was pressed in the search before its matches were listed
        self.deleted: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="history-dialog"):
            yield Label("History · enter open · ctrl+e rename · ctrl+d delete · ctrl+z undo · ctrl+n duplicate")
            yield Input(self.query_text, placeholder="search titles and messages", id="history-search")
            yield OptionList(id="history-list")
            yield Label("", id="history-status")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self.refresh_list()

    def on_input_changed(self, message: Input.Changed) -> None:
        self.query_text = message.value
        self.refresh_list()

    def on_input_submitted(self) -> None:
        """Enter in the search opens the top match, once the matches of what was typed are listed."""
        if self.listed == self.query_text:
            self._open_top()
        else:
            self.open_when_listed = True

    def _open_top(self) -> None:
        self.open_when_listed = False
        if self.summaries:
            self._open(self.summaries[0].id)
        else:
            self.notify("No conversation matches.", severity="warning")

    @work(thread=True, exclusive=True, exit_on_error=False)
    def refresh_list(self) -> None:
        query = self.query_text
        started = time.perf_counter()
        try:
            summaries, problems = self.store.list(query)
        except StoreError as exc:  # a broken store is said in the dialog; it never ends the app
            self.app.call_from_thread(self.query_one("#history-status", Label).update, Text(f"Cannot list: {exc}"))
            return
        took = time.perf_counter() - started
        self.app.call_from_thread(self._show, query, summaries, problems, took)

    def _change(self, change: Callable[[], object], done: str = "") -> bool:
        """One change to the store (delete, restore, rename, duplicate), then the list again; a store that
        fails is one notification, and the dialog stays."""
        try:
            change()
        except StoreError as exc:
            self.notify(str(exc), title="The history could not be changed", severity="error", markup=False)
            return False
        if done:
            self.notify(done)
        self.refresh_list()
        return True

    def _show(self, query: str, summaries: list[Summary], problems: list[str], took: float) -> None:
        if query != self.query_text:
            return  # an earlier query's matches, arriving late: the current one's are on their way
        self.summaries = summaries
        self.listed = query
        options = []
        for s in summaries[:SHOWN]:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.updated))
            prompt = Text(no_wrap=True, overflow="ellipsis")
            prompt.append(f"{when}  ", style="dim")
            prompt.append(escape_controls(s.title or "untitled"), style="bold")
            prompt.append(f"  {s.turns} turns · {escape_controls(s.model)}", style="dim")
            options.append(Option(prompt, id=s.id))
        history = self.query_one(OptionList)
        history.set_options(options)
        status = f"{len(summaries)} conversations · {took * 1000:.0f} ms"
        if len(summaries) > SHOWN:
            status += f" · showing the newest {SHOWN}; search to narrow"
        if problems:
            files = "1 file" if len(problems) == 1 else f"{len(problems)} files"
            status += f" · {files} could not be read (left in place): {escape_controls(problems[0])}"
        self.query_one("#history-status", Label).update(Text(status))
        if self.open_when_listed:
            self._open_top()

    def _selected(self) -> str | None:
        history = self.query_one(OptionList)
        if history.highlighted is None:
            return None
        return history.get_option_at_index(history.highlighted).id

    def on_option_list_option_selected(self, message: OptionList.OptionSelected) -> None:
        self._open(message.option.id or "")

    def _open(self, conversation_id: str) -> None:
        try:
            self.dismiss(self.store.load(conversation_id))
        except StoreError as exc:
            self.notify(str(exc), severity="error", markup=False)

    def action_delete(self) -> None:
        selected = self._selected()
        if selected and self._change(partial(self.store.delete, selected), "Deleted. ctrl+z brings it back."):
            self.deleted.append(selected)

    def action_undo(self) -> None:
        if self.deleted and self._change(partial(self.store.restore, self.deleted[-1])):
            self.deleted.pop()

    def action_rename(self) -> None:
        selected = self._selected()
        if not selected:
            return
        title = next((s.title for s in self.summaries if s.id == selected), "")

        def done(text: str | None) -> None:
            if text and text.strip():
                self._change(partial(self.store.rename, selected, text.strip().splitlines()[0]))

        self.app.push_screen(EditScreen("Rename conversation", title), done)

    def action_duplicate(self) -> None:
        selected = self._selected()
        if selected:
            self._change(partial(self.store.duplicate, selected))

    def action_cancel(self) -> None:
        self.dismiss(None)
