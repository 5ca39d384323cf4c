"""The chip view paints what arrives, wherever it is scrolled to."""

from __future__ import annotations

from textual.app import App, ComposeResult

from llmtui.tui.widgets.chips import Chip, ChipView


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
