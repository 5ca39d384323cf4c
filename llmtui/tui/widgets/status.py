"""The status bar: where you are (user@host over SSH), what runs, and how fast."""

from __future__ import annotations

import getpass
import socket

from rich.text import Text
from textual.widgets import Static

from llmtui.core.text import escape_controls

STATE_STYLES = {
    "loading": "yellow",
    "ready": "green",
    "generating": "bold cyan",
    "stopped": "yellow",
    "error": "bold red",
}


def _user_at_host() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()}"


class StatusBar(Static):
    """One line; the app sets fields and calls ``redraw``."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.where = _user_at_host()
        self.model = "—"
        self.device = ""
        self.dtype = ""
        self.context_used = 0
        self.context_max = 0
        self.tokens_per_second = 0.0
        self.ttft = 0.0
        self.state = "loading"
        self.detail = ""

    def on_mount(self) -> None:
        self.redraw()

    def set(self, **fields) -> None:
        for name, value in fields.items():
            setattr(self, name, value)
        self.redraw()

    def redraw(self) -> None:
        """Draw the line. The model's name and the detail (an error may quote a path) come from files and
        other processes: their control characters are shown escaped."""
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {escape_controls(self.where)} ", style="reverse")
        text.append(f" {escape_controls(self.model)}")
        if self.device:
            text.append(f" · {escape_controls(self.device)} {self.dtype}", style="dim")
        if self.context_max:
            text.append(f" · ctx {self.context_used}/{self.context_max}")
        if self.tokens_per_second:
            text.append(f" · {self.tokens_per_second:.1f} tok/s · ttft {self.ttft:.2f}s")
        text.append("  ")
        text.append(f" {self.state} ", style=STATE_STYLES.get(self.state, "") + " reverse")
        if self.detail:
            text.append(f" {escape_controls(self.detail)}", style="dim")
        self.update(text, layout=False)  # one fixed line: no need to lay the screen out again
