"""[keymap] in settings.toml: a bad entry is reported and its binding keeps its default key."""

from __future__ import annotations

import string

from textual._keyboard_protocol import FUNCTIONAL_KEYS
from textual.keys import Keys, _character_to_key

from llmtui.backends.local import LocalBackend
from llmtui.core.keymap import NAMED_KEYS, character_key, parse_keys
from llmtui.store.conversations import ConversationStore
from llmtui.store.settings import load_settings, settings_path
from llmtui.tui.app import LlmtuiApp


def test_key_names_are_the_ones_textual_gives_key_events():
    textual_names = {k.value.split("+")[-1] for k in Keys} | set(FUNCTIONAL_KEYS.values())
    assert NAMED_KEYS.issubset(textual_names)
    for character in string.printable.strip():
        assert character_key(character) == _character_to_key(character)
    assert parse_keys("shift+ctrl+Up, F5") == "ctrl+shift+up,f5"


async def test_nonsense_in_the_keymap_is_reported_and_the_defaults_still_work(tiny_model_dir, private_dirs):
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text('[keymap]\nstop = "nonsense+key+zz"\nquit = "\\u001b[A"\nregenerate = "ctrl+x"\n')
    settings, problems = load_settings()
    app = LlmtuiApp(
        settings=settings,
        notices=[str(p) for p in problems],
        model=str(tiny_model_dir),
        start_backend=LocalBackend.load,
        store=ConversationStore(private_dirs / "data" / "conversations"),
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        shown = [n.message for n in app._notifications]
        assert any("keymap.stop" in m and "line 2" in m for m in shown), shown
        assert any("keymap.quit" in m and "line 3" in m and "\\x1b" in m for m in shown), shown
        active = app.active_bindings
        assert active["escape"].binding.id == "stop" and active["ctrl+x"].binding.id == "regenerate"
        assert "ctrl+r" not in active  # the good entry did move it
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.return_code == 0
