"""One message of the conversation pane (drawn from lines rendered once: see MessageView), and the system
prompt above them."""

from __future__ import annotations

import re
from collections.abc import Callable

from rich.console import RenderableType
from rich.markdown import Markdown as RichMarkdown
from rich.segment import Segment
from rich.text import Text
from rich.theme import Theme as RichTheme
from textual import events
from textual.app import App
from textual.binding import Binding
from textual.cache import LRUCache
from textual.color import Color
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.strip import Strip
from textual.theme import Theme
from textual.widget import Widget
from textual.widgets import Markdown, Static

from llmtui.core.conversation import Turn
from llmtui.core.text import escape_controls

_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)


def code_blocks(markdown: str) -> list[str]:
    """The fenced code blocks of a Markdown text, in order."""
    return [m.group(1).rstrip("\n") for m in _FENCE.finditer(markdown)]


class MessageView(Widget, can_focus=True):
    """One turn: who, which version, the text, and how it ended.

    A written message is one widget drawing its own lines: its header, its text rendered once (see
    render_written and LineCache) and its footer. Only a reply being written is a container, of a header,
    Textual's Markdown (which the reply streams into) and a footer; it is drawn as the others once it ends.
    A Markdown widget is a tree of a widget per block, each laid out and rendered the first time it is
    seen: tens of milliseconds a screenful, which every page key would pay.
    """

    BINDINGS = [
        Binding("c", "act('copy')", "Copy"),
        Binding("b", "act('copy_code')", "Copy code"),
        Binding("e", "act('edit')", "Edit"),
        Binding("t", "act('inspect')", "Tokenize"),
        Binding("p", "act('score')", "Surprise"),
        Binding("s", "act('stream')", "Show tokens"),
        Binding("left,alt+left", "act('version', -1)", "Prev version"),
        Binding("right,alt+right", "act('version', 1)", "Next version"),
    ]

    # Nothing scrolls inside a message, so its virtual size is only its size. Widget's own reactive lays the
    # whole screen out again when it changes: each layout that resized messages (a page of them shown, a
    # reply grown by a line) asked for a second one.
    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)

    class Resized(Message):
        """Its height may have changed (its text was drawn, a reply grew): the pane measures it again."""

        def __init__(self, view: MessageView) -> None:
            super().__init__()
            self.view = view

    class Action(Message):
        """The user asked for something on a message (copy, edit, version, ...)."""

        def __init__(self, index: int, what: str, arg: int = 0) -> None:
            super().__init__()
            self.index = index
            self.what = what
            self.arg = arg

    def __init__(self, index: int, turn: Turn, lines: LineCache | None = None) -> None:
        super().__init__(classes=f"message {turn.role}")
        self.index = index
        self.turn = turn
        self._lines = lines if lines is not None else LineCache()
        self._drawn: tuple[int, str, list[Strip]] | None = None  # width, theme, the lines drawn

    @property
    def written(self) -> bool:
        """Drawn from its text, not streamed into (no reply is being written into it)."""
        return not self.children

    def header(self) -> Text:
        """Who wrote it, which version, which model, where it branched."""
        return turn_header(self.turn)

    def footer(self) -> Text:
        """How it ended: stopped, interrupted, an error, and its figures."""
        return turn_footer(self.turn)

    def show_turn(self, index: int, turn: Turn) -> None:
        """Show another written turn: the pane gives a view leaving its window the turn entering it
        rather than build a new one."""
        if turn.role != self.turn.role:
            self.remove_class(self.turn.role)
            self.add_class(turn.role)
        self.index = index
        self.turn = turn
        self._drawn = None
        self.refresh(layout=True)

    def refresh_turn(self) -> None:
        """Redraw after the turn changed (finished, switched version): its text is written now."""
        self._drawn = None
        if self.children:
            self.remove_children()
        self.refresh(layout=True)

    async def live(self) -> Markdown:
        """The Markdown a reply streams into (continuing one: its text so far), in place of the drawn text."""
        if not self.written:
            return self.query_one(Markdown)
        markdown = Markdown(escape_controls(self.turn.content))
        await self.mount_all(
            [Static(self.header(), classes="header"), markdown, Static(self.footer(), classes="footer")]
        )
        return markdown

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if not self.written:
            return super().get_content_height(container, viewport, width)
        return len(self._draw(width))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        lines = self._draw(width) if self.written else []
        return lines[y] if y < len(lines) else Strip.blank(width)

    def _draw(self, width: int) -> list[Strip]:
        theme = self.app.current_theme.name
        if self._drawn is None or self._drawn[:2] != (width, theme):
            self._drawn = (width, theme, draw_turn(self.app, self.turn, width, self._lines))
        return self._drawn[2]

    def action_act(self, what: str, arg: int = 0) -> None:
        self.post_message(self.Action(self.index, what, arg))

    def on_click(self, event: events.Click) -> None:
        self.focus()

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(self.Resized(self))


class SystemPromptView(Static, can_focus=True):
    """The system prompt, always visible; Enter or e edits it, p scores it."""

    BINDINGS = [Binding("e,enter", "edit", "Edit system prompt"), Binding("p", "score", "Surprise")]

    class Edit(Message):
        pass

    class Score(Message):
        """Score the system prompt in the inspector."""

    def show(self, system: str) -> None:
        text = Text("System  ", style="bold")
        text.append(
            escape_controls(system) if system else "(none · press e to set one)",
            style="" if system else "dim",
        )
        self.update(text)

    def action_edit(self) -> None:
        self.post_message(self.Edit())

    def action_score(self) -> None:
        self.post_message(self.Score())


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


def draw_turn(app: App, turn: Turn, width: int, lines: LineCache) -> list[Strip]:
    """A written message's lines at ``width`` cells: its header, its text (from ``lines``, rendered there
    the first time) and its footer. What MessageView draws, and so, counted, its height: the pane knows a
    message's height from this before it mounts it."""
    theme = app.current_theme.name
    text = escape_controls(turn.content)
    markdown = turn.role == "assistant"
    body = lines.get((text, markdown, width, theme), lambda: render_written(app, text, markdown, width))
    end = turn_footer(turn)
    return _render(app, turn_header(turn), width, wrap=False) + body + (_render(app, end, width) if end else [])


class LineCache:
    """Written messages' lines, by text, width and theme: rendered once, drawn from here on every mount."""

    def __init__(self, size: int = 1024) -> None:
        self._lines: LRUCache[tuple[str, bool, int, str], list[Strip]] = LRUCache(size)

    def get(self, key: tuple[str, bool, int, str], render: Callable[[], list[Strip]]) -> list[Strip]:
        lines = self._lines.get(key)
        if lines is None:
            lines = self._lines[key] = render()
        return lines


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
        return _render(app, renderable, width) or [Strip.blank(width)]


def _render(app: App, renderable: RenderableType, width: int, *, wrap: bool = True) -> list[Strip]:
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
