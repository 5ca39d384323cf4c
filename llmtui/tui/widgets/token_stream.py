"""The live token stream: the reply as chips, coloured by the probability of each chosen token."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from llmtui.core.events import TokenEvent
from llmtui.tui.widgets.chips import PROB_LEGEND, Chip, ChipView, chip_label, prob_kind

Display = Callable[[int], str]  # token id -> its piece for humans (true bytes, whitespace visible)


class TokenChips(ChipView):
    """The chips of one reply."""

    BINDINGS = [Binding("i", "toggle_ids", "Token ids")]

    show_ids: reactive[bool] = reactive(False)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.events: list[TokenEvent] = []
        self.display_piece: Display | None = None

    def _chip(self, event: TokenEvent) -> Chip:
        known = self.display_piece is not None and event.token_id is not None
        label = self.display_piece(event.token_id) if known else chip_label(event.text)  # type: ignore[misc,arg-type]
        if self.show_ids:
            label = f"{label}│{'?' if event.token_id is None else event.token_id}"
        return Chip(label, prob_kind(event.prob), breaks="↵" in label)

    def show(self, events: Sequence[TokenEvent]) -> None:
        self.events = list(events)
        self.set_chips([self._chip(e) for e in self.events])

    def append(self, events: Sequence[TokenEvent]) -> None:
        self.events.extend(events)
        self.append_chips([self._chip(e) for e in events])

    def watch_show_ids(self) -> None:
        self.set_chips([self._chip(e) for e in self.events])

    def action_toggle_ids(self) -> None:
        self.show_ids = not self.show_ids


class Legend(Static):
    """What the chip colours mean, drawn in the theme's own colours."""

    def on_mount(self) -> None:
        self._draw()
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())

    def _draw(self) -> None:
        chips = self.screen.query(TokenChips)
        styler = chips.first() if chips else None
        text = Text("p ")
        for bucket, label in enumerate(PROB_LEGEND, start=1):
            style = styler.chip_style(f"prob-{bucket}") if styler else ""
            text.append(f" {label} ", style=style)
            text.append(" ")
        self.update(text)


class TokenStream(Vertical):
    """The pane: a title line, the chips, and the legend."""

    def compose(self) -> ComposeResult:
        yield TokenChips(id="chips")
        yield Legend(id="legend")

    @property
    def chips(self) -> TokenChips:
        return self.query_one(TokenChips)
