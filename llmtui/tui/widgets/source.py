"""The inspector's source text, wrapped at character cells and drawn with Textual's line API.

A tokenizer is inspected on texts of any size, so nothing here grows with the text on the UI thread: the
rows are cut by `SourceLayout.wrap`, a pure function a worker thread runs, and only the visible rows are
ever drawn. It wraps at character cells rather than words: the inspector shows text exactly as the
tokenizer sees it, and a cut can then fall anywhere, as a token's can. Controls are drawn as one-cell
pictures (␉, ␛), so a text's own escape sequences never reach the terminal and every character keeps one
place on screen, which is what lets a click and a token's span map to each other by offset.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import pairwise

from rich.cells import cell_len, get_character_cell_size
from rich.segment import Segment
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from llmtui.tui.widgets.chips import keep_row_in_view

# C0 controls (newline aside: it ends a row), DEL and C1, each as one cell.
_PICTURES = str.maketrans(
    {c: chr(0x2400 + c) for c in range(0x20) if c != 0x0A} | {0x7F: "␡"} | {c: "�" for c in range(0x80, 0xA0)}
)

# Above this many characters a resize rewraps on a worker thread (the old rows are shown meanwhile).
_WRAP_INLINE = 50_000


def glyphs(text: str) -> str:
    """``text`` as it is drawn: every control character one visible cell, newlines dropped."""
    return text.replace("\n", "").translate(_PICTURES)


@dataclass(frozen=True)
class SourceLayout:
    """A text cut into rows of at most ``width`` cells. Row ``r`` holds ``text[starts[r]:starts[r + 1]]``;
    a newline is the last character of its row."""

    width: int
    starts: list[int]

    @classmethod
    def wrap(cls, text: str, width: int) -> SourceLayout:
        """Cut ``text`` into rows; linear in the text, and safe to run on a worker thread."""
        starts = [0]
        offset = 0
        for line in text.split("\n"):
            if len(line) > width or (not line.isascii() and cell_len(glyphs(line)) > width):
                starts.extend(offset + cut for cut in _cuts(glyphs(line), width))
            offset += len(line) + 1
            if offset <= len(text):
                starts.append(offset)
        return cls(width, starts)

    def row_of(self, offset: int) -> int:
        """The row that holds the character at ``offset``."""
        return bisect_right(self.starts, offset) - 1


def _cuts(line: str, width: int) -> list[int]:
    """Where a line of glyphs (one per character) breaks into rows of at most ``width`` cells."""
    if line.isascii():
        return list(range(width, len(line), width))
    cuts: list[int] = []
    column = 0
    for i, ch in enumerate(line):
        cells = get_character_cell_size(ch)
        if column + cells > width and column:
            cuts.append(i)
            column = 0
        column += cells
    return cuts


class SourceView(ScrollView, can_focus=True):
    """A read-only text with a cursor and one highlighted span (the inspector's token)."""

    DEFAULT_CSS = """
    SourceView { overflow-x: hidden; background: $surface; }
    SourceView > .source--span { background: $primary 40%; }
    SourceView > .source--cursor { text-style: reverse; }
    """
    COMPONENT_CLASSES = {"source--span", "source--cursor"}

    BINDINGS = [
        Binding("left", "move(-1)", "Prev character", show=False),
        Binding("right", "move(1)", "Next character", show=False),
        Binding("up", "move_row(-1)", show=False),
        Binding("down", "move_row(1)", show=False),
        Binding("pageup", "move_page(-1)", show=False),
        Binding("pagedown", "move_page(1)", show=False),
        Binding("home", "row_edge(0)", show=False),
        Binding("end", "row_edge(1)", show=False),
        Binding("ctrl+home", "jump(0)", show=False),
        Binding("ctrl+end", "jump(1)", show=False),
    ]

    class CursorMoved(Message):
        """The user moved the cursor (by key or mouse) to a character offset."""

        def __init__(self, view: SourceView, offset: int) -> None:
            super().__init__()
            self.view = view
            self.offset = offset

        @property
        def control(self) -> SourceView:
            return self.view

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.text = ""
        self.source_layout = SourceLayout(0, [0])
        self.cursor = 0
        self.span = (0, 0)  # the highlighted characters, [start, end)

    @property
    def span_text(self) -> str:
        """The highlighted characters."""
        return self.text[self.span[0] : self.span[1]]

    def wrap_width(self) -> int:
        """The width the text wraps at (safe to read from a worker thread)."""
        return max(8, self.scrollable_content_region.width or self.size.width or 40)

    # -- data -------------------------------------------------------------------------------------------

    def set_text(self, text: str, layout: SourceLayout | None = None) -> None:
        """Show ``text``; pass a layout wrapped off the UI thread (at wrap_width) to skip the work here."""
        self.text = text
        self.cursor = 0
        self.span = (0, 0)
        if layout is None or layout.width != self.wrap_width():
            layout = SourceLayout.wrap(text, self.wrap_width())
        self._set_layout(text, layout)
        self.scroll_home(animate=False, immediate=True)

    def highlight(self, start: int, end: int, *, move_cursor: bool = True) -> None:
        """Highlight ``text[start:end]``; with ``move_cursor`` the cursor goes to its start, in view."""
        self.span = (start, end)
        if move_cursor:
            self.cursor = start
            self._keep_in_view(start)
        self.refresh()

    def _set_layout(self, text: str, layout: SourceLayout) -> None:
        if text is not self.text:
            return  # wrapped for a text since replaced
        self.source_layout = layout
        self.virtual_size = Size(layout.width, len(layout.starts))
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        width = self.wrap_width()
        if width == self.source_layout.width:
            return
        if len(self.text) <= _WRAP_INLINE:
            self._set_layout(self.text, SourceLayout.wrap(self.text, width))
            self._keep_in_view(self.cursor)
        else:
            self.run_worker(lambda: self._rewrap(self.text, width), thread=True, exclusive=True, group="rewrap")

    def _rewrap(self, text: str, width: int) -> None:
        layout = SourceLayout.wrap(text, width)
        self.app.call_from_thread(self._set_layout, text, layout)

    # -- drawing ----------------------------------------------------------------------------------------

    def _row_span(self, row: int) -> tuple[int, int]:
        """A row's characters, its newline left out."""
        starts = self.source_layout.starts
        start = starts[row]
        end = starts[row + 1] if row + 1 < len(starts) else len(self.text)
        if end > start and self.text[end - 1] == "\n":
            end -= 1
        return start, end

    def render_line(self, y: int) -> Strip:
        row = int(self.scroll_offset.y) + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if row >= len(self.source_layout.starts):
            return Strip.blank(width, base)
        start, end = self._row_span(row)
        span_style = base + self.get_component_rich_style("source--span", partial=True)
        cursor_style = base + self.get_component_rich_style("source--cursor", partial=True)
        shown_cursor = self.cursor if self.has_focus else -1
        cuts = sorted({start, end, *(p for p in (*self.span, shown_cursor, shown_cursor + 1) if start < p < end)})
        segments: list[Segment] = []
        for a, b in pairwise(cuts):
            style = base
            if a == shown_cursor:
                style = cursor_style
            elif self.span[0] <= a < self.span[1]:
                style = span_style
            segments.append(Segment(glyphs(self.text[a:b]), style))
        if shown_cursor == end and start <= shown_cursor:  # on the newline, or past the last character
            segments.append(Segment(" ", cursor_style))
        return Strip(segments).crop_extend(0, width, base)

    # -- cursor -----------------------------------------------------------------------------------------

    def _move_to(self, offset: int) -> None:
        self.cursor = max(0, min(len(self.text), offset))
        self._keep_in_view(self.cursor)
        self.refresh()
        self.post_message(self.CursorMoved(self, self.cursor))

    def _keep_in_view(self, offset: int) -> None:
        keep_row_in_view(self, self.source_layout.row_of(offset))

    def _column(self, row: int, offset: int) -> int:
        start, _ = self._row_span(row)
        return cell_len(glyphs(self.text[start:offset]))

    def _offset_in_row(self, row: int, column: int) -> int:
        """The character of ``row`` at cell ``column`` (its end when the row is shorter)."""
        start, end = self._row_span(row)
        cells = 0
        for i in range(start, end):
            cells += cell_len(glyphs(self.text[i]))
            if cells > column:
                return i
        return end

    def action_move(self, delta: int) -> None:
        self._move_to(self.cursor + delta)

    def action_move_row(self, delta: int) -> None:
        row = self.source_layout.row_of(self.cursor)
        target = max(0, min(len(self.source_layout.starts) - 1, row + delta))
        self._move_to(self._offset_in_row(target, self._column(row, self.cursor)))

    def action_move_page(self, delta: int) -> None:
        self.action_move_row(delta * max(1, self.scrollable_content_region.height - 1))

    def action_row_edge(self, end: int) -> None:
        start, stop = self._row_span(self.source_layout.row_of(self.cursor))
        self._move_to(stop if end else start)

    def action_jump(self, end: int) -> None:
        self._move_to(len(self.text) if end else 0)

    def on_click(self, event: events.Click) -> None:
        row = int(self.scroll_offset.y) + event.y
        if 0 <= row < len(self.source_layout.starts):
            self._move_to(self._offset_in_row(row, event.x))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
