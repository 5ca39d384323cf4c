"""The application: themes, the keymap, signals and quitting. The workstation screen does the rest."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterable, Sequence
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from llmtui.backends.base import Backend, Reply, StartBackend
from llmtui.backends.process import start_engine_process
from llmtui.core.choices import ModelOptions
from llmtui.core.conversation import Conversation
from llmtui.core.errors import LlmtuiError
from llmtui.core.sampling import SamplingParams
from llmtui.store.conversations import ConversationStore
from llmtui.store.settings import Settings, save_settings
from llmtui.tui.commands import system_commands
from llmtui.tui.themes import DEFAULT_VARIABLES, load_themes
from llmtui.tui.widgets.status import StatusBar
from llmtui.tui.workstation import Workstation


class LlmtuiApp(App[int]):
    """The chat workstation."""

    CSS_PATH = "app.tcss"
    TITLE = "llmtui"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", id="quit", priority=True)]

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        options: ModelOptions | None = None,
        model: str | None = None,
        start_backend: StartBackend | None = None,
        config_path: str | None = None,
        store: ConversationStore | None = None,
        conversation: Conversation | None = None,
        notices: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.config_path = config_path
        self.options = options or ModelOptions.merge(self.settings, model=model)
        # How a backend is started: the engine process by default; tests and benchmarks may pass another.
        self.start_backend = start_backend or start_engine_process
        self._store = store
        self._conversation = conversation or Conversation(system=self.settings.system_prompt)
        themes, theme_problems = load_themes()
        self._notices = [*notices, *theme_problems]
        for theme in themes:
            self.register_theme(theme)
        self.theme = self.settings.theme if self.settings.theme in self.available_themes else "llmtui-dark"
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)

    def get_default_screen(self) -> Screen:
        self.workstation = Workstation(
            self.options,
            self._conversation,
            SamplingParams(**self.settings.sampling.to_overrides()).validate(),
        )
        return self.workstation

    def on_mount(self) -> None:
        for notice in self._notices:
            self.notify(notice, severity="warning", timeout=10, markup=False)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.quit_saving)

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

    def watch_theme(self, theme: str) -> None:
        if hasattr(self, "settings") and self.is_running and theme != self.settings.theme:
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
