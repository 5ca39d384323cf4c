"""The workstation screen: composes the panes, keeps the conversation, and routes what the panes ask for;
the engine's lifecycle is the EngineController's, a reply's the ReplyController's.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Tab, Tabs, TextArea

from llmtui.backends.base import Backend
from llmtui.core.choices import ModelOptions
from llmtui.core.conversation import Conversation
from llmtui.core.errors import LlmtuiError
from llmtui.core.events import TokenEvent
from llmtui.core.keymap import DEFAULT_KEYS, KEY_BINDINGS
from llmtui.core.prompt import Prompt
from llmtui.core.sampling import SamplingParams
from llmtui.core.tokens import TokenizerView
from llmtui.store.conversations import StoreError
from llmtui.store.settings import save_settings
from llmtui.tui.commands import ModelCommands
from llmtui.tui.engine import EngineController
from llmtui.tui.lens import LensController
from llmtui.tui.reply import ReplyController
from llmtui.tui.screens.edit import EditScreen
from llmtui.tui.widgets.chips import ChipView
from llmtui.tui.widgets.conversation import Composer, ConversationView
from llmtui.tui.widgets.inspector import Inspector
from llmtui.tui.widgets.message import code_blocks
from llmtui.tui.widgets.probabilities import ProbabilitySidebar
from llmtui.tui.widgets.status import StatusBar
from llmtui.tui.widgets.token_stream import TokenChips, TokenStream

if TYPE_CHECKING:
    from llmtui.tui.app import LlmtuiApp

NARROW_WIDTH = 120
PANES = ("tokens", "probabilities", "inspector")
PANE_SETTINGS = {"tokens": "token_stream", "probabilities": "sidebar", "inspector": "inspector"}
PANE_FOCUS = {"tokens": "#chips", "probabilities": "#candidates", "inspector": "#inspect-input"}

# Priority: the workstation's keys work wherever the focus is on this screen, the composer included
# (its TextArea would otherwise take ctrl+y for redo and f6/f7 for selecting), and nowhere else: a dialog
# pushed over the workstation keeps escape for itself. Every binding has an id for [keymap] in settings.toml;
# the list is core.keymap's (quit is there too, so that the footer shows it first).
BINDINGS = [Binding(b.key, b.action, b.description, show=b.show, id=b.id, priority=True) for b in KEY_BINDINGS]


class Workstation(Screen[None]):
    """The chat workstation: conversation and composer, token stream, probabilities, inspector, status."""

    # Below 120 columns the side panes become tabs (Screen.-narrow in app.tcss).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_WIDTH, "-wide")]
    COMMANDS = {ModelCommands}
    BINDINGS = BINDINGS

    def __init__(self, options: ModelOptions, conversation: Conversation, params: SamplingParams) -> None:
        super().__init__()
        self.options = options
        self.conversation = conversation
        self.backend: Backend | None = None  # once the model is ready
        self.params = params  # the user's sampling settings until the model's own defaults are known
        self.stream_turn: int | None = None  # the reply shown in the token stream and the sidebar
        self.engine = EngineController(self)
        self.replies = ReplyController(self)
        self.lens = LensController(self)

    @property
    def llmtui(self) -> LlmtuiApp:
        return self.app  # type: ignore[return-value]

    @property
    def settings(self) -> Any:
        return self.llmtui.settings

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
        self.chips.show_ids = layout.token_ids
        self.sidebar.sparkline_of = layout.sparkline
        self.conversation_view.show_system(self.conversation.system)
        self.composer.focus()
        self._activate_pane("tokens")
        if self.conversation.turns:
            self.call_after_refresh(self.show_conversation)
        self.status.set(model=self.options.model, state="loading", detail="starting")
        # After the first paint: the loader's imports (torch, transformers) would hold the GIL against it.
        self.call_after_refresh(self.engine.start, self.options)

    @property
    def status(self) -> StatusBar:
        return self.query_one(StatusBar)

    @property
    def composer(self) -> Composer:
        return self.query_one(Composer)

    @property
    def conversation_view(self) -> ConversationView:
        return self.query_one(ConversationView)

    @property
    def chips(self) -> TokenChips:
        return self.query_one(TokenChips)

    @property
    def sidebar(self) -> ProbabilitySidebar:
        return self.query_one(ProbabilitySidebar)

    @property
    def inspector(self) -> Inspector:
        return self.query_one(Inspector)

    @property
    def view(self) -> TokenizerView | None:
        """The loaded model's tokenizer, or None while no model is loaded."""
        return self.backend.view if self.backend is not None else None

    def key_of(self, binding_id: str) -> str:
        """The key a binding has now (the user's [keymap], else the default), for messages that name it."""
        return self.settings.keymap.get(binding_id, DEFAULT_KEYS[binding_id]).split(",")[0]

    def _activate_pane(self, pane: str) -> None:
        for name in PANES:
            self.query_one(f"#{name}").set_class(name == pane, "active")

    @on(Tabs.TabActivated, "#side-tabs")
    def _tab_activated(self, message: Tabs.TabActivated) -> None:
        if message.tab.id:
            self._activate_pane(message.tab.id.removeprefix("tab-"))

    # -- the engine (tui/engine.py) ---------------------------------------------------------------------

    def action_restart_engine(self) -> None:
        self.engine.restart()

    # -- the composer -----------------------------------------------------------------------------------

    @on(Composer.Submitted)
    def _submitted(self, message: Composer.Submitted) -> None:
        from llmtui.tui.slash import run_slash

        text = message.text
        if text.startswith("/"):
            run_slash(self, text)
        elif not self.replies.send(text):
            self.composer.text = text  # refused: give the text back

    @on(TextArea.Changed, "#composer")
    def _composer_changed(self) -> None:
        self.update_token_count()

    def update_token_count(self) -> None:
        composer = self.composer
        view = self.view
        if view is None:
            composer.border_subtitle = ""
            return
        text = composer.text
        count = len(view.backend.encode(text, add_special_tokens=False).ids) if text else 0
        composer.border_subtitle = f"{count} tokens · enter send · ctrl+j newline"

    def action_external_editor(self) -> None:
        """Compose the message in $EDITOR (as ollama's ctrl+g)."""
        composer = self.composer
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.NamedTemporaryFile("w+", suffix=".md", delete=False, encoding="utf-8") as handle:
            handle.write(composer.text)
            path = Path(handle.name)
        # Headless (tests, benchmarks) there is no terminal to hand over, so the editor simply runs.
        terminal = contextlib.nullcontext() if self.app.is_headless else self.app.suspend()
        try:
            with terminal:
                subprocess.run([*shlex.split(editor), str(path)], check=False)
            composer.text = path.read_text(encoding="utf-8").rstrip("\n")
            composer.focus()
        except Exception as exc:
            self.notify(f"Cannot open the editor {editor!r}: {exc}", severity="error", markup=False)
        finally:
            path.unlink(missing_ok=True)

    # -- actions on replies -----------------------------------------------------------------------------

    def action_stop(self) -> None:
        if not self.replies.stop() and self.focused is not None and not isinstance(self.focused, Composer):
            self.composer.focus()

    def action_regenerate(self) -> None:
        self.replies.regenerate()

    def action_continue_reply(self) -> None:
        self.replies.continue_reply()

    def action_copy_reply(self) -> None:
        index = self.replies.last_reply()
        if index is None:
            self.notify("No reply to copy yet.", severity="warning")
            return
        self.app.copy_to_clipboard(self.conversation.turns[index].content)
        self.notify("Reply copied to the clipboard (OSC 52).")

    def action_replay(self, speed: float = 1.0) -> None:
        """Play the reply shown in the token stream back at its recorded pace, the sidebar following."""
        self.replies.replay(self.stream_turn if self.stream_turn is not None else self.replies.last_reply(), speed)

    @on(ProbabilitySidebar.Branch)
    def _branch(self, message: ProbabilitySidebar.Branch) -> None:
        if self.stream_turn is None:
            return
        shown = self.sidebar.event
        if not any(e is shown for e in self.conversation.turns[self.stream_turn].version.events):
            self.notify("Branching starts from a step of a reply; this step is of a scored text.", severity="warning")
            return
        self.replies.branch(self.stream_turn, message.step, message.token_id)

    @on(ConversationView.Action)
    def _message_action(self, message: ConversationView.Action) -> None:
        if message.index is None:
            self._system_action(message.what)
            return
        turn = self.conversation.turns[message.index]
        if message.what == "copy":
            self.app.copy_to_clipboard(turn.content)
            self.notify("Message copied to the clipboard (OSC 52).")
        elif message.what == "copy_code":
            blocks = code_blocks(turn.content)
            if blocks:
                self.app.copy_to_clipboard(blocks[-1])
                self.notify("Code block copied to the clipboard (OSC 52).")
            else:
                self.notify("This message has no code block.", severity="warning")
        elif message.what == "version":
            target = turn.current + message.arg
            if 0 <= target < len(turn.versions) and self.replies.can_act(needs_model=False):
                self.conversation.switch(message.index, target)
                self.show_conversation(focus=message.index)
                self.autosave()
        elif message.what == "edit":
            if turn.role != "user":
                self.notify("Only your own messages can be edited; regenerate or branch a reply.", severity="warning")
            elif self.replies.can_act():
                self.app.push_screen(EditScreen("Edit message", turn.content), partial(self._edited, message.index))
        elif message.what in ("inspect", "score"):
            self.inspector.show_text(
                turn.content, title=f"message {message.index + 1}", surprise=message.what == "score"
            )
            self.reveal("inspector")
        elif message.what == "stream" and turn.role == "assistant":
            self.show_stream(message.index)
            self.reveal("tokens")

    def _edited(self, index: int, text: str | None) -> None:
        if text is not None and text.strip() and text != self.conversation.turns[index].content:
            self.replies.edit(index, text)

    def _system_action(self, what: str) -> None:
        if not self.conversation.system and what != "edit":
            self.notify("There is no system prompt yet (e sets one).", severity="warning")
        elif what == "copy":
            self.app.copy_to_clipboard(self.conversation.system)
            self.notify("System prompt copied to the clipboard (OSC 52).")
        elif what == "edit":
            self.edit_system()
        elif what in ("inspect", "score"):
            self.inspector.show_text(self.conversation.system, title="system prompt", surprise=what == "score")
            self.reveal("inspector")

    def edit_system(self) -> None:
        """Edit the system prompt in a dialog."""
        self.app.push_screen(EditScreen("System prompt", self.conversation.system), self._system_edited)

    def _system_edited(self, text: str | None) -> None:
        if text is not None:
            self.set_system(text)

    def set_system(self, text: str) -> None:
        self.conversation.system = text.strip()
        self.conversation_view.show_system(self.conversation.system)
        self.inspect_prompt()
        self.autosave()

    # -- panes ------------------------------------------------------------------------------------------

    def show_conversation(self, focus: int | None = None) -> None:
        """Rebuild the conversation pane from the conversation (after a load, a version switch, an edit)."""
        self.conversation_view.show(self.conversation)
        if focus is not None:
            self.conversation_view.select(focus)
        if self.stream_turn is not None and self.stream_turn >= len(self.conversation.turns):
            self.stream_turn = None
        last = self.replies.last_reply()
        if last is not None and not self.replies.busy:
            self.show_stream(last)

    def show_stream(self, index: int) -> None:
        """Show one reply in the token stream and the sidebar."""
        self.stream_turn = index
        turn = self.conversation.turns[index]
        chips = self.chips
        chips.cursor = None
        chips.follow = True
        chips.show(turn.version.events)
        self.query_one(TokenStream).border_title = f"Token stream · turn {index + 1} · version {turn.current + 1}"
        if turn.version.events:
            self.sidebar.show_step(turn.version.events[-1])
            self.sidebar.show_reply(turn.version.events)
        else:
            self.sidebar.clear()

    def stream_events(self, events: list[TokenEvent], *, summary: bool) -> None:
        """New steps of the reply in the token stream. The sidebar (``summary`` frames only, a few a second:
        its top-k list is the dearest pane to draw) follows the newest step unless the user moved the cursor."""
        chips = self.chips
        if events:
            chips.append(events)
        if summary and chips.events:
            if chips.follow:
                self.sidebar.show_step(chips.events[-1])
            self.sidebar.show_reply(chips.events)

    @on(ChipView.CursorMoved, "#chips")
    def _stream_cursor(self, message: ChipView.CursorMoved) -> None:
        chips = self.chips
        if 0 <= message.index < len(chips.events):
            self.sidebar.show_step(chips.events[message.index])

    def action_focus_pane(self, pane: str) -> None:
        if pane == "conversation":
            self.composer.focus()
            return
        self.reveal(pane)
        self.query_one(PANE_FOCUS[pane]).focus()

    def reveal(self, pane: str) -> None:
        """Show a side pane (and, below 120 columns, its tab)."""
        self.query_one(f"#{pane}").remove_class("-hidden")
        if self.has_class("-narrow"):
            self.query_one("#side-tabs", Tabs).active = f"tab-{pane}"
            self._activate_pane(pane)

    def action_toggle_pane(self, pane: str) -> None:
        widget = self.query_one(f"#{pane}")
        widget.toggle_class("-hidden")
        self.llmtui.save_setting(f"layout.{PANE_SETTINGS[pane]}", not widget.has_class("-hidden"))

    def toggle_sparkline(self) -> None:
        """The sparkline plots the chosen token's probability, or the entropy."""
        sidebar = self.sidebar
        sidebar.sparkline_of = "entropy" if sidebar.sparkline_of == "prob" else "prob"
        self.llmtui.save_setting("layout.sparkline", sidebar.sparkline_of)
        if self.stream_turn is not None:
            sidebar.show_reply(self.conversation.turns[self.stream_turn].version.events)

    def inspect_prompt(self, *, reveal: bool = False) -> None:
        """Show the prompt exactly as the model receives it (after the chat template) in the inspector."""
        if reveal:
            self.inspector.source_title = "prompt"
            self.reveal("inspector")
        if self.backend is None or self.inspector.source_title != "prompt":
            return  # the user is inspecting other text: leave it, and skip the render
        index = self.replies.live_turn if self.replies.live_turn is not None else len(self.conversation.turns)
        self._render_prompt(self.backend, self.conversation.messages(upto=index))

    @work(thread=True, exclusive=True, group="prompt", exit_on_error=False)
    def _render_prompt(self, backend: Backend, messages: list[dict[str, str]]) -> None:
        # Off the UI thread: with an engine process, rendering is a request to it.
        try:
            prompt = backend.render(messages)
        except LlmtuiError:
            return
        self.app.call_from_thread(self._prompt_rendered, prompt)

    def _prompt_rendered(self, prompt: Prompt) -> None:
        if not self.app.is_running:
            return  # shutting down: the inspector is being torn down
        self.show_prompt(prompt)
        if not self.replies.busy:
            self.status.set(context_used=len(prompt.ids))

    def show_prompt(self, prompt: Prompt) -> None:
        """Hand a rendered prompt to the inspector, if it is showing the prompt."""
        if self.inspector.source_title == "prompt":
            self.inspector.show_text(prompt.text, title="prompt", add_special_tokens=not prompt.templated)

    @on(Inspector.PromptWanted)
    def _prompt_wanted(self) -> None:
        self.inspect_prompt(reveal=True)

    # -- the model lens: surprise in the inspector, the logit lens in the sidebar ------------------------

    @on(Inspector.ScoresWanted)
    def _scores_wanted(self, message: Inspector.ScoresWanted) -> None:
        self.lens.score(message.tokenization)

    @on(Inspector.StepChosen)
    def _scored_step(self, message: Inspector.StepChosen) -> None:
        self.sidebar.show_step(message.event)

    @on(ProbabilitySidebar.LensWanted)
    def _lens_wanted(self, message: ProbabilitySidebar.LensWanted) -> None:
        self.lens.logit_lens(message.event)

    def note(self, text: str) -> None:
        """A notice in the conversation pane (not part of the conversation)."""
        self.conversation_view.note(text)

    # -- the conversation -------------------------------------------------------------------------------

    def autosave(self, announce: bool = False) -> bool:
        """Save the conversation (as a reply starts, while it streams, when it ends, on every change); a
        fork when another llmtui saved it meanwhile. Unchanged, it is not written. False if it failed."""
        if not self.conversation.turns:
            return True
        try:
            result = self.llmtui.store.save(self.conversation)
        except (StoreError, OSError) as exc:
            self.notify(f"Could not save the conversation: {exc}", severity="error", markup=False)
            return False
        if result.forked:
            self.notify(
                "Another llmtui saved this conversation meanwhile; yours was kept as a fork.",
                severity="warning",
            )
        elif announce:
            self.notify(f"Saved to {result.path}", markup=False)
        return True

    def new_conversation(self) -> None:
        """Start over; the current conversation is saved."""
        if self.replies.can_act(needs_model=False):
            self._replace_conversation(Conversation(system=self.settings.system_prompt, model=self.options.model))
            self.chips.show([])
            self.sidebar.clear()

    def open_conversation(self, conversation: Conversation) -> None:
        """Show a saved conversation; the current one is saved."""
        if self.replies.can_act(needs_model=False):
            self._replace_conversation(conversation)

    def _replace_conversation(self, conversation: Conversation) -> None:
        self.autosave()
        self.conversation = conversation
        self.stream_turn = None
        self.call_after_refresh(self.show_conversation)
        self.inspect_prompt()

    # -- dialogs ----------------------------------------------------------------------------------------

    def action_settings(self) -> None:
        from llmtui.tui.screens.settings import SettingsScreen

        self.app.push_screen(SettingsScreen(self.params, self.conversation.system), self._settings_done)

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
            save_settings(settings, self.llmtui.config_path)
            self.llmtui.settings = settings
        except (LlmtuiError, OSError) as exc:  # SettingsFileError is an LlmtuiError
            self.notify(str(exc), severity="error", markup=False)
            return
        self.notify("Settings saved.")

    def action_history(self, query: str = "") -> None:
        from llmtui.tui.screens.history import HistoryScreen

        self.app.push_screen(HistoryScreen(self.llmtui.store, query), self._history_done)

    def _history_done(self, conversation: Conversation | None) -> None:
        if conversation is not None:
            self.open_conversation(conversation)

    def action_vocabulary(self) -> None:
        if self.view is None:
            self.notify("The tokenizer is still loading.", severity="warning")
            return
        from llmtui.tui.screens.vocabulary import VocabularyScreen

        self.app.push_screen(VocabularyScreen(self.view, self.backend))

    def action_rerun(self) -> None:
        """Re-run every recorded reply greedily with the current model and show where each one departs."""
        if self.replies.can_act() and self.backend is not None:
            self._rerun(self.backend, replace(self.params, temperature=0.0))

    @work(thread=True, exclusive=True, group="rerun", exit_on_error=False)
    def _rerun(self, backend: Backend, params: SamplingParams) -> None:
        from llmtui.core.replay import rerun

        call = self.app.call_from_thread
        try:
            for divergence in rerun(backend, self.conversation, params):
                call(self.note, divergence.describe(backend.view.display if backend.view else str))
        except LlmtuiError as exc:
            call(self.notify, str(exc), severity="error", markup=False)
