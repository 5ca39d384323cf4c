"""The conversation pane: the system prompt, each turn with its versions, and the composer."""

from __future__ import annotations

import re

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Markdown, Static, TextArea

from llmtui.core.conversation import Conversation, Turn
from llmtui.core.text import escape_controls

_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)


def code_blocks(markdown: str) -> list[str]:
    """The fenced code blocks of a Markdown text, in order."""
    return [m.group(1).rstrip("\n") for m in _FENCE.finditer(markdown)]


class MessageView(Vertical, can_focus=True):
    """One turn: who, which version, the text, and how it ended."""

    BINDINGS = [
        Binding("c", "act('copy')", "Copy"),
        Binding("b", "act('copy_code')", "Copy code"),
        Binding("e", "act('edit')", "Edit"),
        Binding("t", "act('inspect')", "Tokenize"),
        Binding("s", "act('stream')", "Show tokens"),
        Binding("left,alt+left", "act('version', -1)", "Prev version"),
        Binding("right,alt+right", "act('version', 1)", "Next version"),
    ]

    class Action(Message):
        """The user asked for something on a message (copy, edit, version, ...)."""

        def __init__(self, index: int, what: str, arg: int = 0) -> None:
            super().__init__()
            self.index = index
            self.what = what
            self.arg = arg

    def __init__(self, index: int, turn: Turn) -> None:
        super().__init__(classes=f"message {turn.role}")
        self.index = index
        self.turn = turn

    def compose(self) -> ComposeResult:
        yield Static(self._header(), classes="header")
        if self.turn.role == "assistant":
            yield Markdown(escape_controls(self.turn.content), classes="body")
        else:
            yield Static(Content(escape_controls(self.turn.content)), classes="body")
        yield Static(self._footer(), classes="footer")

    def _header(self) -> Text:
        turn = self.turn
        text = Text("You" if turn.role == "user" else "Assistant", style="bold")
        if len(turn.versions) > 1:
            text.append(f"  ‹ version {turn.current + 1}/{len(turn.versions)} ›")
        version = turn.version
        if version.model and turn.role == "assistant":
            text.append(f"  · {escape_controls(version.model)}", style="dim")
        if version.branched_from:
            text.append(f"  branched at step {version.branched_from[1]}", style="dim italic")
        return text

    def _footer(self) -> Text:
        version = self.turn.version
        text = Text()
        if version.error:
            text.append(f"✖ {escape_controls(version.error)}", style="bold red")
        elif version.partial and version.stats is not None and version.stats.stop_reason == "stopped":
            text.append("■ stopped", style="bold yellow")
        elif version.partial and version.stats is None and self.turn.role == "assistant" and version.events:
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

    def refresh_turn(self) -> None:
        """Redraw after the turn changed (finished, switched version)."""
        self.query_one(".header", Static).update(self._header())
        self.query_one(".footer", Static).update(self._footer())
        body = self.query_one(".body")
        if isinstance(body, Markdown):
            body.update(escape_controls(self.turn.content))
        else:
            body.update(Content(escape_controls(self.turn.content)))

    def append_text(self, fragment: str) -> None:
        """Streaming: add to the reply without re-rendering what is already there."""
        if fragment:
            self.query_one(Markdown).append(escape_controls(fragment))

    def action_act(self, what: str, arg: int = 0) -> None:
        self.post_message(self.Action(self.index, what, arg))

    def on_click(self, event: events.Click) -> None:
        self.focus()


class SystemPromptView(Static, can_focus=True):
    """The system prompt, always visible; Enter or e edits it."""

    BINDINGS = [Binding("e,enter", "edit", "Edit system prompt")]

    class Edit(Message):
        pass

    def show(self, system: str) -> None:
        text = Text("System  ", style="bold")
        text.append(
            escape_controls(system) if system else "(none · press e to set one)",
            style="" if system else "dim",
        )
        self.update(text)

    def action_edit(self) -> None:
        self.post_message(self.Edit())


class ConversationView(VerticalScroll):
    """All turns of the active path."""

    def compose(self) -> ComposeResult:
        yield SystemPromptView(id="system")

    async def show(self, conversation: Conversation) -> None:
        """Rebuild from a conversation (after a load, a version switch, an edit)."""
        self.query_one(SystemPromptView).show(conversation.system)
        await self.query(MessageView).remove()
        await self.mount_all([MessageView(i, t) for i, t in enumerate(conversation.turns)])
        self.scroll_end(animate=False)

    async def extend(self, conversation: Conversation) -> None:
        """Add the turns not shown yet (a message sent, a reply begun) without rebuilding the others."""
        shown = len(self.query(MessageView))
        await self.mount_all([MessageView(i, t) for i, t in enumerate(conversation.turns) if i >= shown])
        self.scroll_end(animate=False)

    def message(self, index: int) -> MessageView | None:
        for view in self.query(MessageView):
            if view.index == index:
                return view
        return None


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
