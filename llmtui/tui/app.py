"""The application: themes, the keymap, signals and quitting. The workstation screen does the rest."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterable, Sequence
from typing import Any

from rich.segment import Segment
from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.color import Color
from textual.css.stylesheet import StylesheetParseError
from textual.filter import LineFilter
from textual.notifications import SeverityLevel
from textual.screen import Screen

from llmtui.backends.base import Backend, Reply, StartBackend
from llmtui.backends.process import start_engine_process
from llmtui.core.choices import ModelOptions
from llmtui.core.conversation import Conversation
from llmtui.core.errors import LlmtuiError
from llmtui.core.keymap import DEFAULT_KEYS
from llmtui.core.sampling import SamplingParams
from llmtui.core.text import escape_controls, has_controls, strip_controls
from llmtui.store.conversations import ConversationStore
from llmtui.store.settings import Settings, save_settings
from llmtui.tui.collector import QuietCollector
from llmtui.tui.commands import system_commands
from llmtui.tui.themes import DEFAULT_VARIABLES, load_themes
from llmtui.tui.widgets.status import StatusBar
from llmtui.tui.workstation import Workstation

DEFAULT_THEME = Settings.theme


class _NoControls(LineFilter):
    """Removes terminal control characters from what widgets draw.

    Text from files (names, ids, error messages quoting them) is escaped visibly where llmtui shows it;
    this guard covers every other path to the screen (Textual's own widgets, a place that forgot), so no
    escape sequence can reach the terminal. A control character takes no cell, so removing it keeps the
    line's width.
    """

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        if not has_controls("".join(segment.text for segment in segments)):
            return segments
        cleaned = [
            segment if segment.control else Segment(strip_controls(segment.text), segment.style, segment.control)
            for segment in segments
        ]
        return [segment for segment in cleaned if segment.text or segment.control]


NO_CONTROLS = _NoControls()


class LlmtuiApp(App[int]):
    """The chat workstation."""

    CSS_PATH = "app.tcss"
    TITLE = "llmtui"
    BINDINGS = [Binding(DEFAULT_KEYS["quit"], "quit", "Quit", id="quit", priority=True)]

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        options: ModelOptions | None = None,
        model: str | None = None,
        start_backend: StartBackend | None = None,
        local_backend: StartBackend | None = None,
        config_path: str | None = None,
        store: ConversationStore | None = None,
        conversation: Conversation | None = None,
        notices: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.config_path = config_path
        self.options = options or ModelOptions.merge(self.settings, model=model)
        # How a backend is started: the engine process by default; tests and benchmarks may pass another, and
        # `--url` a server's. The local one is what switching to a model on this machine starts.
        self.start_backend = start_backend or start_engine_process
        self.local_backend = local_backend or start_backend or start_engine_process
        self._store = store
        self._conversation = conversation or Conversation(system=self.settings.system_prompt)
        themes, theme_problems = load_themes()
        self._notices = [*notices, *theme_problems]
        for theme in themes:
            self.register_theme(theme)
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:  # its file is gone or was skipped above (and said why); settings.toml keeps the name
            self._notices.append(f"The theme {self.settings.theme!r} is not available; using {DEFAULT_THEME}.")
            self.theme = DEFAULT_THEME
        # Every entry was checked when settings.toml was read (core.keymap): a bad one was reported there
        # and its default kept.
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)
        self.collector = QuietCollector()

    def get_default_screen(self) -> Screen:
        self.workstation = Workstation(
            self.options,
            self._conversation,
            SamplingParams(**self.settings.sampling.to_overrides()).validate(),
        )
        return self.workstation

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification passes here (a screen's or widget's notify calls the app's): file names, ids
        and theme names quoted in it are data, so terminal control characters in it are shown escaped."""
        super().notify(
            escape_controls(message), title=escape_controls(title), severity=severity, timeout=timeout, markup=markup
        )

    def get_line_filters(self) -> Sequence[LineFilter]:
        """Textual's filters, then the last guard: no control character any widget draws reaches the terminal."""
        return [*super().get_line_filters(), NO_CONTROLS]

    def on_mount(self) -> None:
        # Full garbage collections wait for a quiet moment (see collector.py): one took up to 300 ms here,
        # which a key pressed meanwhile waited for.
        self.collector.start()
        self.set_interval(0.25, self.collector.tick)
        for notice in self._notices:
            self.notify(notice, severity="warning", timeout=10, markup=False)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.quit_saving)

    def on_unmount(self) -> None:
        self.collector.stop()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.MouseEvent)):
            self.collector.input()
        await super().on_event(event)

    @property
    def store(self) -> ConversationStore:
        if self._store is None:
            self._store = ConversationStore()
        return self._store

    # What tests and the benchmarks watch, kept on the workstation.

    @property
    def backend(self) -> Backend | None:
        """The running backend, or None while none is ready."""
        return self.workstation.backend

    @property
    def conversation(self) -> Conversation:
        return self.workstation.conversation

    @property
    def params(self) -> SamplingParams:
        """The sampling parameters the next reply uses."""
        return self.workstation.params

    @params.setter
    def params(self, params: SamplingParams) -> None:
        self.workstation.params = params

    @property
    def generation(self) -> Reply | None:
        """The reply being written, once the backend has started it; None otherwise."""
        return self.workstation.replies.generation

    @property
    def status(self) -> StatusBar:
        return self.workstation.status

    # -- themes and settings ----------------------------------------------------------------------------

    def get_css_variables(self) -> dict[str, str]:
        return {**DEFAULT_VARIABLES, **super().get_css_variables()}

    def validate_theme(self, theme: str) -> str:
        """A theme is applied only if Textual's stylesheet parses with it; else it is refused in a message."""
        if not self.is_running or theme not in self.available_themes or theme == self.theme:
            return theme
        try:
            stylesheet = self.stylesheet.copy()
            stylesheet.set_variables(self._theme_variables(theme))
            stylesheet.reparse()
        except Exception as exc:  # Textual's parser: whatever it raises, this theme would end the app
            # A StylesheetParseError's text is an object's repr; its errors are rich renderables.
            why = "Textual's stylesheet does not parse with its variables"
            if not isinstance(exc, StylesheetParseError) and str(exc).strip():
                why = str(exc).strip().splitlines()[0]
            self.notify(f"The theme {theme!r} cannot be used: {why}.", severity="error", markup=False)
            return self.theme
        return theme

    def _theme_variables(self, name: str) -> dict[str, str]:
        """The CSS variables a theme gives, as get_css_variables would give them with it applied."""
        theme = self.available_themes[name]
        generated = theme.to_color_system().generate()
        return {**DEFAULT_VARIABLES, **self.get_theme_variable_defaults(), **generated, **theme.variables}

    def watch_theme(self, theme: str) -> None:
        if hasattr(self, "settings") and self.is_running and theme != self.settings.theme:
            # Textual applies the theme on its next turn (refresh_css); saved after that, so a theme that
            # did not apply is never written to settings.toml.
            self.call_next(self._theme_applied, theme)

    def _theme_applied(self, theme: str) -> None:
        if self.theme == theme and theme != self.settings.theme:
            self.save_setting("theme", theme)

    def save_setting(self, key: str, value: Any) -> None:
        """Change one setting and write settings.toml; a problem is shown, never raised."""
        try:
            self.settings = self.settings.with_value(key, value)
            save_settings(self.settings, self.config_path)
        except (LlmtuiError, OSError) as exc:
            self.notify(str(exc), severity="error", markup=False)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, Workstation):
            yield from system_commands(screen)

    # -- quitting ---------------------------------------------------------------------------------------

    def quit_saving(self) -> None:
        """Quit, keeping the reply in flight as partial (ctrl+q, /bye, SIGTERM, SIGHUP)."""
        self.workstation.replies.close()
        if self.backend is not None:
            self.backend.close()  # the engine process ends with its pipe; this also removes its directory
        self.exit(0)

    async def action_quit(self) -> None:
        self.quit_saving()
