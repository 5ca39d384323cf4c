"""The tokenizer inspector: how the model's tokenizer cuts any text, aligned to the source.

Type text (or ``ids: 14350 385``, or ``compare: MODEL``) into its input; by default it shows the prompt
exactly as the model receives it after the chat template. Tokenizing runs on a worker thread and the
chips are drawn with the line API, so 1 MB of text never freezes the UI.

Surprise mode (``p``) colours each token by how likely the model found it after the text before it, as the
token stream colours a reply; the scores arrive a window at a time from the engine (the workstation asks
for them), and the cursor's step goes to the probability sidebar.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Static

from llmtui.core.errors import LlmtuiError
from llmtui.core.events import TokenEvent
from llmtui.core.text import escape_controls
from llmtui.core.tokens import Tokenization, TokenizerView
from llmtui.tui.widgets.chips import Chip, ChipLayout, ChipView, chip_label, prob_bucket
from llmtui.tui.widgets.source import SourceLayout, SourceView


def inspector_chips(
    tokenization: Tokenization,
    *,
    raw: bool = False,
    show_ids: bool = False,
    scores: dict[int, TokenEvent] | None = None,
) -> list[Chip]:
    """Chips for a tokenization: alternating shades show boundaries; special tokens and tokens holding
    part of a character stand out. With ``scores`` (surprise mode), a scored token is coloured by its
    probability instead, as in the token stream."""
    chips = []
    made: dict[tuple[int, str], Chip] = {}  # chips are immutable, and texts repeat their tokens a lot
    view = tokenization.view
    ids, groups = tokenization.ids, tokenization.groups
    last = len(ids) - 1
    for i, token_id in enumerate(ids):
        if token_id in view.special_ids:
            kind = "special"
        elif groups[i] != i or (i < last and groups[i + 1] == i):
            kind = "partial"
        else:
            kind = "tok-a" if i % 2 == 0 else "tok-b"
        if scores and i in scores:
            kind = f"prob-{prob_bucket(scores[i].prob)}"
        chip = made.get((token_id, kind))
        if chip is None:
            shown = chip_label(view.pieces[token_id]) if raw else view.display(token_id)
            breaks = "↵" in shown and not raw
            if show_ids:
                shown = f"{shown}│{token_id}"
            chip = made[(token_id, kind)] = Chip(shown, kind, breaks=breaks)
        chips.append(chip)
    return chips


class InspectorChips(ChipView):
    BINDINGS = [
        Binding("r", "toggle_raw", "Raw pieces"),
        Binding("i", "toggle_ids", "Token ids"),
        Binding("p", "toggle_surprise", "Surprise"),
    ]

    raw: reactive[bool] = reactive(False)
    show_ids: reactive[bool] = reactive(False)
    surprise: reactive[bool] = reactive(False)

    def action_toggle_surprise(self) -> None:
        self.surprise = not self.surprise

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw

    def action_toggle_ids(self) -> None:
        self.show_ids = not self.show_ids


class Inspector(Vertical):
    """The pane. The workstation gives it a TokenizerView once the model's tokenizer is loaded."""

    class PromptWanted(Message):
        """The input was submitted empty: show the prompt again."""

    class ScoresWanted(Message):
        """Surprise mode wants the model's scores for this tokenization (the workstation asks the engine)."""

        def __init__(self, tokenization: Tokenization) -> None:
            super().__init__()
            self.tokenization = tokenization

    class StepChosen(Message):
        """The cursor is on a scored token: its step, for the probability sidebar."""

        def __init__(self, event: TokenEvent) -> None:
            super().__init__()
            self.event = event

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view: TokenizerView | None = None
        self.compare_view: TokenizerView | None = None
        self.tokenization: Tokenization | None = None
        self.compared: Tokenization | None = None
        self.source_title = "prompt"
        self.scores: dict[int, TokenEvent] = {}  # surprise mode: token index -> its step, as they arrive
        self._surprise_next = False  # the text being tokenized is to be shown in surprise mode
        self._chosen_in_source: int | None = None  # the token the source's cursor moved the chips to

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="text to tokenize · ids: 1 2 3 · compare: MODEL · empty: the prompt",
            id="inspect-input",
        )
        yield Static("The inspector shows the prompt once the tokenizer is loaded.", id="inspect-summary")
        yield InspectorChips(id="inspect-chips")
        yield ChipView(id="compare-chips")  # the same text under the compared tokenizer, when there is one
        yield Static("", id="inspect-detail")
        yield SourceView(id="inspect-source")

    @property
    def chips(self) -> InspectorChips:
        return self.query_one(InspectorChips)

    @property
    def source(self) -> SourceView:
        return self.query_one(SourceView)

    # -- what to show -----------------------------------------------------------------------------------

    def show_text(self, text: str, *, title: str, add_special_tokens: bool = True, surprise: bool = False) -> None:
        """Tokenize text off the UI thread and show it (in surprise mode, with ``surprise``)."""
        if self.view is None:
            return
        self.source_title = title
        self._surprise_next = surprise
        chips = self.chips  # read the widgets here: the worker thread touches none
        self._tokenize(self.view, text, add_special_tokens, chips.raw, chips.show_ids, self._widths())

    @work(thread=True, exclusive=True, group="inspect")
    def _tokenize(
        self,
        view: TokenizerView,
        text: str,
        add_special_tokens: bool,
        raw: bool,
        show_ids: bool,
        widths: tuple[int, int],
    ) -> None:
        try:
            tokenization = view.tokenize(text, add_special_tokens=add_special_tokens)
        except LlmtuiError as exc:  # a server's tokenizer (its /tokenize) can fail as servers do
            if view is self.view:  # not a server the workstation has since left
                self.app.call_from_thread(self.app.notify, str(exc), severity="error", markup=False)
            return
        compared = None
        if self.compare_view is not None:
            compared = self.compare_view.tokenize(text, add_special_tokens=add_special_tokens)
        self._laid_out(tokenization, inspector_chips(tokenization, raw=raw, show_ids=show_ids), compared, widths)

    @work(thread=True, exclusive=True, group="inspect")
    def _decode_ids(self, view: TokenizerView, ids: list[int], widths: tuple[int, int]) -> None:
        try:
            tokenization = view.from_ids(ids)
        except LlmtuiError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error", markup=False)
            return
        self._laid_out(tokenization, inspector_chips(tokenization), None, widths)

    def _widths(self) -> tuple[int, int]:
        """The widths the chips and the source wrap at, read on the UI thread for the worker."""
        return self.chips.wrap_width(), self.source.wrap_width()

    def _laid_out(
        self, tokenization: Tokenization, chips: list[Chip], compared: Tokenization | None, widths: tuple[int, int]
    ) -> None:
        """On the worker thread: both panes' rows wrapped here, then shown on the UI thread."""
        layout = ChipLayout.wrap(chips, widths[0])
        source = SourceLayout.wrap(tokenization.text, widths[1])
        self.app.call_from_thread(self._show, tokenization, chips, compared, layout, source)

    def _show(
        self,
        tokenization: Tokenization,
        chips: list[Chip],
        compared: Tokenization | None,
        layout: ChipLayout,
        source: SourceLayout,
    ) -> None:
        if not self.app.is_running:
            return  # the app is shutting down: the panes are being torn down
        self.tokenization = tokenization
        self.compared = compared
        self.scores = {}
        self.chips.follow = False
        self.chips.cursor = None
        self.chips.set_chips(chips, layout)
        self.chips.scroll_home(animate=False)
        other = self.query_one("#compare-chips", ChipView)
        other.display = compared is not None
        if compared is not None:
            other.set_chips(inspector_chips(compared, show_ids=self.chips.show_ids))
        self.source.set_text(tokenization.text, source)
        self._summary()
        self.query_one("#inspect-detail", Static).update("")
        wanted, self._surprise_next = self.chips.surprise or self._surprise_next, False
        if wanted and not self.chips.surprise:
            self.chips.surprise = True  # its watcher asks for the scores
        elif wanted:
            self.post_message(self.ScoresWanted(tokenization))

    def add_scores(self, tokenization: Tokenization, events: list[TokenEvent]) -> None:
        """Scores for ``tokenization`` (dropped if the inspector has moved on to other text): recolour."""
        if tokenization is not self.tokenization or not self.chips.surprise:
            return
        self.scores.update((e.index, e) for e in events)
        self.chips.recolour({e.index: f"prob-{prob_bucket(e.prob)}" for e in events if e.index < len(self.chips.chips)})
        self._summary()

    def _summary(self) -> None:
        t = self.tokenization
        if t is None:
            return
        summary = Text()
        summary.append(f"{escape_controls(self.source_title)}", style="bold")
        summary.append(f" · {t.view.family} · {t.count} tokens · {t.chars} chars · {t.bytes} bytes")
        summary.append(f" · {t.chars_per_token:.2f} chars/token")
        if self.chips.surprise:
            summary.append(f"\nsurprise: {len(self.scores)} of {max(0, t.count - 1)} tokens scored", style="dim")
        if self.compared is not None:
            c = self.compared
            summary.append(
                f"\nvs {escape_controls(c.view.name)}: {c.count} tokens ({c.chars_per_token:.2f} chars/token)"
            )
        self.query_one("#inspect-summary", Static).update(summary)

    # -- input ------------------------------------------------------------------------------------------

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        value = message.value
        if self.view is None:
            self.app.notify("The tokenizer is still loading.", severity="warning")
            return
        if value.startswith("ids:"):
            try:
                ids = [int(x) for x in value[4:].replace(",", " ").split()]
            except ValueError:
                self.app.notify("ids: takes whole numbers separated by spaces.", severity="error")
                return
            self.source_title = "ids"
            self._decode_ids(self.view, ids, self._widths())
        elif value.startswith("compare:"):
            spec = value[8:].strip()
            self._load_compare(spec)
        elif value:
            self.show_text(value, title="text")
        else:
            self.post_message(self.PromptWanted())

    @work(thread=True, exclusive=True, group="inspect-compare")
    def _load_compare(self, spec: str) -> None:
        from llmtui.engine.specs import load_tokenizer

        if not spec:
            self.compare_view = None
        else:
            try:
                self.compare_view = TokenizerView(load_tokenizer(spec), spec)
            except LlmtuiError as exc:
                self.app.call_from_thread(self.app.notify, str(exc), severity="error", markup=False)
                return
        if self.tokenization is not None:
            self.app.call_from_thread(self.show_text, self.tokenization.text, title=self.source_title)

    # -- selection, both ways ---------------------------------------------------------------------------

    def on_chip_view_cursor_moved(self, message: ChipView.CursorMoved) -> None:
        message.stop()
        if message.view is not self.chips:
            return
        t = self.tokenization
        if t is None or message.index >= len(t):
            return
        token = t[message.index]
        detail = Text()
        detail.append(f"#{token.index}  id {token.token_id}  ", style="bold")
        detail.append(escape_controls(token.piece), style="reverse")
        detail.append(f"  bytes {token.hex or '—'}  chars {token.start}–{token.end}")
        if token.special:
            detail.append("  special", style="bold magenta")
        if token.group != token.index or (token.index + 1 < len(t) and t.groups[token.index + 1] == token.index):
            detail.append(f"  part of a character (group from #{token.group})", style="yellow")
        scored = self.scores.get(token.index)
        if scored is not None:
            detail.append(f"  p {scored.prob:.4f}  rank {scored.rank}", style="bold")
            self.post_message(self.StepChosen(scored))
        self.query_one("#inspect-detail", Static).update(detail)
        # A token chosen in the source keeps the source's cursor where the user put it.
        chosen_in_source, self._chosen_in_source = self._chosen_in_source == token.index, None
        self.source.highlight(token.start, token.end, move_cursor=not chosen_in_source)

    def on_source_view_cursor_moved(self, message: SourceView.CursorMoved) -> None:
        message.stop()
        if self.tokenization is None:
            return
        index = self.tokenization.token_at(message.offset)
        if index is not None and index != self.chips.cursor:
            self._chosen_in_source = index  # the chips' CursorMoved, which it posts, comes back after this
            self.chips.cursor = index

    def on_mount(self) -> None:
        self.query_one("#compare-chips", ChipView).display = False
        self.watch(self.chips, "raw", self._labels_changed, init=False)
        self.watch(self.chips, "show_ids", self._labels_changed, init=False)
        self.watch(self.chips, "surprise", self._surprise_changed, init=False)

    def _surprise_changed(self) -> None:
        self._labels_changed()
        self._summary()
        if self.chips.surprise and self.tokenization is not None and not self.scores:
            self.post_message(self.ScoresWanted(self.tokenization))

    def _labels_changed(self) -> None:
        if self.tokenization is not None:
            chips = self.chips
            scores = self.scores if chips.surprise else None
            chips.set_chips(inspector_chips(self.tokenization, raw=chips.raw, show_ids=chips.show_ids, scores=scores))
