from __future__ import annotations

import pytest

from llmtui.tui.themes import DEFAULT_VARIABLES, bundled_themes_dir, load_themes, read_theme, user_themes_dir
from tests.tui.conftest import wait_ready


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
    (directory / "ocean.toml").write_text("name = 'ocean'\nprimary = '#0077be'\n[variables]\nprob-1 = '#004466'\n")
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
