"""Every key the workstation advertises (footer and README) works with the focus in the composer.

The composer is a TextArea, which takes many keys for itself (ctrl+y is its redo, f6 and f7 select);
each binding is pressed there, real keystrokes through Pilot, and its effect checked.
"""

from __future__ import annotations

import sys

from textual.command import CommandPalette

from llmtui.tui.screens.history import HistoryScreen
from llmtui.tui.screens.settings import SettingsScreen
from llmtui.tui.widgets.conversation import Composer
from llmtui.tui.workstation import BINDINGS
from tests.conftest import LONG_REPLY
from tests.tui.conftest import wait_for, wait_idle, wait_ready


async def test_every_advertised_binding_works_from_the_composer(make_app, tiny_long_model_dir, tmp_path, monkeypatch):
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'w').write('written in the editor\\n')\n")
    monkeypatch.setenv("VISUAL", f"{sys.executable} {editor}")
    app = make_app(str(tiny_long_model_dir), max_new_tokens=4)  # the long model writes until the limit
    async with app.run_test(size=(160, 48)) as pilot:
        ws = app.workstation
        composer = app.query_one(Composer)

        async def press(key: str) -> None:
            composer.focus()
            await pilot.pause()
            assert app.focused is composer
            await pilot.press(key)
            await pilot.pause(0.1)

        async def reply(text: str) -> None:
            composer.focus()
            await pilot.press(*text, "enter")
            await wait_for(pilot, lambda: app.conversation.replies() and app.conversation.turns[-1].version.stats)

        def last():
            return app.conversation.turns[-1]

        async def stop() -> None:
            await pilot.press(*f"/set max_new_tokens {LONG_REPLY}", "enter")
            composer.focus()
            turns = len(app.conversation.turns)
            await pilot.press(*"Go on", "enter")
            # This reply, streaming (app.generation holds the last one until this one starts).
            await wait_for(
                pilot,
                lambda: (
                    len(app.conversation.turns) == turns + 2
                    and app.workstation.replies.busy
                    and len(last().version.events) > 2
                ),
            )
            await press("escape")
            await wait_idle(pilot)
            assert last().version.stats.stop_reason == "stopped"
            await pilot.press(*"/set max_new_tokens 4", "enter")

        async def regenerate() -> None:
            versions = len(last().versions)
            await press("ctrl+r")
            await wait_for(pilot, lambda: len(last().versions) == versions + 1)
            await wait_idle(pilot)

        async def continue_reply() -> None:
            assert last().version.stats.stop_reason == "max_tokens"
            await press("ctrl+o")
            await wait_for(pilot, lambda: len(last().version.events) > 4)
            await wait_idle(pilot)

        async def external_editor() -> None:
            await press("ctrl+g")
            assert composer.text == "written in the editor"
            composer.clear()

        async def copy() -> None:
            await press("ctrl+y")
            assert app.clipboard == last().content and app.clipboard

        async def focus(key: str, target: str) -> None:
            await press(key)
            assert app.focused is app.query_one(target)

        async def toggle(key: str, pane: str) -> None:
            shown = not app.query_one(pane).has_class("-hidden")
            await press(key)
            assert app.query_one(pane).has_class("-hidden") == shown
            await press(key)
            assert app.query_one(pane).has_class("-hidden") != shown

        async def dialog(key: str, kind: type) -> None:
            await press(key)
            await wait_for(pilot, lambda: isinstance(app.screen, kind))
            await pilot.press("escape")  # the dialog's own escape, not the workstation's
            await wait_for(pilot, lambda: app.screen is ws)

        async def restart() -> None:
            before = app.backend
            await press("ctrl+t")
            await wait_for(pilot, lambda: app.backend is not None and app.backend is not before)

        async def quit_app() -> None:
            await press("ctrl+q")
            await wait_for(pilot, lambda: not app.is_running)

        effects = {
            "stop": stop,
            "regenerate": regenerate,
            "continue": continue_reply,
            "editor": external_editor,
            "copy": copy,
            "focus.conversation": lambda: focus("f2", "#composer"),
            "focus.tokens": lambda: focus("f3", "#chips"),
            "focus.probabilities": lambda: focus("f4", "#candidates"),
            "focus.inspector": lambda: focus("f5", "#inspect-input"),
            "toggle.tokens": lambda: toggle("f6", "#tokens"),
            "toggle.probabilities": lambda: toggle("f7", "#probabilities"),
            "toggle.inspector": lambda: toggle("f8", "#inspector"),
            "settings": lambda: dialog("f9", SettingsScreen),
            "history": lambda: dialog("f10", HistoryScreen),
            "palette": lambda: dialog("ctrl+p", CommandPalette),
            "restart": restart,
            "quit": quit_app,  # last
        }
        assert set(effects) - {"palette"} == {b.id for b in BINDINGS}, "a binding without a check here"

        await wait_ready(pilot)
        await reply("Hello")
        for check in effects.values():
            await check()
    assert app.return_code == 0
