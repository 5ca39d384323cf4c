"""The conversation pane: the system prompt, each turn with its versions, and notices, drawn with Textual's
line API.

A Textual widget per message costs a layout of the whole screen whenever one is mounted, moved or resized,
and a conversation of ten thousand messages cannot have one each; paging through it then cost a layout a
key. The pane is one widget: it keeps a height for each item (estimated until the item is drawn), draws the
items the viewport shows, and scrolling is only a repaint. A message is selected by a cursor, which the
message keys (copy, edit, versions, ...) act on.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.cache import LRUCache
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import TextArea

from llmtui.core.conversation import Conversation, Turn
from llmtui.core.text import escape_controls
from llmtui.tui.widgets.chips import keep_row_in_view, set_scroll_range
from llmtui.tui.widgets.message import LineCache, LiveMarkdown, draw_turn, render_text


@dataclass(frozen=True, slots=True)
class _Note:
    """A notice in the pane (not part of the conversation), shown after turn ``after`` - 1."""

    after: int
    text: str


class _System:
    """The system prompt's item: the first, always."""


SYSTEM = _System()
Item = _System | int | _Note  # an int is a turn's index

# The items either side of the viewport drawn after each scroll, so that a page key finds its page drawn;
# a few at a time between events, so that a key pressed meanwhile waits for a few messages at most.
PREFETCH_PAGES = 1
PREFETCH_BATCH = 4
BORDER = "▌"


class ConversationView(ScrollView, can_focus=True):
    """All turns of the active path: a line-API view over their lines, of which only those shown are drawn."""

    COMPONENT_CLASSES = {
        "conversation--user",
        "conversation--assistant",
        "conversation--muted",
        "conversation--cursor",
    }
    DEFAULT_CSS = """
    ConversationView { overflow-x: hidden; }
    ConversationView > .conversation--user { color: $secondary; }
    ConversationView > .conversation--assistant { color: $primary; }
    ConversationView > .conversation--muted { color: $text-muted; }
    ConversationView > .conversation--cursor { background: $boost; }
    """

    BINDINGS = [
        Binding("up", "cursor(-1)", "Previous message", show=False),
        Binding("down", "cursor(1)", "Next message", show=False),
        Binding("home", "first", "First message", show=False),
        Binding("end", "last", "Last message", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("enter", "open", "Edit system prompt", show=False),
        Binding("c", "act('copy')", "Copy"),
        Binding("b", "act('copy_code')", "Copy code"),
        Binding("e", "act('edit')", "Edit"),
        Binding("t", "act('inspect')", "Tokenize"),
        Binding("p", "act('score')", "Surprise"),
        Binding("s", "act('stream')", "Show tokens"),
        Binding("left,alt+left", "act('version', -1)", "Prev version"),
        Binding("right,alt+right", "act('version', 1)", "Next version"),
    ]

    class Action(Message):
        """The user asked for something on a message (copy, edit, version, ...); ``index`` None: on the
        system prompt."""

        def __init__(self, index: int | None, what: str, arg: int = 0) -> None:
            super().__init__()
            self.index = index
            self.what = what
            self.arg = arg

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._cursor: Item | None = None  # the selected item: the system prompt or a turn
        self._system = ""
        self._turns: list[Turn] = []
        self._notes: list[_Note] = []
        self._items: list[Item] = [SYSTEM]
        self._heights: list[int] = [2]  # lines each item takes, the blank line below it included
        self._measured: list[bool] = [False]  # the height is the item's drawn lines', not an estimate
        self._starts: list[int] = [0, 2]  # the line each item starts at, and (last) the line after them all
        self._drawn: LRUCache[Item, list[Strip]] = LRUCache(512)  # items' lines at self._width
        self._lines = LineCache()  # written messages' text, kept across conversations and widths
        self._live: int | None = None  # the turn a reply is being written into
        self._live_markdown = LiveMarkdown()
        self._width = 0
        self._follow = True  # keep the end in view as turns arrive and a reply grows
        self._adjusting = False  # the pane is moving its own scroll position
        self._prefetch_pending = False

    # -- the public face --------------------------------------------------------------------------------

    @property
    def cursor(self) -> Item | None:
        """The selected item (the system prompt or a turn's index), which the message keys act on."""
        return self._cursor

    @cursor.setter
    def cursor(self, item: Item | None) -> None:
        old, self._cursor = self._cursor, item
        if old == item:
            return
        for changed in (old, item):
            self._refresh_item(changed)
        if (old is SYSTEM) != (item is SYSTEM):
            self.refresh_bindings()  # the system prompt's keys are not a message's

    def show(self, conversation: Conversation) -> None:
        """Show a conversation from its start (after a load, a version switch, an edit)."""
        self._system = conversation.system
        # A copy: the conversation's list grows when a message is sent, before extend() is called.
        self._turns = list(conversation.turns)
        self._notes = [_Note(min(n.after, len(self._turns)), n.text) for n in self._notes]
        self._items, self._heights, self._measured = [], [], []
        self._drawn.clear()
        self._rebuild_items()
        self.cursor = self._default_cursor() if self.has_focus else None
        self._show_end()

    def extend(self, conversation: Conversation) -> None:
        """Add the turns not shown yet (a message sent, a reply begun)."""
        self._turns = list(conversation.turns)
        self._rebuild_items()
        self._show_end()

    def show_system(self, system: str) -> None:
        """Show a new system prompt."""
        self._system = system
        self._redraw(SYSTEM)

    def note(self, text: str) -> None:
        """A notice after the last turn (not part of the conversation)."""
        self._notes.append(_Note(len(self._turns), text))
        self._rebuild_items()
        self._show_end()

    def begin_live(self, index: int) -> None:
        """A reply is being written into turn ``index``: draw it from its text as it grows, with no footer."""
        self._live = index
        self._live_markdown = LiveMarkdown()
        self._redraw(index)

    def grew(self) -> None:
        """The reply being written has more text."""
        if self._live is not None:
            self._redraw(self._live)

    def end_live(self) -> None:
        """The reply ended: draw it as a written message (its text whole, its footer)."""
        index, self._live = self._live, None
        if index is not None:
            self._redraw(index)

    def select(self, index: int) -> None:
        """Focus the pane with turn ``index`` selected, and scroll it into view."""
        if 0 <= index < len(self._turns):
            self.cursor = index
            self.focus()
            self._keep_in_view(self._position(index))

    def shown_turns(self) -> list[int]:
        """The turns (by index) whose lines are on screen now."""
        top = int(self.scroll_y)
        shown = self._between(top, top + self.scrollable_content_region.height)
        return [item for item in self._items[shown.start : shown.stop] if isinstance(item, int)]

    def text_of(self, item: Item) -> str:
        """What the pane draws for an item (a turn's index, or SYSTEM), as plain text, a line each."""
        return "\n".join(line.text.rstrip() for line in self._draw(self._position(item)))

    @property
    def notes(self) -> list[_Note]:
        """The notices shown, oldest first."""
        return list(self._notes)

    @property
    def drawn(self) -> int:
        """How many items' lines the pane holds now (what it has drawn, not the conversation's length)."""
        return len(self._drawn)

    # -- items and their heights ------------------------------------------------------------------------

    def _rebuild_items(self) -> None:
        """The item list after turns or notes were added; heights already known are kept."""
        known = {item: h for item, h, m in zip(self._items, self._heights, self._measured, strict=True) if m}
        notes = iter(self._notes)
        note = next(notes, None)
        items: list[Item] = [SYSTEM]
        for i in range(len(self._turns) + 1):
            while note is not None and note.after <= i:
                items.append(note)
                note = next(notes, None)
            if i < len(self._turns):
                items.append(i)
        self._width = self._content_width()
        self._items = items
        self._measured = [item in known for item in items]
        self._heights = [known[item] if item in known else self._estimate(item) for item in items]
        self._reflow()

    def _content_width(self) -> int:
        return max(10, self.scrollable_content_region.width or self.size.width or 80)

    def _estimate(self, item: Item) -> int:
        """Lines an item will take, before it is drawn: its text wrapped, its header and footer, the blank
        line below it."""
        width = self._width
        if isinstance(item, _System):
            return _wrapped("System  " + self._system, width - 2) + 1
        if isinstance(item, _Note):
            return _wrapped(item.text, width - 3) + 1
        turn = self._turns[item]
        footer = 1 if turn.version.stats is not None or turn.version.error else 0
        return 1 + _wrapped(turn.content, width - 3) + footer + 1

    def _reflow(self) -> None:
        """Item starts and the scroll range from the heights."""
        self._starts = list(accumulate(self._heights, initial=0))
        set_scroll_range(self, Size(self._width, self._starts[-1]))

    def _at(self, line: int) -> int:
        """The position of the item drawn at ``line`` (-1 above the first, the item count past the last)."""
        return bisect_right(self._starts, line) - 1

    def _between(self, top: int, end: int) -> range:
        """The positions of the items with a line in [top, end)."""
        return range(max(0, self._at(top)), min(len(self._items), self._at(end - 1) + 1))

    def _position(self, item: Item) -> int:
        if isinstance(item, int):
            return self._items.index(item, item + 1)  # notes only come before a turn
        return self._items.index(item)

    def _measure(self, positions: Iterable[int]) -> None:
        """Draw each of these items whose height is an estimate. One above the viewport's top line that
        changes height moves the scroll position by as much, so that what the viewport shows stays put.
        From the first item whose height changed down, the lines moved: they are repainted."""
        top = int(self.scroll_y)
        anchor = self._at(top)
        shift = 0
        first: int | None = None
        for position in positions:
            if self._measured[position]:
                continue
            height = len(self._draw(position)) + 1
            delta = height - self._heights[position]
            self._heights[position] = height
            self._measured[position] = True
            if delta:
                first = position if first is None else min(first, position)
                if position < anchor:
                    shift += delta
        if first is None:
            return
        self._reflow()
        self.refresh_lines(self._starts[first], self._starts[-1] - self._starts[first])
        if self._follow:
            self._scroll_quietly(self.max_scroll_y)
        elif shift:
            self._scroll_quietly(top + shift)

    def _cover(self) -> None:
        """Draw every item the viewport shows (measuring can move what it shows: until none is left)."""
        height = self.scrollable_content_region.height or self.size.height or 24
        for _ in range(20):
            top = max(0, self._starts[-1] - height) if self._follow else int(self.scroll_y)
            missing = [p for p in self._between(top, top + height) if not self._measured[p]]
            if not missing:
                return
            self._measure(missing)

    def _refresh_item(self, item: Item | None) -> None:
        """Repaint an item's lines (the cursor came or went)."""
        if item is not None and (not isinstance(item, int) or item < len(self._turns)):
            position = self._position(item)
            self.refresh_lines(self._starts[position], self._heights[position])

    def _redraw(self, item: Item) -> None:
        """Draw an item again, its height measured anew (a new height repaints it and all below it). Else
        only the lines that changed are repainted: a frame repaints every widget within the box around all
        that changed in it, and the whole pane's box took 10 ms here, for a growing reply that had gained a
        few words on its last line."""
        before = self._drawn.get(item)
        self._drawn.discard(item)
        position = self._position(item)
        self._measured[position] = False
        self._measure([position])
        after = self._draw(position)
        if before is None or len(before) != len(after):
            self._refresh_item(item)
            return
        changed = [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new]
        if changed:
            self.refresh_lines(self._starts[position] + changed[0], changed[-1] - changed[0] + 1)

    def _show_end(self) -> None:
        self._follow = True
        self._cover()
        self._scroll_quietly(self.max_scroll_y)
        self.refresh()

    def _scroll_quietly(self, y: float) -> None:
        """Move the scroll position for the pane's own reasons (not the user leaving the end)."""
        self._adjusting = True
        try:
            self.scroll_to(y=max(0, min(y, self.max_scroll_y)), animate=False, immediate=True)
        finally:
            self._adjusting = False

    # -- prefetching ------------------------------------------------------------------------------------

    def _schedule_prefetch(self) -> None:
        if not self._prefetch_pending:
            self._prefetch_pending = True
            self.call_after_refresh(self._prefetch)

    def _prefetch(self) -> None:
        """After a frame: draw a few of the items within a page of the viewport, nearest first, and come
        back for more after the events waiting meanwhile."""
        self._prefetch_pending = False
        if not self.is_attached:
            return
        height = self.scrollable_content_region.height or 24
        top = int(self.scroll_y)
        middle = self._at(top)
        around = self._between(top - PREFETCH_PAGES * height, top + (1 + PREFETCH_PAGES) * height)
        near = sorted(around, key=lambda p: abs(p - middle))
        missing = [p for p in near if not self._measured[p]]
        if missing:
            self._measure(missing[:PREFETCH_BATCH])
            if len(missing) > PREFETCH_BATCH:
                self._prefetch_pending = True
                self.call_later(self._prefetch)

    # -- drawing ----------------------------------------------------------------------------------------

    def _draw(self, position: int) -> list[Strip]:
        """An item's lines, ``self._width`` cells each (drawn the first time they are asked for)."""
        item = self._items[position]
        lines = self._drawn.get(item)
        if lines is None:
            lines = self._drawn[item] = self._render_item(item)
        return lines

    def _render_item(self, item: Item) -> list[Strip]:
        width = self._width
        app = self.app
        if isinstance(item, _System):
            text = Text("System  ", style="bold")
            system = escape_controls(self._system)
            text.append(system or "(none · press e to set one)", style="" if system else "dim")
            return _framed(render_text(app, text, width - 2), " ", None, width - 2, self._style("muted"))
        if isinstance(item, _Note):
            body = render_text(app, Text(escape_controls(item.text)), width - 3)
            return _framed(body, "┆ ", None, width - 3, self._style("muted"))
        turn = self._turns[item]
        live = self._live_markdown if item == self._live else None
        lines = draw_turn(app, turn, width - 3, self._lines, live)
        return _framed(lines, BORDER + " ", self._style(turn.role), width - 3, None)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"conversation--{name}", partial=True)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        line = int(self.scroll_y) + y
        position = self._at(line)
        if not 0 <= position < len(self._items):
            return Strip.blank(width)
        lines = self._draw(position)
        offset = line - self._starts[position]
        if offset >= len(lines):
            return Strip.blank(width)  # the blank line below an item
        strip = lines[offset]
        if self.has_focus and self._items[position] == self.cursor:
            background = self.get_component_rich_style("conversation--cursor").bgcolor
            strip = strip.apply_style(Style(bgcolor=background))
        return strip

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._forget_lines())

    def _forget_lines(self) -> None:
        """Every item drawn again (the theme changed: its colours are in the lines)."""
        self._forget_drawn()
        self._cover()
        self.refresh()

    def _forget_drawn(self) -> None:
        self._drawn.clear()
        self._measured = [False] * len(self._items)

    def on_resize(self, event: events.Resize) -> None:
        if self._content_width() != self._width:
            self._forget_drawn()
            self._width = self._content_width()
            self._heights = [self._estimate(item) for item in self._items]
            self._reflow()
        self._cover()
        if self._follow:
            self._scroll_quietly(self.max_scroll_y)
        self._schedule_prefetch()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._adjusting:
            return
        if new_value >= self.max_scroll_y:
            self._follow = True
        elif new_value < old_value:
            self._follow = False
        self._cover()
        self._schedule_prefetch()

    # -- the cursor and the keys ------------------------------------------------------------------------

    def _default_cursor(self) -> Item:
        return len(self._turns) - 1 if self._turns else SYSTEM

    def on_focus(self, event: events.Focus) -> None:
        if self.cursor is None:
            self.cursor = self._default_cursor()
        self._keep_in_view(self._position(self.cursor))
        self._refresh_item(self.cursor)

    def on_blur(self, event: events.Blur) -> None:
        self._refresh_item(self.cursor)

    def _selectable(self, position: int) -> bool:
        return not isinstance(self._items[position], _Note)

    def _move_to(self, position: int, *, bottom: bool = False) -> None:
        self.cursor = self._items[position]
        self._keep_in_view(position, bottom=bottom)

    def _keep_in_view(self, position: int, *, bottom: bool = False) -> None:
        """Scroll as little as it takes to show the item at ``position`` (its ``bottom`` end first when it is
        taller than the viewport)."""
        self._measure([position])
        start, end = self._starts[position], self._starts[position + 1] - 2  # its last line, not its margin
        height = self.scrollable_content_region.height
        if end - start + 1 > height:
            self.scroll_to(y=end - height + 1 if bottom else start, animate=False, immediate=True)
        else:
            keep_row_in_view(self, end)
            keep_row_in_view(self, start)

    def action_cursor(self, delta: int) -> None:
        """The previous or next message; within one taller than the viewport, a line at a time until its
        end is shown."""
        if self.cursor is None:
            return
        position = self._position(self.cursor)
        top, height = int(self.scroll_y), self.scrollable_content_region.height
        start, end = self._starts[position], self._starts[position + 1] - 2
        if (delta < 0 and start < top <= end) or (delta > 0 and start <= top + height - 1 < end):
            self.scroll_to(y=top + delta, animate=False, immediate=True)
            return
        target = position + delta
        while 0 <= target < len(self._items) and not self._selectable(target):
            target += delta
        if 0 <= target < len(self._items):
            self._move_to(target, bottom=delta < 0)

    def action_first(self) -> None:
        self._follow = False
        self.scroll_home(animate=False, immediate=True)
        self._move_to(0)

    def action_last(self) -> None:
        self.scroll_end(animate=False, immediate=True)
        self._move_to(self._position(self._default_cursor()))

    def action_page(self, delta: int) -> None:
        """A page up or down; the cursor, if the page left it behind, on the nearest message shown."""
        height = self.scrollable_content_region.height
        self.scroll_to(y=self.scroll_y + delta * height, animate=False, immediate=True)
        top = int(self.scroll_y)
        # Those with a line of their own on screen (not only the blank line below them).
        shown = [p for p in self._between(top, top + height) if self._selectable(p) and self._starts[p + 1] - 1 > top]
        if shown and (self.cursor is None or self._position(self.cursor) not in shown):
            self.cursor = self._items[shown[-1] if delta > 0 else shown[0]]

    def action_open(self) -> None:
        if self.cursor is SYSTEM:
            self.post_message(self.Action(None, "edit"))

    def action_act(self, what: str, arg: int = 0) -> None:
        if self.cursor is not None:
            self.post_message(self.Action(self.cursor if isinstance(self.cursor, int) else None, what, arg))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # On the system prompt: copy, edit, tokenize and score it; the rest are a message's.
        if action == "act" and self.cursor is SYSTEM:
            return parameters[0] in ("copy", "edit", "inspect", "score")
        if action == "open":
            return self.cursor is SYSTEM
        return True

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        position = self._at(int(self.scroll_y) + offset.y)
        if 0 <= position < len(self._items) and self._selectable(position):
            self._move_to(position)


def _framed(lines: list[Strip], left: str, left_style: Style | None, inner: int, style: Style | None) -> list[Strip]:
    """Lines ``inner`` cells wide, each after ``left`` (a border, a margin) and before a cell of padding."""
    lead = Segment(left, left_style)
    pad = Segment(" ")
    framed = [Strip([lead, *line.crop_extend(0, inner, None), pad]) for line in lines]
    return [line.apply_style(style) for line in framed] if style is not None else framed


def _wrapped(text: str, width: int) -> int:
    """Lines ``text`` takes wrapped at ``width`` cells (estimated by characters)."""
    width = max(1, width)
    return sum(max(1, -(-len(line) // width)) for line in text.split("\n"))


class Composer(TextArea):
    """The message input: Enter sends; Ctrl+J or Alt+Enter inserts a newline (Shift+Enter is not
    distinguishable from Enter in many terminals over SSH)."""

    BINDINGS = [
        Binding("enter", "submit", "Send", show=True),
        Binding("ctrl+j,alt+enter", "newline", "Newline", show=True),
    ]

    class Submitted(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, **kwargs) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.action_submit()
            return
        if event.key in ("ctrl+j", "alt+enter"):
            event.stop()
            event.prevent_default()
            self.action_newline()
            return
        await super()._on_key(event)

    def action_submit(self) -> None:
        text = self.text
        if text.strip():
            self.post_message(self.Submitted(text))
            self.clear()

    def action_newline(self) -> None:
        self.insert("\n")
