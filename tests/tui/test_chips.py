"""The chip view paints what arrives, wherever it is scrolled to."""

from __future__ import annotations

import math

from textual.app import App, ComposeResult

from llmtui.core.events import TokenEvent
from llmtui.tui.widgets.chips import PROB_LEGEND, Chip, ChipView
from llmtui.tui.widgets.token_stream import TokenChips


class OneView(App):
    def compose(self) -> ComposeResult:
        yield ChipView()


async def test_a_chip_appended_to_a_long_scrolled_stream_is_painted():
    app = OneView()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(ChipView)
        view.set_chips([Chip(f"w{i % 10}", "prob-1") for i in range(400)])  # ~100 rows: scrolled far down
        await pilot.pause()
        view.append_chips([Chip("a", "prob-1")])  # follows to the end: the whole view repaints
        await pilot.pause()
        assert view.scroll_offset.y > 0
        view.append_chips([Chip("x", "prob-1")])  # lands on the last row, so only that row is refreshed
        await pilot.pause()
        last = view.chip_layout.row_of[-1] - int(view.scroll_offset.y)
        # What the compositor holds for that row (its line cache), not a fresh render of it.
        painted = "".join(segment.text for segment in view.render_lines(view.region.reset_offset)[last])
        assert painted.rstrip().endswith("x"), painted


# The README's legend, written out here rather than read from the code: prob-1 (≥ 90 %) … prob-5 (< 5 %).
EDGES = [(0.9, 1), (0.5, 2), (0.2, 3), (0.05, 4)]


class OneStream(App):
    def compose(self) -> ComposeResult:
        yield TokenChips()


async def test_each_chip_takes_its_colour_from_its_probability_at_every_edge():
    """A token exactly at an edge is in the bucket above it, one a hair below is in the next: in the chips
    the token stream draws, and in the legend under them."""
    probs = [p for edge, _ in EDGES for p in (edge, math.nextafter(edge, 0.0))] + [1.0, 0.0]
    expected = [k for _, bucket in EDGES for k in (bucket, bucket + 1)] + [1, 5]
    events = [TokenEvent(i, i, f"t{i}", p, p, 0, 1.0, (), 0.0) for i, p in enumerate(probs)]
    app = OneStream()
    async with app.run_test(size=(80, 10)):
        chips = app.query_one(TokenChips)
        chips.show(events)
        assert [chip.kind for chip in chips.chips] == [f"prob-{k}" for k in expected]
    legend = [f"≥{round(edge * 100)}%" for edge, _ in EDGES]
    assert list(PROB_LEGEND) == [*legend, "<5%"]


async def test_a_growing_stream_scrolls_on_without_laying_the_screen_out(monkeypatch):
    """A line more of chips changes only the view's scroll range: the screen is not laid out again (a reflow
    and repaint of every pane, the UI's dearest work while a reply streams), yet the scrollbar and the
    follow reach the new last line."""
    app = OneView()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(ChipView)
        view.set_chips([Chip(f"w{i % 10}", "prob-1") for i in range(300)])  # past the height: a scrollbar
        await pilot.pause()
        layouts = []
        screen = app.screen
        refresh_layout = screen._refresh_layout

        def counted(size=None, scroll=False):
            if not scroll:  # a scroll's own refresh lays out only what it exposes
                layouts.append(size)
            return refresh_layout(size, scroll)

        monkeypatch.setattr(screen, "_refresh_layout", counted)
        lines = view.virtual_size.height
        for _ in range(3):
            view.append_chips([Chip(f"n{i}", "prob-2") for i in range(12)])  # a line or more each time
            await pilot.pause()
        assert view.virtual_size.height > lines
        assert layouts == []
        assert view.vertical_scrollbar.window_virtual_size == view.virtual_size.height
        assert view.scroll_offset.y == view.max_scroll_y > 0
        last = view.chip_layout.row_of[-1] - int(view.scroll_offset.y)
        painted = "".join(segment.text for segment in view.render_lines(view.region.reset_offset)[last])
        assert "n11" in painted, painted
