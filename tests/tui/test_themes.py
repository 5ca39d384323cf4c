from __future__ import annotations

import pytest

from llmtui.store.settings import settings_path
from llmtui.tui.themes import DEFAULT_VARIABLES, bundled_themes_dir, load_themes, read_theme, user_themes_dir
from tests.tui.conftest import wait_for, wait_ready


def test_bundled_themes_load_and_define_every_llmtui_colour():
    themes, problems = load_themes()
    names = {t.name for t in themes}
    assert {"llmtui-dark", "llmtui-light", "llmtui-high-contrast"} <= names and not problems
    for theme in themes:
        assert set(DEFAULT_VARIABLES) <= set(theme.variables), theme.name
    assert (bundled_themes_dir() / "llmtui-dark.toml").is_file()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("name = 'x'\nprimary = \n", "cannot read"),
        ("name = 'x'\n", "primary"),
        ("name = 'x'\nprimary = 'not-a-colour'\n", "not a colour"),
        ("name = 'x'\nprimary = '#fff'\n[variables]\nprob-1 = 'nope'\n", "prob-1"),
        ("name = 'x'\nprimary = '#fff'\nsparkles = true\n", "unknown keys"),
        # Each of these passed the old checks and crashed the app when chosen.
        ("name = 'x'\nprimary = '#fff'\ndark = 'yes'\n", "dark"),
        ("name = 'x'\nprimary = '#fff'\nluminosity_spread = 'wide'\n", "luminosity_spread"),
        ("name = 'x'\nprimary = '#fff'\ntext_alpha = nan\n", "text_alpha"),
        ("name = 'x'\nprimary = '#fff'\n[variables]\nblock-cursor-background = 'nope'\n", "block-cursor-background"),
        ("name = 'x'\nprimary = '#fff'\n[variables]\nblock-cursor-text-style = 'purple'\n", "text-style"),
        ("name = 'x'\nprimary = '#fff'\n[variables]\nprob-1 = 3\n", "prob-1"),
        ("name = 'x'\nprimary = '#fff'\n[variables]\nunused = \"'oops\"\n", "unused"),  # still tokenized
        ("name = 'x\\u001b]0;pwned\\u0007'\nprimary = '#fff'\n", "name"),
    ],
)
def test_malformed_theme_files_are_reported_and_skipped(private_dirs, text, why):
    directory = user_themes_dir()
    directory.mkdir(parents=True)
    (directory / "mine.toml").write_text(text)
    with pytest.raises(ValueError, match=why):
        read_theme(directory / "mine.toml")
    themes, problems = load_themes()
    assert "x" not in {t.name for t in themes}
    assert len(problems) == 1 and "mine.toml" in problems[0]


async def test_a_users_theme_is_offered_and_the_choice_persists(make_app, private_dirs):
    directory = user_themes_dir()
    directory.mkdir(parents=True)
    (directory / "ocean.toml").write_text(
        "name = 'ocean'\nprimary = '#0077be'\ndark = false\nluminosity_spread = 0.2\n[variables]\n"
        "prob-1 = '#004466'\nblock-cursor-text-style = 'bold'\ntext = 'auto 90%'\nunused-by-anyone = 'anything'\n"
    )
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        assert "ocean" in app.available_themes
        app.theme = "ocean"
        await pilot.pause(0.1)
        chips = app.query_one("#chips")
        assert chips.chip_style("prob-1").bgcolor.triplet.hex == "#004466"
    from llmtui.store.settings import load_settings

    assert load_settings()[0].theme == "ocean"


async def test_a_theme_that_cannot_apply_is_refused_from_the_palette_and_never_saved(make_app, private_dirs):
    from textual.theme import Theme

    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        # Registered past read_theme's checks: the guard at applying time is what this test exercises.
        app.register_theme(Theme(name="broken", primary="#ffffff", variables={"block-cursor-background": "nope"}))
        app.search_themes()
        await pilot.pause(0.3)
        await pilot.press(*"broken")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.is_running and app.theme == "llmtui-dark"
        shown = [n.message for n in app._notifications]
        assert any("'broken' cannot be used: Textual's stylesheet does not parse" in m for m in shown), shown
    assert not settings_path().exists()  # nothing was saved


async def test_a_saved_theme_whose_file_went_bad_falls_back_with_a_message(make_app, private_dirs):
    directory = user_themes_dir()
    directory.mkdir(parents=True)
    (directory / "ocean.toml").write_text("name = 'ocean'\nprimary = '#0077be'\ndark = 'yes'\n")
    settings_path().write_text('theme = "ocean"\n')
    before = settings_path().read_bytes()
    app = make_app(theme="ocean")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.theme == "llmtui-dark"
        shown = [n.message for n in app._notifications]
        assert any("ocean.toml skipped" in m and "dark" in m for m in shown), shown
        assert any("'ocean' is not available" in m for m in shown), shown
    assert settings_path().read_bytes() == before


async def test_written_replies_are_drawn_in_the_themes_colours(private_dirs):
    # A reply's Markdown is rendered by Rich, whose styles are fixed colours of its own: they are set from
    # the theme, read through Textual's colour parser (Rich does not read hsl()).
    from textual.color import Color

    from llmtui.core.conversation import Conversation, Turn, Version
    from llmtui.core.errors import LlmtuiError
    from llmtui.store.conversations import ConversationStore
    from llmtui.tui.app import LlmtuiApp

    directory = user_themes_dir()
    directory.mkdir(parents=True)
    (directory / "dusk.toml").write_text("name = 'dusk'\nprimary = 'hsl(280, 60%, 55%)'\ndark = true\n")
    conversation = Conversation(id="c", title="c")
    conversation.turns += [Turn("user", [Version("hi")]), Turn("assistant", [Version("# Heading\n\nbody")])]

    def no_model(options, progress):
        raise LlmtuiError("no model in this test")

    store = ConversationStore(private_dirs / "data" / "conversations")
    app = LlmtuiApp(start_backend=no_model, store=store, conversation=conversation)
    async with app.run_test(size=(100, 30)) as pilot:

        def heading_colour() -> str | None:
            strips = app.screen._compositor.render_strips()
            heading = next((seg for strip in strips for seg in strip if "Heading" in seg.text), None)
            return heading.style.color.triplet.hex if heading is not None else None

        for theme in ("llmtui-dark", "dusk"):
            app.theme = theme
            primary = Color.parse(app.current_theme.primary).hex6.lower()
            await wait_for(pilot, lambda primary=primary: heading_colour() == primary, timeout=5)
