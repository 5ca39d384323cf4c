"""Tokens as chips, wrapped into lines, drawn with Textual's line API.

Only the visible lines are ever built, and appending a chip touches only the last line, so the cost of
one more token is the same at token 10 and at token 10,000. The token stream and the inspector both
draw with this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.color import Color
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from llmtui.core.text import visible

# Probability buckets, from the theme's $prob-1 (very likely) to $prob-5 (surprising).
PROB_EDGES = (0.9, 0.5, 0.2, 0.05)
PROB_LEGEND = ("≥90%", "≥50%", "≥20%", "≥5%", "<5%")


# A step whose probability the server did not send: drawn in the panel's colour, no bucket (never a guess).
NO_PROB = "no-prob"


def prob_kind(prob: float | None) -> str:
    """A chip's style key for a token's probability: "prob-1" (very likely) .. "prob-5", or NO_PROB."""
    return NO_PROB if prob is None else f"prob-{prob_bucket(prob)}"


def prob_bucket(prob: float) -> int:
    """1 (very likely) .. 5 (surprising)."""
    for i, edge in enumerate(PROB_EDGES):
        if prob >= edge:
            return i + 1
    return 5


def chip_label(text: str) -> str:
    """A piece for a chip: whitespace visible, controls escaped, never empty."""
    return visible(text) if text else "∅"


def keep_row_in_view(view: ScrollView, row: int) -> None:
    """Scroll a line-API view as little as it takes for content row ``row`` to be on screen."""
    top = int(view.scroll_offset.y)
    height = view.scrollable_content_region.height
    if row < top:
        view.scroll_to(y=row, animate=False, immediate=True)
    elif row >= top + height:
        view.scroll_to(y=row - height + 1, animate=False, immediate=True)


def set_scroll_range(view: ScrollView, size: Size) -> None:
    """Give a line-API view of a fixed height a new virtual size, without a layout of the screen.

    Textual's virtual_size asks for a layout, which reflows and repaints the whole screen (15 to 20 ms here)
    for every line a streaming reply adds: UI time that a small machine takes from the decode loop. The
    scrollbars' range is all that depends on it in a view whose own height does not (a scrollbar that
    appears or goes lays the screen out). The view is not repainted: its caller repaints the lines that
    changed (a scroll that follows repaints it whole).
    """
    if size == view.virtual_size:
        return
    if not view.is_mounted or view.styles.height is None or view.styles.height.is_auto:
        view.virtual_size = size  # the view's own height follows it: the screen lays out again
        return
    view.set_reactive(ScrollView.virtual_size, size)
    view._scroll_update(size)


@dataclass(frozen=True, slots=True)
class Chip:
    """One token drawn as a chip."""

    label: str  # already visible and safe
    kind: str  # a style key: "prob-1".."prob-5", "no-prob", "special", "tok-a", "tok-b", "partial"
    breaks: bool = False  # a newline token: the line ends after it
    width: int = field(init=False)  # cells, measured once

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", cell_len(self.label))


@dataclass
class ChipLayout:
    """Chips wrapped into rows at a width. A pure computation, so a worker thread can do it."""

    width: int
    rows: list[list[int]]  # chip indices on each row
    row_of: list[int]  # chip index -> row
    fill: int  # cells used on the last row

    @classmethod
    def wrap(cls, chips: list[Chip], width: int) -> ChipLayout:
        layout = cls(width, [[]], [], 0)
        layout.extend(chips, 0)
        return layout

    def extend(self, chips: list[Chip], first: int) -> None:
        """Place chips[first:] after those already placed."""
        rows, row_of, fill, width = self.rows, self.row_of, self.fill, self.width
        for i in range(first, len(chips)):
            chip = chips[i]
            cells = min(chip.width, width - 1) + 1  # one cell of gap after each chip
            if fill and fill + cells > width:
                rows.append([])
                fill = 0
            rows[-1].append(i)
            row_of.append(len(rows) - 1)
            fill += cells
            if chip.breaks:
                rows.append([])
                fill = 0
        self.fill = fill


class ChipView(ScrollView, can_focus=True):
    """A wrapped, scrollable row of chips with a cursor."""

    # Chips wrap at the view's width, so there is never anything to scroll to sideways; a horizontal
    # scrollbar could only flicker in while a vertical one takes its columns, laying the screen out twice.
    DEFAULT_CSS = "ChipView { overflow-x: hidden; }"

    BINDINGS = [
        Binding("left", "move(-1)", "Prev token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("up", "move_line(-1)", show=False),
        Binding("down", "move_line(1)", show=False),
        Binding("home", "jump(0)", show=False),
        Binding("end", "jump(-1)", show=False),
    ]

    cursor: reactive[int | None] = reactive(None, always_update=True)

    class CursorMoved(Message):
        """The cursor moved to a chip (by key or mouse)."""

        def __init__(self, view: ChipView, index: int) -> None:
            super().__init__()
            self.view = view
            self.index = index

        @property
        def control(self) -> ChipView:
            return self.view

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.chips: list[Chip] = []
        self.chip_layout = ChipLayout(0, [[]], [], 0)
        self._styles: dict[str, Style] = {}
        self.follow = True  # keep the newest chip in view while chips arrive

    # -- data -------------------------------------------------------------------------------------------

    def set_chips(self, chips: list[Chip], layout: ChipLayout | None = None) -> None:
        """Show these chips; pass a layout wrapped off the UI thread (at wrap_width) to skip the work here."""
        self.chips = chips
        if layout is not None and layout.width == self.wrap_width():
            self.chip_layout = layout
            self._update_virtual_size()
        else:
            self._relayout()
        self.refresh()

    def append_chips(self, chips: list[Chip]) -> None:
        if not chips:
            return
        first_line = len(self.chip_layout.rows) - 1
        first = len(self.chips)
        self.chips.extend(chips)
        self.chip_layout.extend(self.chips, first)
        self._update_virtual_size()
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        # ScrollView.refresh_lines takes lines of the content, not of the screen: it subtracts the scroll.
        self.refresh_lines(first_line, len(self.chip_layout.rows) - first_line)

    def recolour(self, kinds: dict[int, str]) -> None:
        """New style keys for some chips: their labels, and so the layout, stay as they are."""
        for i, kind in kinds.items():
            chip = self.chips[i]
            if chip.kind != kind:
                self.chips[i] = Chip(chip.label, kind, breaks=chip.breaks)
        self.refresh()

    # -- layout -----------------------------------------------------------------------------------------

    def wrap_width(self) -> int:
        """The width chips wrap at (safe to read from a worker thread)."""
        return max(8, self.scrollable_content_region.width or self.size.width or 40)

    def _relayout(self) -> None:
        self.chip_layout = ChipLayout.wrap(self.chips, self.wrap_width())
        self._update_virtual_size()

    def _update_virtual_size(self) -> None:
        rows = self.chip_layout.rows
        lines = len(rows) - (0 if rows[-1] else 1)
        set_scroll_range(self, Size(self.chip_layout.width, max(1, lines)))

    def on_resize(self, event: events.Resize) -> None:
        if self.wrap_width() != self.chip_layout.width:
            self._relayout()
            if self.cursor is not None:
                self._scroll_to_cursor()
            elif self.follow:
                self.scroll_end(animate=False, immediate=True, x_axis=False)

    # -- drawing ----------------------------------------------------------------------------------------

    def chip_style(self, kind: str) -> Style:
        style = self._styles.get(kind)
        if style is None:
            variables = self.app.get_css_variables()
            background = Color.parse(variables.get(kind, variables.get("panel", "#333333")))
            style = Style(bgcolor=background.rich_color, color=background.get_contrast_text(1.0).rich_color)
            self._styles[kind] = style
        return style

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._forget_styles())

    def _forget_styles(self) -> None:
        self._styles.clear()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        line_no = int(self.scroll_offset.y) + y
        width = self.scrollable_content_region.width
        if line_no >= len(self.chip_layout.rows):
            return Strip.blank(width)
        cursor_style = Style(reverse=True, bold=True)
        segments: list[Segment] = []
        for i in self.chip_layout.rows[line_no]:
            chip = self.chips[i]
            label = chip.label
            if chip.width > self.chip_layout.width - 1:
                label = label[: max(1, self.chip_layout.width - 2)] + "…"
            style = self.chip_style(chip.kind)
            if i == self.cursor:
                style = style + cursor_style
            segments.append(Segment(label, style))
            segments.append(Segment(" "))
        return Strip(segments).crop_extend(0, width, None)

    # -- cursor -----------------------------------------------------------------------------------------

    def watch_cursor(self, cursor: int | None) -> None:
        self.refresh()
        if cursor is not None:
            self._scroll_to_cursor()
            self.post_message(self.CursorMoved(self, cursor))

    def _scroll_to_cursor(self) -> None:
        if self.cursor is None or self.cursor >= len(self.chip_layout.row_of):
            return
        keep_row_in_view(self, self.chip_layout.row_of[self.cursor])

    def action_move(self, delta: int) -> None:
        if not self.chips:
            return
        current = self.cursor if self.cursor is not None else len(self.chips) - 1 if delta < 0 else -1
        self.follow = False
        self.cursor = max(0, min(len(self.chips) - 1, current + delta))

    def action_move_line(self, delta: int) -> None:
        if not self.chips:
            return
        if self.cursor is None:
            self.action_move(delta)
            return
        line = max(0, min(len(self.chip_layout.rows) - 1, self.chip_layout.row_of[self.cursor] + delta))
        column = self.chip_layout.rows[self.chip_layout.row_of[self.cursor]].index(self.cursor)
        target = self.chip_layout.rows[line] or self.chip_layout.rows[max(0, line - 1)]
        if target:
            self.follow = False
            self.cursor = target[min(column, len(target) - 1)]

    def action_jump(self, where: int) -> None:
        if self.chips:
            self.follow = where == -1
            self.cursor = len(self.chips) - 1 if where == -1 else 0

    def chip_at(self, x: int, y: int) -> int | None:
        """The chip under a point of the widget (for the mouse)."""
        line_no = int(self.scroll_offset.y) + y
        if not 0 <= line_no < len(self.chip_layout.rows):
            return None
        column = 0
        for i in self.chip_layout.rows[line_no]:
            width = min(self.chips[i].width, self.chip_layout.width - 1)
            if column <= x < column + width + 1:
                return i
            column += width + 1
        return None

    def on_click(self, event: events.Click) -> None:
        index = self.chip_at(event.x, event.y)
        if index is not None:
            self.follow = False
            self.cursor = index
