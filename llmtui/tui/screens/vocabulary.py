"""The vocabulary browser: search pieces by substring, /regex/ or id range; special tokens listed."""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from llmtui.core.errors import InvalidValue
from llmtui.core.text import escape_controls
from llmtui.core.tokens import TokenizerView

SHOWN = 500


class VocabularyScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, view: TokenizerView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        with Vertical(id="vocab-dialog"):
            yield Label(f"Vocabulary of {self.view.name} · {self.view.size} tokens · {self.view.family}", markup=False)
            yield Input(placeholder="substring · /regex/ · 100-200 · empty: special tokens", id="vocab-search")
            yield OptionList(id="vocab-list")
            yield Label("", id="vocab-status")

    def on_mount(self) -> None:
        self.query_one(Input).focus()
        self.search("")

    def on_input_changed(self, message: Input.Changed) -> None:
        self.search(message.value)

    @work(thread=True, exclusive=True)
    def search(self, query: str) -> None:
        started = time.perf_counter()
        try:
            if not query:
                ids = [i for i, _ in self.view.special_tokens()]
                total = len(ids)
            elif len(query) > 2 and query.startswith("/") and query.endswith("/"):
                ids, total = self.view.search(query[1:-1], regex=True, limit=SHOWN)
            else:
                ids, total = self.view.search(query, limit=SHOWN)
        except InvalidValue as exc:
            self.app.call_from_thread(self.query_one("#vocab-status", Label).update, Text(str(exc)))
            return
        took = time.perf_counter() - started
        self.app.call_from_thread(self._show, ids, total, took)

    def _show(self, ids: list[int], total: int, took: float) -> None:
        options = []
        for token_id in ids:
            row = Text(no_wrap=True)
            row.append(f"{token_id:>7}  ", style="dim")
            row.append(escape_controls(self.view.pieces[token_id]), style="bold")
            row.append(f"  {self.view.display(token_id)}")
            if token_id in self.view.special_ids:
                row.append("  special", style="magenta")
            options.append(Option(row))
        self.query_one(OptionList).set_options(options)
        shown = f" (showing {len(ids)})" if total > len(ids) else ""
        self.query_one("#vocab-status", Label).update(Text(f"{total} matches{shown} · {took * 1000:.0f} ms"))

    def action_close(self) -> None:
        self.dismiss(None)
