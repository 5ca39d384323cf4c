"""The workstation: composes the panes, owns the workers, and turns keys into engine calls.

Threads: the model loads and each reply decodes on a Textual thread worker. The decode loop only
appends TokenEvents to a deque; a timer on the UI thread drains it at the frame rate and hands each pane
only what is new, so the UI never takes the GIL from the decode loop more than 30 times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.command import Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Static, Tab, Tabs, TextArea

from llmtui.backends.base import Backend, Progress, StartBackend
from llmtui.core.choices import ModelOptions
from llmtui.core.conversation import Conversation
from llmtui.core.errors import LlmtuiError
from llmtui.core.events import TokenEvent, decode_rate
from llmtui.core.sampling import SamplingParams
from llmtui.core.text import escape_controls
from llmtui.store.conversations import ConversationStore, StoreError
from llmtui.store.settings import Settings, save_settings
from llmtui.tui.screens.edit import EditScreen
from llmtui.tui.themes import DEFAULT_VARIABLES, load_themes
from llmtui.tui.widgets.chips import ChipView
from llmtui.tui.widgets.conversation import (
    Composer,
    ConversationView,
    MessageView,
    SystemPromptView,
    code_blocks,
)
from llmtui.tui.widgets.inspector import Inspector
from llmtui.tui.widgets.probabilities import ProbabilitySidebar
from llmtui.tui.widgets.status import StatusBar
from llmtui.tui.widgets.token_stream import TokenChips, TokenStream

FRAME_SECONDS = 1 / 30
# Markdown re-lays-out the conversation on every append, which costs a full-screen reflow; the reply's
# text reaches it a few times a second, while the token stream and the sidebar follow every frame.
MARKDOWN_SECONDS = 0.25
NARROW_WIDTH = 120
PANES = ("tokens", "probabilities", "inspector")
SLASH_HELP = """Slash commands:
/set PARAM VALUE   temperature, top_k, top_p, repetition_penalty, max_new_tokens, seed, stop, top_candidates
/set system TEXT   the system prompt
/show              model, sampling and context
/clear             start a new conversation (the current one is saved)
/save [TITLE]      save now, optionally renaming
/load [QUERY]      open the history, or the newest conversation matching QUERY
/bye               quit"""


def start_local(options: ModelOptions, progress: Progress) -> Backend:
    """The engine in the app's own process."""
    from llmtui.backends.local import LocalBackend

    return LocalBackend.load(options, progress)


class ModelCommands(Provider):
    """Command palette: switch to any model llmtui can find."""

    async def search(self, query: str) -> Hits:
        app = self.app
        assert isinstance(app, LlmtuiApp)
        from llmtui.engine import catalog as models

        entries = await asyncio.to_thread(models.list_models, app.settings.model_dirs)
        matcher = self.matcher(query)
        for entry in entries:
            title = f"Switch model: {entry.spec}"
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(title),
                    partial(app.switch_model, entry.spec),
                    help=entry.architecture,
                )


class LlmtuiApp(App[int]):
    """The chat workstation."""

    CSS_PATH = "app.tcss"
    TITLE = "llmtui"
    # Below 120 columns the side panes become tabs (Screen.-narrow in app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_WIDTH, "-wide")]
    COMMANDS = App.COMMANDS | {ModelCommands}
    BINDINGS = [
        Binding("escape", "stop", "Stop", id="stop"),
        Binding("ctrl+r", "regenerate", "Regenerate", id="regenerate"),
        Binding("ctrl+o", "continue_reply", "Continue", id="continue"),
        Binding("ctrl+g", "external_editor", "$EDITOR", id="editor"),
        Binding("ctrl+y", "copy_reply", "Copy reply", id="copy"),
        Binding("f2", "focus_pane('conversation')", "Chat", id="focus.conversation"),
        Binding("f3", "focus_pane('tokens')", "Tokens", id="focus.tokens"),
        Binding("f4", "focus_pane('probabilities')", "Probs", id="focus.probabilities"),
        Binding("f5", "focus_pane('inspector')", "Inspect", id="focus.inspector"),
        Binding("f6", "toggle_pane('tokens')", "Hide tokens", show=False, id="toggle.tokens"),
        Binding("f7", "toggle_pane('probabilities')", "Hide probs", show=False, id="toggle.probabilities"),
        Binding("f8", "toggle_pane('inspector')", "Hide inspector", show=False, id="toggle.inspector"),
        Binding("f9", "settings", "Settings", id="settings"),
        Binding("f10", "history", "History", id="history"),
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
    ]

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
        self.start_backend = start_backend or start_local
        self._store = store
        self.conversation = conversation or Conversation(system=self.settings.system_prompt)
        self.backend: Backend | None = None  # once the model is ready
        self.params = SamplingParams(**self.settings.sampling.to_overrides()).validate()
        self.generation: Any = None
        self.live_turn: int | None = None
        self.stream_turn: int | None = None
        self.pending: list[str] = []  # messages sent before the model was ready
        self._queue: deque[TokenEvent] = deque()
        self._frames = 0
        self._unshown = ""  # reply text not yet handed to the Markdown widget
        self._shown_at = 0.0
        themes, theme_problems = load_themes()
        self._notices = [*notices, *theme_problems]
        for theme in themes:
            self.register_theme(theme)
        self.theme = self.settings.theme if self.settings.theme in self.available_themes else "llmtui-dark"
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)

    @property
    def store(self) -> ConversationStore:
        if self._store is None:
            self._store = ConversationStore()
        return self._store

    def get_css_variables(self) -> dict[str, str]:
        return {**DEFAULT_VARIABLES, **super().get_css_variables()}

    # -- layout -----------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="chat"):
                yield ConversationView(id="conversation")
                yield Composer(id="composer")
            with Vertical(id="side"):
                yield Tabs(
                    Tab("Tokens", id="tab-tokens"),
                    Tab("Probabilities", id="tab-probabilities"),
                    Tab("Inspector", id="tab-inspector"),
                    id="side-tabs",
                )
                yield TokenStream(id="tokens", classes="pane")
                yield ProbabilitySidebar(id="probabilities", classes="pane")
                yield Inspector(id="inspector", classes="pane")
        yield ProgressBar(total=1.0, show_eta=False, id="progress")
        yield StatusBar(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#tokens").border_title = "Token stream"
        self.query_one("#probabilities").border_title = "Next-token probabilities"
        self.query_one("#inspector").border_title = "Tokenizer inspector"
        self.query_one("#conversation").border_title = "Conversation"
        layout = self.settings.layout
        for pane, shown in zip(PANES, (layout.token_stream, layout.sidebar, layout.inspector), strict=True):
            self.query_one(f"#{pane}").set_class(not shown, "-hidden")
        self.query_one(TokenChips).show_ids = layout.token_ids
        self.query_one(ProbabilitySidebar).sparkline_of = layout.sparkline
        self.query_one(SystemPromptView).show(self.conversation.system)
        self.query_one(Composer).focus()
        self._activate_pane("tokens")
        self.set_interval(FRAME_SECONDS, self._drain)
        for notice in self._notices:
            self.notify(notice, severity="warning", timeout=10, markup=False)
        if self.conversation.turns:
            self.call_after_refresh(self._show_conversation)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.quit_saving)
        self.status.set(model=self.options.model, state="loading", detail="starting")
        # After the first paint: the loader's imports (torch, transformers) would hold the GIL against it.
        self.call_after_refresh(self.load_model, self.options)

    def _activate_pane(self, pane: str) -> None:
        for name in PANES:
            self.query_one(f"#{name}").set_class(name == pane, "active")

    @on(Tabs.TabActivated, "#side-tabs")
    def _tab_activated(self, message: Tabs.TabActivated) -> None:
        if message.tab.id:
            self._activate_pane(message.tab.id.removeprefix("tab-"))

    @property
    def view(self) -> Any:
        """The loaded model's TokenizerView, or None while no model is loaded."""
        return self.backend.view if self.backend is not None else None

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    # -- the model --------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def load_model(self, options: ModelOptions) -> None:
        def progress(fraction: float, what: str) -> None:
            self.call_from_thread(self._load_progress, fraction, what)

        try:
            backend = self.start_backend(options, progress)
        except LlmtuiError as exc:
            self.call_from_thread(self._load_failed, str(exc))
            return
        except Exception as exc:
            self.call_from_thread(self._load_failed, f"unexpected error while loading {options.model}: {exc}")
            return
        self.call_from_thread(self._model_ready, backend)

    def _load_progress(self, fraction: float, what: str) -> None:
        self.query_one("#progress", ProgressBar).update(progress=fraction)
        self.status.set(state="loading", detail=what)

    def _load_failed(self, message: str) -> None:
        self.query_one("#progress", ProgressBar).display = False
        self.status.set(state="error", detail=message)
        self.notify(message, title="Model failed to load", severity="error", timeout=10, markup=False)
        self._note(f"Model failed to load: {message}")

    def _model_ready(self, backend: Backend) -> None:
        self.backend = backend
        view = backend.view
        info = backend.info
        self.params = backend.default_params(**self.settings.sampling.to_overrides())
        self.query_one("#progress", ProgressBar).display = False
        self.query_one(TokenChips).display_piece = view.display
        self.query_one(ProbabilitySidebar).display_piece = view.display
        inspector = self.query_one(Inspector)
        inspector.view = view
        self.status.set(
            model=info.model.name,
            device=info.device,
            dtype=info.weights,
            context_max=info.context_length,
            state="ready",
            detail="",
        )
        self.conversation.model = self.options.model
        self.conversation.fingerprint = info.model.fingerprint
        self.action_inspect_prompt()
        self._update_token_count()
        if self.stream_turn is not None:
            self._show_stream(self.stream_turn)
        while self.pending:
            self._send(self.pending.pop(0))

    def switch_model(self, spec: str) -> None:
        """Load another model; the conversation stays as it is."""
        if self.generation is not None:
            self.notify("Stop the reply first (escape).", severity="warning")
            return
        self.options = replace(self.options, model=spec)
        if self.backend is not None:
            self.backend.close()
        self.backend = None
        self.query_one("#progress", ProgressBar).display = True
        self.query_one("#progress", ProgressBar).update(progress=0)
        self.status.set(model=spec, state="loading", detail="")
        self.load_model(self.options)

    # -- sending and replies ----------------------------------------------------------------------------

    @on(Composer.Submitted)
    def _submitted(self, message: Composer.Submitted) -> None:
        text = message.text
        if text.startswith("/"):
            self.run_slash(text)
            return
        if self.generation is not None:
            self.notify("A reply is still being written; stop it with escape first.", severity="warning")
            self.query_one(Composer).text = text
            return
        if self.backend is None:
            self.pending.append(text)
            self.notify("The model is still loading; your message will be sent when it is ready.")
            self.conversation.add_user(text)
            self.call_after_refresh(self._show_conversation)
            return
        self._send(text)

    def _send(self, text: str) -> None:
        if not (
            self.conversation.turns
            and self.conversation.turns[-1].role == "user"
            and self.conversation.turns[-1].content == text
        ):
            self.conversation.add_user(text)
        self.call_after_refresh(self._begin_reply_at_end)

    async def _begin_reply_at_end(self) -> None:
        await self._show_conversation()
        index = self.conversation.start_reply(self.options.model)
        await self.query_one(ConversationView).add_turn(index, self.conversation.turns[index])
        self._generate(index)

    def _generate(self, index: int, *, prefix: Sequence[int] = (), force: int | None = None) -> None:
        """Decode the reply of turn ``index`` (its current version) on a worker thread."""
        version = self.conversation.turns[index].version
        try:
            prompt = self.backend.render(self.conversation.messages(upto=index), reserve=self.params.max_new_tokens)
            generation = self.backend.generate(prompt, self.params, prefix=prefix, force=force)
        except LlmtuiError as exc:
            self._reply_failed(index, str(exc))
            return
        self.generation = generation
        self.live_turn = index
        self.conversation.sampling = self.params.to_dict()
        self._show_stream(index)
        self.status.set(state="generating", context_used=len(prompt.ids) + len(prefix), detail="")
        if prompt.dropped_turns:
            self.notify(f"{prompt.dropped_turns} oldest turns were left out to fit the context.", severity="warning")
        if not prompt.templated:
            self.notify("This tokenizer has no chat template; using the plain format.", severity="warning")
        self._show_prompt(prompt)
        version.partial = True
        self.run_worker(partial(self._decode, generation), thread=True, group="generate", exit_on_error=False)

    def _decode(self, generation: Any) -> None:
        """Worker thread: run the decode loop, queue each event. Touches no widget."""
        error = None
        try:
            for event in generation:
                self._queue.append(event)
        except LlmtuiError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"generation failed unexpectedly: {exc}"
        self.call_from_thread(self._reply_finished, generation, error)

    def _drain(self) -> None:
        """UI thread, once a frame: hand each pane the events that arrived since the last frame."""
        if not self._queue or self.live_turn is None:
            return
        events = []
        while self._queue:
            events.append(self._queue.popleft())
        index = self.live_turn
        version = self.conversation.turns[index].version
        version.events.extend(events)
        fragment = "".join(e.text for e in events)
        version.content += fragment
        self._unshown += fragment
        self._flush_text()
        chips = self.query_one(TokenChips)
        if self.stream_turn == index:
            chips.append(events)
            sidebar = self.query_one(ProbabilitySidebar)
            if chips.follow:
                sidebar.show_step(events[-1])
            self._frames += 1
            if self._frames % 8 == 0:  # the sparkline summarises the whole reply: a few times a second is plenty
                sidebar.show_reply(version.events)
        self.status.set(
            tokens_per_second=decode_rate(version.events),
            ttft=version.events[0].elapsed,
            context_used=len(self.generation.prompt.ids) + len(self.generation.prefix) + len(self.generation.events)
            if self.generation is not None
            else self.status.context_used,
        )

    def _flush_text(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.live_turn is None or not self._unshown or (not force and now - self._shown_at < MARKDOWN_SECONDS):
            return
        view = self.query_one(ConversationView).message(self.live_turn)
        if view is not None:
            view.append_text(self._unshown)
        self._unshown = ""
        self._shown_at = now

    def _reply_finished(self, generation: Any, error: str | None) -> None:
        index = self.live_turn
        self._drain()
        self._unshown = ""  # refresh_turn below renders the whole reply
        self.generation = None
        self.live_turn = None
        if index is None:
            return
        version = self.conversation.turns[index].version
        stats = generation.stats
        if stats is not None and generation.prefix:
            # Continued or branched: the reply's count covers the steps it kept as well as the new ones.
            stats = replace(stats, new_tokens=len(version.events))
        version.stats = stats
        version.partial = error is not None or (stats is not None and stats.stop_reason == "stopped")
        version.error = error
        self.query_one(ProbabilitySidebar).show_reply(version.events)
        self._reply_ended(index, "Reply failed")
        self.action_inspect_prompt()

    def _reply_failed(self, index: int, message: str) -> None:
        version = self.conversation.turns[index].version
        version.error = message
        version.partial = True
        self._reply_ended(index, "Cannot reply")

    def _reply_ended(self, index: int, error_title: str) -> None:
        """Show how a reply ended (message footer, status, a notification on error) and save it."""
        version = self.conversation.turns[index].version
        view = self.query_one(ConversationView).message(index)
        if view is not None:
            view.refresh_turn()
        state = "error" if version.error else ("stopped" if version.partial else "ready")
        self.status.set(state=state, detail=version.error or "")
        if version.error:
            self.notify(version.error, title=error_title, severity="error", timeout=10, markup=False)
        self.autosave()

    # -- actions on replies -----------------------------------------------------------------------------

    def _can_act(self) -> bool:
        if self.backend is None:
            self.notify("The model is still loading.", severity="warning")
            return False
        if self.generation is not None:
            self.notify("A reply is being written; stop it with escape first.", severity="warning")
            return False
        return True

    def action_stop(self) -> None:
        if self.generation is not None:
            self.generation.stop()
        elif self.focused is not None and not isinstance(self.focused, Composer):
            self.query_one(Composer).focus()

    def _last_reply(self) -> int | None:
        replies = self.conversation.replies()
        return replies[-1] if replies else None

    def action_regenerate(self) -> None:
        """A new version of the last reply (the old one stays, see the version switcher)."""
        index = self._last_reply()
        if index is None or not self._can_act():
            return
        self.conversation.start_reply(self.options.model, at=index)
        self.call_after_refresh(self._regenerate_at, index)

    async def _regenerate_at(self, index: int) -> None:
        await self._show_conversation()
        self._generate(index)

    def action_continue_reply(self) -> None:
        """Continue the last reply from where it stopped (token limit, or stopped by hand)."""
        index = self._last_reply()
        if index is None or not self._can_act():
            return
        version = self.conversation.turns[index].version
        if not version.events:
            self.notify("This reply has no recorded tokens to continue from.", severity="warning")
            return
        self._generate(index, prefix=version.token_ids)

    @on(ProbabilitySidebar.Branch)
    def _branch(self, message: ProbabilitySidebar.Branch) -> None:
        """Cut the shown reply at a step, put the chosen candidate there, and continue from it."""
        index = self.stream_turn
        if index is None or not self._can_act():
            return
        turn = self.conversation.turns[index]
        old = turn.version
        kept = old.events[: message.step]
        self.conversation.start_reply(self.options.model, at=index, branched_from=(turn.current, message.step))
        fresh = turn.version
        fresh.events = list(kept)
        fresh.content = "".join(e.text for e in kept)
        self.call_after_refresh(self._branch_at, index, [e.token_id for e in kept], message.token_id)

    async def _branch_at(self, index: int, prefix: list[int], token_id: int) -> None:
        await self._show_conversation()
        self._generate(index, prefix=prefix, force=token_id)

    @on(MessageView.Action)
    async def _message_action(self, message: MessageView.Action) -> None:
        turn = self.conversation.turns[message.index]
        if message.what == "copy":
            self.copy_to_clipboard(turn.content)
            self.notify("Message copied to the clipboard (OSC 52).")
        elif message.what == "copy_code":
            blocks = code_blocks(turn.content)
            if blocks:
                self.copy_to_clipboard(blocks[-1])
                self.notify("Code block copied to the clipboard (OSC 52).")
            else:
                self.notify("This message has no code block.", severity="warning")
        elif message.what == "version":
            if self.generation is not None:
                self.notify("Stop the reply first (escape).", severity="warning")
                return
            target = turn.current + message.arg
            if 0 <= target < len(turn.versions):
                self.conversation.switch(message.index, target)
                await self._show_conversation(focus=message.index)
                self.autosave()
        elif message.what == "edit":
            if turn.role != "user":
                self.notify("Only your own messages can be edited; regenerate or branch a reply.", severity="warning")
                return
            if self._can_act():
                self.push_screen(EditScreen("Edit message", turn.content), partial(self._edited, message.index))
        elif message.what == "inspect":
            inspector = self.query_one(Inspector)
            inspector.show_text(turn.content, title=f"message {message.index + 1}")
            self._reveal("inspector")
        elif message.what == "stream" and turn.role == "assistant":
            self._show_stream(message.index)
            self._reveal("tokens")

    def _edited(self, index: int, text: str | None) -> None:
        if text is None or not text.strip() or text == self.conversation.turns[index].content:
            return
        self.conversation.edit_user(index, text)
        self.call_after_refresh(self._begin_reply_at_end)

    @on(SystemPromptView.Edit)
    def _edit_system(self) -> None:
        self.push_screen(EditScreen("System prompt", self.conversation.system), self._system_edited)

    def _system_edited(self, text: str | None) -> None:
        if text is not None:
            self.set_system(text)

    def set_system(self, text: str) -> None:
        self.conversation.system = text.strip()
        self.query_one(SystemPromptView).show(self.conversation.system)
        self.action_inspect_prompt()
        self.autosave()

    # -- panes ------------------------------------------------------------------------------------------

    async def _show_conversation(self, focus: int | None = None) -> None:
        await self.query_one(ConversationView).show(self.conversation)
        if focus is not None:
            view = self.query_one(ConversationView).message(focus)
            if view is not None:
                view.focus()
        if self.stream_turn is not None and self.stream_turn >= len(self.conversation.turns):
            self.stream_turn = None
        last = self._last_reply()
        if last is not None and self.live_turn is None:
            self._show_stream(last)

    def _show_stream(self, index: int) -> None:
        """Show one reply in the token stream and the sidebar."""
        self.stream_turn = index
        version = self.conversation.turns[index].version
        chips = self.query_one(TokenChips)
        chips.cursor = None
        chips.follow = True
        chips.show(version.events)
        stream = self.query_one(TokenStream)
        stream.border_title = f"Token stream · turn {index + 1} · version {self.conversation.turns[index].current + 1}"
        sidebar = self.query_one(ProbabilitySidebar)
        if version.events:
            sidebar.show_step(version.events[-1])
            sidebar.show_reply(version.events)
        else:
            sidebar.clear()

    @on(ChipView.CursorMoved, "#chips")
    def _stream_cursor(self, message: ChipView.CursorMoved) -> None:
        chips = self.query_one(TokenChips)
        if 0 <= message.index < len(chips.events):
            self.query_one(ProbabilitySidebar).show_step(chips.events[message.index])

    def action_focus_pane(self, pane: str) -> None:
        if pane == "conversation":
            self.query_one(Composer).focus()
            return
        self._reveal(pane)
        target = {"tokens": "#chips", "probabilities": "#candidates", "inspector": "#inspect-input"}[pane]
        self.query_one(target).focus()

    def _reveal(self, pane: str) -> None:
        self.query_one(f"#{pane}").remove_class("-hidden")
        if self.screen.has_class("-narrow"):
            self.query_one("#side-tabs", Tabs).active = f"tab-{pane}"
            self._activate_pane(pane)

    def action_toggle_pane(self, pane: str) -> None:
        widget = self.query_one(f"#{pane}")
        widget.toggle_class("-hidden")
        key = {"tokens": "token_stream", "probabilities": "sidebar", "inspector": "inspector"}[pane]
        self._save_setting(f"layout.{key}", not widget.has_class("-hidden"))

    def action_inspect_prompt(self) -> None:
        """Show the prompt exactly as the model receives it (after the chat template) in the inspector."""
        if self.backend is None:
            return
        if self.query_one(Inspector).source_title != "prompt":
            return  # the user is inspecting other text: leave it, and skip the render
        try:
            index = self.live_turn if self.live_turn is not None else len(self.conversation.turns)
            prompt = self.backend.render(self.conversation.messages(upto=index))
        except LlmtuiError:
            return
        self._show_prompt(prompt)
        if self.generation is None:
            self.status.set(context_used=len(prompt.ids))

    def _show_prompt(self, prompt: Any) -> None:
        """Hand a rendered prompt to the inspector, if it is showing the prompt."""
        inspector = self.query_one(Inspector)
        if inspector.source_title == "prompt":
            inspector.show_text(prompt.text, title="prompt", add_special_tokens=not prompt.templated)

    # -- the composer -----------------------------------------------------------------------------------

    @on(TextArea.Changed, "#composer")
    def _composer_changed(self) -> None:
        self._update_token_count()

    def _update_token_count(self) -> None:
        composer = self.query_one(Composer)
        if self.view is None:
            composer.border_subtitle = ""
            return
        text = composer.text
        count = len(self.view.backend.encode(text, add_special_tokens=False).ids) if text else 0
        composer.border_subtitle = f"{count} tokens · enter send · ctrl+j newline"

    def action_external_editor(self) -> None:
        """Compose the message in $EDITOR (as ollama's ctrl+g)."""
        composer = self.query_one(Composer)
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.NamedTemporaryFile("w+", suffix=".md", delete=False, encoding="utf-8") as handle:
            handle.write(composer.text)
            path = Path(handle.name)
        try:
            with self.suspend():
                subprocess.run([*shlex.split(editor), str(path)], check=False)
            composer.text = path.read_text(encoding="utf-8").rstrip("\n")
            composer.focus()
        except Exception as exc:
            self.notify(f"Cannot open the editor {editor!r}: {exc}", severity="error", markup=False)
        finally:
            path.unlink(missing_ok=True)

    def action_copy_reply(self) -> None:
        index = self._last_reply()
        if index is None:
            self.notify("No reply to copy yet.", severity="warning")
            return
        self.copy_to_clipboard(self.conversation.turns[index].content)
        self.notify("Reply copied to the clipboard (OSC 52).")

    # -- slash commands ---------------------------------------------------------------------------------

    def run_slash(self, text: str) -> None:
        """ollama-style commands typed into the input."""
        command, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        if command == "/set":
            name, _, value = rest.partition(" ")
            if name == "system":
                self.set_system(value)
                self.notify("System prompt set.")
                return
            try:
                self.params = self.params.with_value(name, value.strip())
            except LlmtuiError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.notify(f"{name} = {getattr(self.params, name)!r}", markup=False)
        elif command == "/show":
            self._note(self._describe())
        elif command == "/clear":
            self.new_conversation()
        elif command == "/save":
            if rest:
                self.conversation.title = rest
            self.autosave(announce=True)
        elif command == "/load":
            self.action_history(rest)
        elif command in ("/bye", "/exit", "/quit"):
            self.quit_saving()
        elif command in ("/help", "/?"):
            self._note(SLASH_HELP)
        else:
            self.notify(f"Unknown command {command}; /help lists them.", severity="error", markup=False)

    def _describe(self) -> str:
        p = self.params
        lines = [f"model {self.options.model}"]
        if self.backend is not None:
            engine = self.backend.info
            info = engine.model
            lines.append(f"  {info.architecture} · {info.parameters or 0:,} parameters · context {info.context_length}")
            lines.append(
                f"  device {engine.device} · {engine.weights} · forward pass {engine.forward} ({engine.forward_note})"
            )
        lines.append(
            f"sampling temperature {p.temperature} · top_k {p.top_k} · top_p {p.top_p} · "
            f"repetition_penalty {p.repetition_penalty} · max_new_tokens {p.max_new_tokens} · seed {p.seed} · "
            f"stop {list(p.stop)} · top_candidates {p.top_candidates}"
        )
        lines.append(f"conversation {self.conversation.id} · {len(self.conversation.turns)} turns")
        return "\n".join(lines)

    def _note(self, text: str) -> None:
        """A notice in the conversation pane (not part of the conversation)."""
        note = Static(Text(escape_controls(text)), classes="note")
        self.query_one(ConversationView).mount(note)
        self.query_one(ConversationView).scroll_end(animate=False)

    # -- persistence ------------------------------------------------------------------------------------

    def autosave(self, announce: bool = False) -> None:
        if not self.conversation.turns:
            return
        try:
            result = self.store.save(self.conversation)
        except (StoreError, OSError) as exc:
            self.notify(f"Could not save the conversation: {exc}", severity="error", markup=False)
            return
        if result.forked:
            self.notify(
                "Another llmtui saved this conversation meanwhile; yours was kept as a fork.",
                severity="warning",
            )
        elif announce:
            self.notify(f"Saved to {result.path}", markup=False)

    def new_conversation(self) -> None:
        if self.generation is not None:
            self.notify("Stop the reply first (escape).", severity="warning")
            return
        self.autosave()
        self.conversation = Conversation(system=self.settings.system_prompt, model=self.options.model)
        self.stream_turn = None
        self.query_one(TokenChips).show([])
        self.query_one(ProbabilitySidebar).clear()
        self.call_after_refresh(self._show_conversation)
        self.action_inspect_prompt()

    def open_conversation(self, conversation: Conversation) -> None:
        if self.generation is not None:
            self.notify("Stop the reply first (escape).", severity="warning")
            return
        self.autosave()
        self.conversation = conversation
        self.stream_turn = None
        self.call_after_refresh(self._show_conversation)
        self.action_inspect_prompt()

    def _save_setting(self, key: str, value: Any) -> None:
        try:
            self.settings = self.settings.with_value(key, value)
            save_settings(self.settings, self.config_path)
        except (LlmtuiError, OSError) as exc:
            self.notify(str(exc), severity="error", markup=False)

    def watch_theme(self, theme: str) -> None:
        if hasattr(self, "settings") and self.is_running and theme != self.settings.theme:
            self._save_setting("theme", theme)

    def save_partial(self) -> None:
        """Keep whatever the reply in flight has so far (quit, SIGTERM, SIGHUP)."""
        if self.generation is not None:
            self.generation.stop()
            self._drain()
            if self.live_turn is not None:
                version = self.conversation.turns[self.live_turn].version
                version.partial = True
        self.autosave()

    def quit_saving(self) -> None:
        """Quit, keeping the reply in flight (ctrl+q, /bye, SIGTERM, SIGHUP)."""
        self.save_partial()
        self.exit(0)

    async def action_quit(self) -> None:
        self.quit_saving()

    # -- screens ----------------------------------------------------------------------------------------

    def action_settings(self) -> None:
        from llmtui.tui.screens.settings import SettingsScreen

        self.push_screen(SettingsScreen(self.params, self.conversation.system), self._settings_done)

    def _settings_done(self, result: tuple[SamplingParams, str] | None) -> None:
        if result is None:
            return
        params, system = result
        self.params = params
        if system != self.conversation.system:
            self.set_system(system)
        defaults = self.backend.default_params() if self.backend is not None else SamplingParams()
        try:
            settings = self.settings
            for name, value in params.to_dict().items():
                if value != getattr(defaults, name):
                    settings = settings.with_value(f"sampling.{name}", value)
            settings = settings.with_value("system_prompt", system)
            self.settings = settings
            save_settings(settings, self.config_path)
        except (LlmtuiError, OSError) as exc:  # SettingsFileError is an LlmtuiError
            self.notify(str(exc), severity="error", markup=False)
            return
        self.notify("Settings saved.")

    def action_history(self, query: str = "") -> None:
        from llmtui.tui.screens.history import HistoryScreen

        self.push_screen(HistoryScreen(self.store, query), self._history_done)

    def _history_done(self, conversation: Conversation | None) -> None:
        if conversation is not None:
            self.open_conversation(conversation)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Stop reply", "Stop the reply being written (escape)", self.action_stop)
        yield SystemCommand("Regenerate", "A new version of the last reply (ctrl+r)", self.action_regenerate)
        yield SystemCommand(
            "Continue reply", "Continue the last reply where it stopped (ctrl+o)", self.action_continue_reply
        )
        yield SystemCommand("Copy reply", "Copy the last reply via OSC 52 (ctrl+y)", self.action_copy_reply)
        yield SystemCommand("Edit system prompt", "Set the system prompt", self._edit_system)
        yield SystemCommand("New conversation", "Start over; the current one is saved (/clear)", self.new_conversation)
        yield SystemCommand("History", "Browse, search and open saved conversations (f10)", self.action_history)
        yield SystemCommand("Settings", "Sampling and system prompt (f9)", self.action_settings)
        yield SystemCommand("Inspect prompt", "The prompt as the model receives it", self._inspect_prompt_command)
        yield SystemCommand("Vocabulary", "Search the tokenizer's vocabulary", self.action_vocabulary)
        yield SystemCommand("Replay reply", "Play the shown reply back at its recorded speed", self.action_replay)
        yield SystemCommand(
            "Replay reply ×4", "Play the shown reply back four times faster", partial(self.action_replay, 4.0)
        )
        yield SystemCommand(
            "Re-run and compare", "Re-generate each reply greedily; show where it departs", self.action_rerun
        )
        yield SystemCommand("Toggle token ids", "Show ids on token chips", self.query_one(TokenChips).action_toggle_ids)
        yield SystemCommand("Sparkline: entropy / probability", "What the sparkline plots", self._toggle_sparkline)
        for pane in PANES:
            yield SystemCommand(f"Show/hide {pane}", f"Toggle the {pane} pane", partial(self.action_toggle_pane, pane))

    # -- replay -----------------------------------------------------------------------------------------

    def action_replay(self, speed: float = 1.0) -> None:
        """Play the reply shown in the token stream back at its recorded pace, the sidebar following."""
        index = self.stream_turn if self.stream_turn is not None else self._last_reply()
        if index is None or not self.conversation.turns[index].version.events:
            self.notify("No recorded reply to play back.", severity="warning")
            return
        if self.generation is not None:
            self.notify("Stop the reply first (escape).", severity="warning")
            return
        events = self.conversation.turns[index].version.events
        self._show_stream(index)
        self.query_one(TokenChips).show([])
        started = time.monotonic()

        def frame() -> None:
            shown = len(self.query_one(TokenChips).events)
            due = bisect_right([e.elapsed for e in events], (time.monotonic() - started) * speed)
            if due > shown:
                self.query_one(TokenChips).append(events[shown:due])
                self.query_one(ProbabilitySidebar).show_step(events[due - 1])
            if due >= len(events):
                timer.stop()
                self.query_one(ProbabilitySidebar).show_reply(events)
                self.status.set(state="ready", detail="")

        self.status.set(state="generating", detail=f"replaying at {speed:g}x")
        timer = self.set_interval(FRAME_SECONDS, frame)

    @work(thread=True, exclusive=True, group="rerun", exit_on_error=False)
    def action_rerun(self) -> None:
        """Re-run every recorded reply with the current model and show where each one departs."""
        from llmtui.core.replay import rerun

        if self.backend is None:
            self.call_from_thread(self.notify, "The model is still loading.", severity="warning")
            return
        params = replace(self.params, temperature=0.0)
        try:
            for divergence in rerun(self.backend, self.conversation, params):
                self.call_from_thread(self._note, divergence.describe(self.view.display))
        except LlmtuiError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error", markup=False)

    def _inspect_prompt_command(self) -> None:
        self.query_one(Inspector).source_title = "prompt"
        self.action_inspect_prompt()
        self._reveal("inspector")

    def _toggle_sparkline(self) -> None:
        sidebar = self.query_one(ProbabilitySidebar)
        sidebar.sparkline_of = "entropy" if sidebar.sparkline_of == "prob" else "prob"
        self._save_setting("layout.sparkline", sidebar.sparkline_of)
        if self.stream_turn is not None:
            sidebar.show_reply(self.conversation.turns[self.stream_turn].version.events)

    def action_vocabulary(self) -> None:
        if self.view is None:
            self.notify("The tokenizer is still loading.", severity="warning")
            return
        from llmtui.tui.screens.vocabulary import VocabularyScreen

        self.push_screen(VocabularyScreen(self.view))
