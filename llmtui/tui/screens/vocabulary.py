"""The vocabulary browser: search pieces by substring, /regex/ or id range; special tokens listed; enter on
a token lists its nearest neighbours in embedding space (when the engine shows the model's embeddings)."""

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

from llmtui.backends.base import Backend
from llmtui.core.errors import InvalidValue, LlmtuiError
from llmtui.core.lens import Neighbour
from llmtui.core.text import escape_controls
from llmtui.core.tokens import TokenizerView

SHOWN = 500
NEIGHBOURS = 20


class VocabularyScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, view: TokenizerView, backend: Backend | None = None) -> None:
        super().__init__()
        self.view = view
        self.backend = backend  # for neighbours: None, or one without the capability, and enter says why

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

    def _row(self, token_id: int, note: str = "") -> Option:
        row = Text(no_wrap=True)
        row.append(f"{token_id:>7}  ", style="dim")
        row.append(escape_controls(self.view.pieces[token_id]), style="bold")
        row.append(f"  {self.view.display(token_id)}")
        if token_id in self.view.special_ids:
            row.append("  special", style="magenta")
        if note:
            row.append(f"  {note}", style="dim")
        return Option(row, id=str(token_id))

    def _show(self, ids: list[int], total: int, took: float) -> None:
        self.query_one(OptionList).set_options([self._row(token_id) for token_id in ids])
        shown = f" (showing {len(ids)})" if total > len(ids) else ""
        self.query_one("#vocab-status", Label).update(Text(f"{total} matches{shown} · {took * 1000:.0f} ms"))

    def on_option_list_option_selected(self, message: OptionList.OptionSelected) -> None:
        message.stop()
        backend = self.backend
        if backend is None or not backend.capabilities.lens:
            self.notify("Neighbours need the model's embeddings, which this engine does not show.", severity="warning")
        elif message.option.id is not None:
            self.neighbours(backend, int(message.option.id))

    @work(thread=True, exclusive=True)
    def neighbours(self, backend: Backend, token_id: int) -> None:
        """The nearest tokens by cosine of the embedding rows, asked of the engine off the UI thread."""
        started = time.perf_counter()
        try:
            found = backend.neighbours(token_id, NEIGHBOURS)
        except LlmtuiError as exc:
            self.app.call_from_thread(self.query_one("#vocab-status", Label).update, Text(str(exc)))
            return
        self.app.call_from_thread(self._show_neighbours, token_id, found, time.perf_counter() - started)

    def _show_neighbours(self, token_id: int, found: dict[str, list[Neighbour] | None], took: float) -> None:
        options = [self._row(token_id, "← nearest to this, by cosine")]
        for which, neighbours in found.items():
            for n in neighbours or ():
                options.append(self._row(n.token_id, f"{which} {n.cosine:.3f}"))
        self.query_one(OptionList).set_options(options)
        tied = " (the output head is tied to them)" if found.get("output") is None else " and of the output head"
        status = f"nearest to {self.view.display(token_id)} by the input embeddings{tied} · {took * 1000:.0f} ms"
        self.query_one("#vocab-status", Label).update(Text(status))

    def action_close(self) -> None:
        self.dismiss(None)
