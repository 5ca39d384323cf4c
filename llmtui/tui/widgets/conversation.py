"""The conversation pane: the system prompt, each turn with its versions, and the composer.

Only the messages in or near the viewport are mounted (see ConversationView), so a conversation of ten
thousand messages opens as fast as one of ten; each is drawn from lines rendered once (see message.py), which
the pane keeps across mounts, so that paging through it builds no widget tree per block of Markdown.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import AwaitMount, Widget
from textual.widgets import Static, TextArea

from llmtui.core.conversation import Conversation, Turn
from llmtui.core.text import escape_controls
from llmtui.tui.widgets.message import LineCache, MessageView, SystemPromptView, draw_turn


class _Spacer(Widget):
    """Stands in for messages that are not mounted: as tall as they are (or are estimated to be)."""

    DEFAULT_CSS = "_Spacer { height: 0; margin: 0; }"


@dataclass(frozen=True, slots=True)
class _Note:
    """A notice in the pane (not part of the conversation), shown after turn ``after`` - 1."""

    after: int
    text: str


# Messages are mounted a page beyond the viewport either way (so that a page key finds its page built),
# and dropped once more than this further away (so that scrolling to and fro does not rebuild them).
KEEP_LINES = 40


class ConversationView(VerticalScroll):
    """All turns of the active path, of which only those in or near the viewport are mounted.

    A Textual Markdown widget costs tens of milliseconds and megabytes, so a conversation of thousands of
    messages cannot have one each. The pane keeps a list of items (turns and notes) with a height for
    each (estimated until measured), mounts the items that cover the viewport plus a margin, and stands
    spacers of the right height in for the runs of items between them. Scrolling moves the window. The
    view ``message`` last handed out and the focused one stay mounted wherever the window goes: the live
    reply's Markdown is being streamed into, and focus must not jump.
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._turns: list[Turn] = []
        self._notes: list[_Note] = []
        self._items: list[int | _Note] = []  # turn indices and notes, in order
        self._heights: list[int] = []  # lines each item takes, its margin included
        self._measured: list[bool] = []
        self._views: dict[int, Widget] = {}  # item position -> mounted widget
        self._spacers: list[_Spacer] = []
        self._pinned: int | None = None  # a turn index that stays mounted
        self._follow = True  # keep the end in view while heights settle and turns arrive
        self._adjusting = False  # the pane is moving its own scroll position
        self._update_pending = False
        self._prefetch_pending = False
        self._width = 0
        self._lines = LineCache()
        # Lines added above the first item, so that an item above the viewport whose height becomes
        # known moves nothing on screen (scroll anchoring): see _set_heights and _resolve_slack.
        self._slack = 0
        # A message's gutter (border and padding) across and down: what its text's width and its
        # height add; read from a mounted one (the stylesheet's), this until then.
        self._gutter = (3, 0)

    def compose(self) -> ComposeResult:
        yield SystemPromptView(id="system")

    # -- the public face --------------------------------------------------------------------------------

    async def show(self, conversation: Conversation) -> None:
        """Rebuild from a conversation (after a load, a version switch, an edit)."""
        self.query_one(SystemPromptView).show(conversation.system)
        old = list(self._views.values()) + self._spacers
        # All of the pane's state changes before the first await: a window update scheduled earlier runs
        # there, and must find the new turns with their own items (heights measured for another
        # conversation's turns of the same index are not theirs).
        # A copy: the conversation's list grows when a message is sent, and the items must not see a turn
        # before extend() has made its item (a window update in between would look for it).
        self._turns = list(conversation.turns)
        self._notes = [_Note(min(n.after, len(self._turns)), n.text) for n in self._notes]
        self._views, self._spacers, self._pinned = {}, [], None
        self._items, self._heights, self._measured = [], [], []
        self._slack = 0
        self._rebuild_items()
        await self.remove_children(old)
        await self._show_end()

    async def extend(self, conversation: Conversation) -> None:
        """Add the turns not shown yet (a message sent, a reply begun) without rebuilding the others."""
        self._turns = list(conversation.turns)
        self._rebuild_items()
        await self._show_end()

    def message(self, index: int) -> MessageView | None:
        """The view of turn ``index``, mounted (if it was not) and kept mounted until another is asked for."""
        if not 0 <= index < len(self._turns):
            return None
        self._pinned = index
        position = self._items.index(index, index)
        if position not in self._views:
            self._mount_shown()
        view = self._views.get(position)
        return view if isinstance(view, MessageView) else None

    def note(self, text: str) -> None:
        """A notice after the last turn (not part of the conversation)."""
        self._notes.append(_Note(len(self._turns), text))
        self._rebuild_items()
        self._follow = True
        self._mount_shown()
        self.call_after_refresh(self._settle)

    @property
    def mounted(self) -> int:
        """How many items (messages and notes) are mounted now."""
        return len(self._views)

    # -- items and their heights ------------------------------------------------------------------------

    def _rebuild_items(self) -> None:
        """The item list after turns or notes were added; heights already known are kept."""
        old_items, old_heights, old_measured = self._items, self._heights, self._measured
        known = {item: (h, m) for item, h, m in zip(old_items, old_heights, old_measured, strict=True) if m}
        views = {old_items[p]: w for p, w in self._views.items() if p < len(old_items)}
        notes = iter(self._notes)
        note = next(notes, None)
        items: list[int | _Note] = []
        for i in range(len(self._turns) + 1):
            while note is not None and note.after <= i:
                items.append(note)
                note = next(notes, None)
            if i < len(self._turns):
                items.append(i)
        width = self._content_width()
        self._items = items
        self._heights = []
        self._measured = []
        for item in items:
            height, measured = known.get(item, (0, False)) if width == self._width else (0, False)
            self._heights.append(height if measured else self._estimate(item, width))
            self._measured.append(measured)
        self._width = width
        self._views = {p: views[item] for p, item in enumerate(items) if item in views}

    def _content_width(self) -> int:
        return max(10, self.scrollable_content_region.width or self.size.width or 80)

    def _estimate(self, item: int | _Note, width: int) -> int:
        """Lines an item will take at ``width``, before it has been laid out: its text wrapped, plus the
        header, footer and margin."""
        if isinstance(item, _Note):
            return _wrapped(item.text, width - 4) + 3
        turn = self._turns[item]
        footer = 1 if turn.version.stats is not None or turn.version.error else 0
        return 1 + _wrapped(turn.content, width - 3) + footer + 1

    def _measure(self) -> None:
        """Take the laid-out height of every mounted item whose lines the pane does not know: notes and
        a reply being written. A written message's height is known from its lines (see _know): a view
        just given another turn is still laid out at the old one's until the next layout."""
        heights: dict[int, int] = {}
        for position, widget in self._views.items():
            if isinstance(widget, MessageView) and widget.written:
                if widget.is_mounted and widget.outer_size.height:
                    gutter = widget.styles.gutter
                    self._gutter = (gutter.width, gutter.height)
                continue
            height = widget.outer_size.height
            if height and widget.is_mounted:
                heights[position] = height + 1  # the margin below it
        self._set_heights(heights)
        self._know(set(self._views))

    def _know(self, positions: set[int]) -> bool:
        """Find the exact height of each written message among ``positions`` whose height is still an
        estimate, from its lines (rendered here, once, into the line cache its view will draw from), so
        that mounting it moves nothing; whether any height changed. A reply being written and notes are
        measured once laid out instead."""
        width, down = self._width - self._gutter[0], self._gutter[1]
        heights: dict[int, int] = {}
        for position in positions:
            item = self._items[position]
            if self._measured[position] or isinstance(item, _Note):
                continue
            view = self._views.get(position)
            if isinstance(view, MessageView) and not view.written:
                continue
            heights[position] = len(draw_turn(self.app, self._turns[item], width, self._lines)) + down + 1
        return self._set_heights(heights)

    def _set_heights(self, heights: dict[int, int]) -> bool:
        """Set items' heights (now known, not estimated). One above the viewport changes the slack by as
        much the other way, so that what the viewport shows stays where it is; whether any changed."""
        if not heights:
            return False
        starts = self._starts()
        anchor = bisect_right(starts, self.scroll_y) - 1  # the item at the viewport's top line
        changed = False
        for position, height in heights.items():
            delta = height - self._heights[position]
            if delta and position < anchor:
                self._slack -= delta
            changed = changed or bool(delta)
            self._heights[position] = height
            self._measured[position] = True
        return changed

    def _resolve_slack(self, *, keep_view: bool = True) -> None:
        """Give the slack back: every item moves to where its height puts it, and (``keep_view``) the
        scroll position by as much, so that the viewport still shows the same lines. Needed at the top
        of the conversation, where the first item must start at the first line."""
        if not self._slack:
            return
        shift, self._slack = self._slack, 0
        if keep_view:
            self._adjusting = True
            try:
                self.scroll_to(y=max(0, self.scroll_y - shift), animate=False, immediate=True)
            finally:
                self._adjusting = False

    def _top(self) -> int:
        """Where the first item starts: below the system prompt and its margin."""
        return self.query_one(SystemPromptView).outer_size.height + 1

    def _starts(self) -> list[int]:
        """The line each item starts at, and (last) the line after them all."""
        return list(accumulate(self._heights, initial=self._top() + self._slack))

    # -- the window -------------------------------------------------------------------------------------

    def _window(self) -> tuple[set[int], set[int]]:
        """The item positions to mount, as (shown, wanted): those covering the viewport, and those a
        page beyond it either way; both with the last turn, the pinned one, the focused message, and
        the mounted items still within reach of their range."""
        if not self._items:
            return set(), set()
        starts = self._starts()
        height = self.scrollable_content_region.height or self.size.height or 24
        total = starts[-1]
        top = max(0, total - height) if self._follow else int(self.scroll_y)
        # The last turn too: a reply is written (or continued) there, into its Markdown.
        always: set[int] = set()
        if self._turns:
            always.add(self._items.index(len(self._turns) - 1, len(self._turns) - 1))
        if self._pinned is not None and self._pinned < len(self._turns):
            always.add(self._items.index(self._pinned, self._pinned))
        focused = self.app.focused
        always.update(position for position, widget in self._views.items() if widget is focused)

        def within(margin: int) -> set[int]:
            lo = max(0, bisect_right(starts, top - margin) - 1)
            hi = min(len(self._items), bisect_right(starts, top + height + margin))
            # Mounted items stay until they are further away than that, so that scrolling back and forth
            # over a message's edge does not build and drop it each time.
            keep_lo = bisect_right(starts, top - margin - KEEP_LINES) - 1
            keep_hi = bisect_right(starts, top + height + margin + KEEP_LINES)
            return {*range(lo, hi), *(p for p in self._views if keep_lo <= p < keep_hi), *always}

        return within(0), within(height)

    @property
    def _live(self) -> bool:
        """Attached and not being closed: at the app's exit a callback deferred to after a refresh can
        still run once the pane's children are pruned, with nothing left to reconcile against."""
        return self.is_attached and not (self._closing or self._pruning)

    def _reconcile(self, wanted: set[int]) -> list[AwaitMount]:
        """Show exactly the items in ``wanted``, with a spacer for each run of the others between them;
        the mounts of the widgets built for it, to await where the caller needs the new views composed.

        Widgets are reused, not rebuilt: a written message leaving the window is given one entering it,
        spacers are resized, and each is moved into place. Mounting a widget costs Textual a round of
        messages (compose, mount, resize, show) and removing one another (prune), and a key pressed
        meanwhile waits behind them; moving one and giving it other lines costs a layout, which a scroll
        pays anyway.
        """
        first = min(wanted, default=0)
        if first == 0 or self._slack + sum(self._heights[:first]) < 0:
            self._resolve_slack()
        focused = self.app.focused
        leaving = [self._views.pop(p) for p in [p for p in self._views if p not in wanted]]
        spare: dict[str, list[MessageView]] = {"user": [], "assistant": []}
        removed: list[Widget] = []
        for widget in leaving:
            if isinstance(widget, MessageView) and widget.written and widget is not focused:
                spare.setdefault(widget.turn.role, []).append(widget)
            else:
                removed.append(widget)
        spacers, self._spacers = self._spacers, []
        built: set[Widget] = set()
        order: list[Widget] = []

        def spacer(height: int) -> _Spacer:
            widget = spacers.pop(0) if spacers else _Spacer()
            if not widget.is_attached:
                built.add(widget)
            if widget.styles.height is None or widget.styles.height.value != height:
                widget.styles.height = height
            self._spacers.append(widget)
            return widget

        gap = self._slack
        for position in range(len(self._items)):
            if position not in wanted:
                gap += self._heights[position]
                continue
            if gap:
                order.append(spacer(gap))
                gap = 0
            widget = self._views.get(position)
            if widget is None:
                item = self._items[position]
                if isinstance(item, int) and (reused := self._spare(spare, self._turns[item].role)) is not None:
                    reused.show_turn(item, self._turns[item])
                    widget = reused
                else:
                    widget = self._build(item)
                    built.add(widget)
                self._views[position] = widget
            order.append(widget)
        if gap:
            order.append(spacer(gap))
        removed += [w for views in spare.values() for w in views] + spacers
        if removed:
            self.remove_children(removed)
        # Into the DOM in that order: new ones mounted, the others moved where they are not in place.
        previous: Widget = self.query_one(SystemPromptView)
        mounts: list[AwaitMount] = []
        run: list[Widget] = []
        for widget in order:
            if widget in built:
                run.append(widget)
                continue
            if run:
                mounts.append(self.mount_all(run, after=previous))
                previous, run = run[-1], []
            nodes = self._nodes
            if nodes.index(widget) != nodes.index(previous) + 1:
                self.move_child(widget, after=previous)
            previous = widget
        if run:
            mounts.append(self.mount_all(run, after=previous))
        return mounts

    @staticmethod
    def _spare(spare: dict[str, list[MessageView]], role: str) -> MessageView | None:
        """A view leaving the window to show a turn of ``role`` (one of that role first: no restyling)."""
        for views in (spare.get(role, []), *spare.values()):
            if views:
                return views.pop()
        return None

    def _mount_shown(self) -> list[AwaitMount]:
        """Mount what the viewport shows (and the turns that stay mounted), keeping mounted items that
        are still within reach; _prefetch mounts the page either side after that."""
        shown, wanted = self._window()
        if self._know(shown):
            shown, wanted = self._window()
        return self._reconcile(shown | (wanted & set(self._views)))

    def _build(self, item: int | _Note) -> Widget:
        if isinstance(item, _Note):
            return Static(Text(escape_controls(item.text)), classes="note")
        return MessageView(item, self._turns[item], self._lines)

    async def _show_end(self) -> None:
        """Mount the last screenful and keep the end in view."""
        self._follow = True
        for mount in self._mount_shown():
            await mount  # composed, so that message() finds the live reply's Markdown
        self.scroll_end(animate=False, immediate=True)
        self.call_after_refresh(self._settle)

    def _settle(self) -> None:
        """After a layout: take the real heights, keep the end in view if following it, and move the
        window if the viewport is no longer covered."""
        if not self._live:
            return
        self._measure()
        if self._follow:
            self._adjusting = True
            try:
                self.scroll_end(animate=False, immediate=True)
            finally:
                self._adjusting = False
        self._schedule_update()

    def _schedule_update(self) -> None:
        if not self._update_pending:
            self._update_pending = True
            self.call_later(self._update_window)

    def _update_window(self) -> None:
        """Mount what the viewport shows now; the page either side of it follows after the frame."""
        self._update_pending = False
        if not self._live or not self._items:
            return
        self._measure()
        mounted = set(self._views)
        shown, wanted = self._window()
        if wanted == mounted:
            return
        if not shown <= mounted:
            if self._know(shown - mounted):
                shown, wanted = self._window()
            self._reconcile(shown | (wanted & mounted))
            self.call_after_refresh(self._settle)
        elif not self._prefetch_pending:
            # Paint first: a key that scrolls is not held up by messages it does not show.
            self._prefetch_pending = True
            self.call_after_refresh(self._prefetch)

    def _prefetch(self) -> None:
        """After the frame that answered a scroll: mount the page either side of the viewport (and drop
        what is now too far away), all in one layout."""
        self._prefetch_pending = False
        if not self._live or not self._items:
            return
        _, wanted = self._window()
        if self._know(wanted):
            _, wanted = self._window()
        if wanted != set(self._views):
            self._reconcile(wanted)
            self.call_after_refresh(self._settle)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._adjusting or not self._items:
            return
        if new_value >= self.max_scroll_y:
            # At the end, including a position clamped there because measured messages came out
            # shorter than estimated: that is not the user leaving the end.
            self._follow = True
        elif new_value < old_value:
            self._follow = False
        self._schedule_update()

    # Scrolling jumps rather than animates: an animation would move the window through every message
    # on the way.
    def action_scroll_home(self) -> None:
        self._follow = False
        self._resolve_slack(keep_view=False)
        self.scroll_home(animate=False, immediate=True)

    def action_scroll_end(self) -> None:
        self.scroll_end(animate=False, immediate=True)

    def action_page_up(self) -> None:
        self.scroll_page_up(animate=False)

    def action_page_down(self) -> None:
        self.scroll_page_down(animate=False)

    def on_resize(self, event: events.Resize) -> None:
        width = self._content_width()
        if width != self._width and self._items:
            self._measured = [False] * len(self._items)
            self._slack = 0  # every height is an estimate again: nothing to anchor to
            self._rebuild_items()
        self._schedule_update()

    def on_message_view_resized(self, event: MessageView.Resized) -> None:
        """A mounted message changed height (its text drawn, a reply grown or ended): measure it again."""
        event.stop()
        position = next((p for p, w in self._views.items() if w is event.view), None)
        if position is not None and event.view.written:
            self._measured[position] = False  # its lines are counted again (a reply that ended has new ones)
        self.call_after_refresh(self._settle)


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
