"""Names from files reach the screen escaped, never as raw escape sequences (the terminal's title, here)."""

from __future__ import annotations

from textual.widgets import Label

from llmtui.core.conversation import Conversation
from llmtui.tui.themes import user_themes_dir
from tests.tui.conftest import wait_for

PWNED = "\x1b]0;pwned\x07"


def terminal_output(app) -> str:
    """What the app would write to the terminal for its whole screen now (every layer, toasts included)."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    return update.render_segments(app.console)


def assert_nothing_raw(text: str) -> None:
    assert "\x1b]" not in text and "\x07" not in text


async def test_theme_and_conversation_file_names_reach_the_screen_escaped(make_app, private_dirs):
    themes = user_themes_dir()
    themes.mkdir(parents=True)
    (themes / f"{PWNED}.toml").write_text("name = 'broken'\n")  # reported, its file name quoted
    (themes / "named.toml").write_text("name = 'x\\u001b]0;pwned\\u0007'\nprimary = '#ffffff'\n")
    app = make_app()
    conversation = Conversation(id=f"good{PWNED}", title=f"title {PWNED}")
    conversation.add_user("hi")
    app.store.save(conversation)
    (app.store.root / f"bad{PWNED}.json").write_text("{}")
    async with app.run_test(size=(260, 48)) as pilot:
        await pilot.pause(0.2)
        assert not any("pwned" in name for name in app.available_themes)
        notices = " ".join(n.message for n in app._notifications)
        assert "\\x1b]0;pwned\\x07.toml skipped" in notices and "\x1b" not in notices
        assert_nothing_raw(terminal_output(app))

        app.clear_notifications()  # the toasts would cover the history's status line (wide: its path is long)
        await pilot.press("f10")
        status = app.screen.query_one("#history-status", Label)
        await wait_for(pilot, lambda: "could not be read" in str(status.render()))
        await pilot.pause(0.1)
        screen = terminal_output(app)
        assert "bad\\x1b]0;pwned\\x07.json" in screen  # the bad file's name is on the status line ...
        assert_nothing_raw(screen)  # ... without the characters that would make them a sequence
