"""The settings panel: sampling parameters and the system prompt, validated as you type."""

from __future__ import annotations

from dataclasses import fields

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea

from llmtui.core.errors import InvalidValue
from llmtui.core.sampling import SamplingParams


def _as_text(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "|".join(value)
    return str(value)


class SettingsScreen(ModalScreen[tuple[SamplingParams, str] | None]):
    """Returns (params, system prompt) on save; each field is checked with SamplingParams' own rules."""

    BINDINGS = [Binding("ctrl+s", "save", "Save"), Binding("escape", "cancel", "Cancel")]

    def __init__(self, params: SamplingParams, system: str) -> None:
        super().__init__()
        self.params = params
        self.system = system

    def compose(self) -> ComposeResult:
        with Vertical(id="settings-dialog"):
            yield Label("Settings · saved to settings.toml · ctrl+s save · escape cancel")
            with VerticalScroll():
                for f in fields(SamplingParams):
                    with Horizontal(classes="setting"):
                        yield Label(f.name, classes="setting-name")
                        yield Input(_as_text(getattr(self.params, f.name)), id=f"set-{f.name}")
                yield Label("system prompt")
                yield TextArea(self.system, id="set-system", soft_wrap=True)
                yield Label("", id="settings-error")
            with Horizontal(classes="buttons"):
                yield Button("Save", id="save", variant="primary")
                yield Button("Cancel", id="cancel")

    def _collect(self) -> SamplingParams:
        params = SamplingParams()
        for f in fields(SamplingParams):
            params = params.with_value(f.name, self.query_one(f"#set-{f.name}", Input).value.strip())
        return params

    def on_input_changed(self, message: Input.Changed) -> None:
        try:
            self._collect()
        except InvalidValue as exc:
            self.query_one("#settings-error", Label).update(f"✖ {exc}")
            return
        self.query_one("#settings-error", Label).update("")

    def on_button_pressed(self, message: Button.Pressed) -> None:
        if message.button.id == "save":
            self.action_save()
        else:
            self.action_cancel()

    def action_save(self) -> None:
        try:
            params = self._collect()
        except InvalidValue as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.dismiss((params, self.query_one("#set-system", TextArea).text))

    def action_cancel(self) -> None:
        self.dismiss(None)
