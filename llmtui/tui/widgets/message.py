"""A message's lines, as the conversation pane draws them: its header, its text (a reply's as Markdown) and
its footer. A written message's text is rendered once (LineCache); a reply being written is rendered as it
grows, its finished blocks once and only its last block again (LiveMarkdown)."""

from __future__ import annotations

import re
from collections.abc import Callable

from rich.console import RenderableType
from rich.markdown import Markdown as RichMarkdown
from rich.segment import Segment
from rich.text import Text
from rich.theme import Theme as RichTheme
from textual.app import App
from textual.cache import LRUCache
from textual.color import Color
from textual.strip import Strip
from textual.theme import Theme

from llmtui.core.conversation import Turn
from llmtui.core.text import escape_controls

_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)
# Where a reply being written may be cut into a finished part and the block still growing: a blank line,
# outside a code fence, not followed by a list item or an indented line (a list's items, loose or not,
# render as one list only together).
_BLOCK_END = re.compile(r"\n\n+(?![ \t]|[-*+][ \t]|\d+[.)][ \t])")


def code_blocks(markdown: str) -> list[str]:
    """The fenced code blocks of a Markdown text, in order."""
    return [m.group(1).rstrip("\n") for m in _FENCE.finditer(markdown)]


def turn_header(turn: Turn) -> Text:
    """A message's first line: who wrote it, which version, which model, where it branched."""
    text = Text("You" if turn.role == "user" else "Assistant", style="bold")
    if len(turn.versions) > 1:
        text.append(f"  ‹ version {turn.current + 1}/{len(turn.versions)} ›")
    version = turn.version
    if version.model and turn.role == "assistant":
        text.append(f"  · {escape_controls(version.model)}", style="dim")
    if version.branched_from:
        text.append(f"  branched at step {version.branched_from[1]}", style="dim italic")
    return text


def turn_footer(turn: Turn) -> Text:
    """How a message ended: stopped, interrupted, an error, and its figures (empty when none)."""
    version = turn.version
    text = Text()
    if version.error:
        text.append(f"✖ {escape_controls(version.error)}", style="bold red")
    elif version.partial and version.stats is not None and version.stats.stop_reason == "stopped":
        text.append("■ stopped", style="bold yellow")
    elif version.partial and version.stats is None and turn.role == "assistant" and version.events:
        text.append("… interrupted", style="yellow")
    if version.stats is not None:
        s = version.stats
        text.append(
            f"  {s.new_tokens} tokens · {s.tokens_per_second:.1f} tok/s · ttft {s.ttft_s:.2f}s · {s.stop_reason}",
            style="dim",
        )
        if s.stop_reason == "max_tokens":
            text.append("  (continue: ctrl+o)", style="dim")
        if s.dropped_turns:
            text.append(f"  {s.dropped_turns} oldest turns left out to fit the context", style="dim")
    return text


def draw_turn(app: App, turn: Turn, width: int, lines: LineCache, live: LiveMarkdown | None = None) -> list[Strip]:
    """A message's lines at ``width`` cells: its header, its text and its footer. A written message's text
    comes from ``lines`` (rendered there the first time); a reply being written is drawn by ``live`` as it
    grows, with no footer until it ends."""
    text = escape_controls(turn.content)
    header = render_text(app, turn_header(turn), width, wrap=False)
    if live is not None:
        return header + live.draw(app, text, width)
    markdown = turn.role == "assistant"
    key = (text, markdown, width, app.current_theme.name)
    body = lines.get(key, lambda: render_written(app, text, markdown, width))
    end = turn_footer(turn)
    return header + body + (render_text(app, end, width) if end else [])


class LineCache:
    """Written messages' lines, by text, width and theme: rendered once, drawn from here on every mount."""

    def __init__(self, size: int = 1024) -> None:
        self._lines: LRUCache[tuple[str, bool, int, str], list[Strip]] = LRUCache(size)

    def get(self, key: tuple[str, bool, int, str], render: Callable[[], list[Strip]]) -> list[Strip]:
        lines = self._lines.get(key)
        if lines is None:
            lines = self._lines[key] = render()
        return lines


class LiveMarkdown:
    """A reply being written, drawn as it grows. Rendering the whole text again at every update would cost
    more the longer the reply; the part before its last finished block (see _BLOCK_END) is rendered when
    that part grows and kept, and only the rest is rendered each time. The two join as Rich joins blocks;
    where they would not (a rare construct split at a blank line), the reply is drawn whole, from its text,
    once it ends."""

    def __init__(self) -> None:
        self._head: tuple[str, int, str, list[Strip]] = ("", 0, "", [])  # text, width, theme, its lines

    def draw(self, app: App, text: str, width: int) -> list[Strip]:
        """The lines of ``text`` (the reply so far, escaped) at ``width`` cells."""
        cut, fences, scanned = 0, 0, 0
        for m in _BLOCK_END.finditer(text):  # fences counted once over the text, not again from its start
            fences += text.count("```", scanned, m.start())
            scanned = m.start()
            if fences % 2 == 0:
                cut = m.end()
        head_text, tail_text = text[:cut], text[cut:]
        theme = app.current_theme.name
        if self._head[:3] != (head_text, width, theme):
            lines = render_written(app, head_text, True, width) if head_text.strip() else []
            self._head = (head_text, width, theme, lines)
        head = self._head[3]
        tail = render_written(app, tail_text, True, width) if tail_text.strip() else []
        # Rich puts a blank line between blocks, unless one side brings its own (a list begins with one).
        joined = not head or not tail or not head[-1].cell_length or not tail[0].cell_length
        return head + ([] if joined else [Strip.blank(0)]) + tail or [Strip.blank(width)]


def render_written(app: App, text: str, markdown: bool, width: int) -> list[Strip]:
    """A message's text as lines ``width`` cells wide: a reply's as Markdown, in the app theme's colours;
    yours as you typed it."""
    theme = app.current_theme
    renderable: RenderableType
    if markdown:
        # Links are shown as text with their address: a hyperlink's target would be the model's to set.
        code = "ansi_dark" if theme.dark else "ansi_light"
        renderable = RichMarkdown(text, code_theme=code, hyperlinks=False)
    else:
        renderable = Text(text)
    with app.console.use_theme(_markdown_theme(theme)):
        return render_text(app, renderable, width) or [Strip.blank(width)]


def render_text(app: App, renderable: RenderableType, width: int, *, wrap: bool = True) -> list[Strip]:
    """A renderable's lines at ``width`` cells (cut with an ellipsis rather than wrapped: ``wrap`` False)."""
    console = app.console
    options = console.options.update(width=max(1, width), height=None, highlight=False, no_wrap=not wrap)
    if not wrap:
        options = options.update(overflow="ellipsis")
    lines = console.render_lines(renderable, options, pad=False, new_lines=False)
    return [Strip(Segment.simplify(line)) for line in lines]


def _markdown_theme(theme: Theme) -> RichTheme:
    """Rich's Markdown styles in the app theme's colours (Rich's own are fixed colours of its own)."""
    # Through Textual's parser: a theme may name its colours in ways Rich does not read (hsl(), alpha).
    primary = Color.parse(theme.primary).hex6
    secondary = Color.parse(theme.secondary or theme.primary).hex6
    accent = Color.parse(theme.accent or theme.primary).hex6
    return RichTheme(
        {
            "markdown.h1": f"bold {primary}",
            "markdown.h1.border": primary,
            "markdown.h2": f"bold underline {primary}",
            "markdown.h3": f"bold {secondary}",
            "markdown.h4": f"italic {secondary}",
            "markdown.code": f"bold {accent}",
            "markdown.link": accent,
            "markdown.link_url": f"underline {accent}",
            "markdown.item.bullet": f"bold {accent}",
            "markdown.item.number": f"bold {accent}",
            "markdown.block_quote": f"italic {secondary}",
            "markdown.hr": secondary,
            "markdown.table.border": secondary,
        }
    )
