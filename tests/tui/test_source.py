"""The inspector's source pane: rows cut at character cells, off the UI thread, and the cursor both ways."""

from __future__ import annotations

import threading

import pytest
from rich.cells import cell_len
from textual.app import App, ComposeResult

from llmtui.core.tokens import TokenizerView
from llmtui.tui.widgets import source as source_module
from llmtui.tui.widgets.inspector import Inspector
from llmtui.tui.widgets.source import SourceLayout, SourceView, glyphs
from tests import builders
from tests.tui.conftest import wait_for


def rows(text: str, width: int) -> list[str]:
    starts = SourceLayout.wrap(text, width).starts
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


@pytest.mark.parametrize(
    ("text", "width", "expected"),
    [
        ("abcdefghij", 4, ["abcd", "efgh", "ij"]),
        ("ab\ncd\n", 8, ["ab\n", "cd\n", ""]),  # a final newline leaves an empty row for the cursor
        ("\n\n", 8, ["\n", "\n", ""]),
        ("", 8, [""]),
        ("龍龍龍", 5, ["龍龍", "龍"]),  # a wide character never straddles a row's end
        ("a龍b", 2, ["a", "龍", "b"]),
        ("a\x1b[31mb", 4, ["a\x1b[3", "1mb"]),  # an escape is one cell (␛), never an escape
        ("e\u0301e\u0301e\u0301", 2, ["e\u0301e\u0301", "e\u0301"]),  # combining marks take no cell
    ],
)
def test_rows_are_cut_at_character_cells(text, width, expected):
    cut = rows(text, width)
    assert cut == expected
    assert "".join(cut) == text
    assert all(cell_len(glyphs(row)) <= width for row in cut)


def test_every_control_character_is_drawn_as_one_visible_cell():
    controls = "".join(chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if c != 0x0A)
    drawn = glyphs(controls)
    assert len(drawn) == len(controls) == cell_len(drawn)
    assert not any(ch in controls for ch in drawn)


def test_row_of_finds_the_row_of_each_offset():
    layout = SourceLayout.wrap("abcdefghij\nxy", 4)  # abcd efgh ij↵ xy
    assert [layout.row_of(i) for i in range(14)] == [0] * 4 + [1] * 4 + [2] * 3 + [3] * 3


class OneInspector(App):
    def compose(self) -> ComposeResult:
        yield Inspector()


@pytest.fixture
def view() -> TokenizerView:
    return TokenizerView(builders.byte_level_bpe(), "tiny")


TEXT = "Hello wonderful world 龍\n" * 3


async def shown(pilot, view: TokenizerView) -> Inspector:
    """The inspector of ``OneInspector`` on ``view``, once it shows TEXT."""
    inspector = pilot.app.query_one(Inspector)
    inspector.view = view
    inspector.show_text(TEXT, title="text")
    await wait_for(pilot, lambda: inspector.tokenization is not None)
    return inspector


async def test_the_source_is_wrapped_on_the_worker_thread(view, monkeypatch):
    threads: list[str] = []
    wrap = SourceLayout.wrap.__func__

    def recorded(cls, text, width):
        if text:  # the empty pane is laid out as it is mounted
            threads.append(threading.current_thread().name)
        return wrap(cls, text, width)

    monkeypatch.setattr(source_module.SourceLayout, "wrap", classmethod(recorded))
    app = OneInspector()
    async with app.run_test(size=(100, 40)) as pilot:
        inspector = await shown(pilot, view)
        await pilot.pause()
        assert inspector.source.text == TEXT
        assert threads and threading.main_thread().name not in threads


async def test_the_cursor_in_the_source_moves_the_chips_and_stays_where_it_was_put(view):
    app = OneInspector()
    async with app.run_test(size=(100, 40)) as pilot:
        inspector = await shown(pilot, view)
        t = inspector.tokenization
        long = next(token for token in t if token.end - token.start >= 3)  # a token of several characters
        source = inspector.source
        source.focus()
        await pilot.press(*["right"] * (long.start + 1))  # into the middle of that token
        await pilot.pause()
        assert inspector.chips.cursor == long.index
        assert source.cursor == long.start + 1  # not pulled back to the token's start
        assert source.span_text == TEXT[long.start : long.end]
        await pilot.press("down")  # the next row, same column
        await pilot.pause()
        row = TEXT.index("\n") + 1
        assert source.cursor == row + long.start + 1
        assert inspector.chips.cursor == t.token_at(row + long.start + 1)
        # And back: the chips' cursor moves the source's to its token, in view.
        inspector.chips.focus()
        await pilot.press("end")
        await pilot.pause()
        last = t[-1]
        assert source.cursor == last.start and source.span_text == TEXT[last.start : last.end]


async def test_a_click_in_the_source_chooses_the_token_under_it(view):
    app = OneInspector()
    async with app.run_test(size=(100, 40)) as pilot:
        inspector = await shown(pilot, view)
        offset = TEXT.index("world") + 2
        await pilot.click(SourceView, offset=(offset, 0))
        await pilot.pause()
        assert inspector.source.cursor == offset
        assert inspector.chips.cursor == inspector.tokenization.token_at(offset)
