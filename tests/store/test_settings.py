from __future__ import annotations

import os
import stat

import pytest

from llmtui.core.errors import InvalidValue
from llmtui.store.settings import (
    Settings,
    SettingsFileError,
    load_settings,
    parse_value,
    save_settings,
    settings_path,
)


def test_defaults_when_there_is_no_file(private_dirs):
    settings, problems = load_settings()
    assert settings == Settings() and problems == []
    assert settings_path() == private_dirs / "config" / "settings.toml"


def test_round_trip_keeps_unknown_keys_and_is_private(private_dirs):
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.parent.chmod(0o755)
    path.write_text('future_option = "kept"\n[sampling]\ntemperature = 0.3\nfancy = 1\n[plugins.x]\ny = 2\n')
    settings, problems = load_settings()
    assert not problems and settings.sampling.temperature == 0.3
    settings = settings.with_value("sampling.top_k", 40).with_value("theme", "llmtui-light")
    settings = settings.with_value("keymap.stop", "ctrl+x")
    save_settings(settings)
    text = path.read_text()
    assert 'future_option = "kept"' in text and "fancy = 1" in text and "[plugins.x]" in text
    again, problems = load_settings()
    assert again == settings and not problems
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o755  # made by the user, so its mode is theirs


def test_invalid_values_fall_back_one_key_at_a_time_with_file_key_and_line(private_dirs):
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(
        'model = "default"\n[sampling]\ntemperature = -2\ntop_k = "many"\nmax_new_tokens = 64\n'
        '[layout]\nsidebar = "yes"\n'
    )
    settings, problems = load_settings()
    assert settings.sampling.max_new_tokens == 64  # the good key is used
    assert settings.sampling.temperature is None and settings.sampling.top_k is None and settings.layout.sidebar
    by_key = {p.key: p for p in problems}
    assert set(by_key) == {"sampling.temperature", "sampling.top_k", "layout.sidebar"}
    assert by_key["sampling.temperature"].line == 3 and by_key["sampling.top_k"].line == 4
    assert by_key["layout.sidebar"].line == 7
    assert str(path) in str(by_key["sampling.temperature"]) and "using the default" in str(by_key["sampling.top_k"])


def test_a_file_that_does_not_parse_is_reported_and_never_overwritten(private_dirs):
    path = settings_path()
    path.parent.mkdir(parents=True)
    broken = "[sampling\ntemperature = 0.2\n"
    path.write_text(broken)
    settings, problems = load_settings()
    assert settings == Settings() and problems and problems[0].line == 1
    with pytest.raises(SettingsFileError, match="will not overwrite"):
        save_settings(settings.with_value("theme", "x"))
    assert path.read_text() == broken


def test_with_value_validates():
    with pytest.raises(InvalidValue, match="unknown setting"):
        Settings().with_value("no_such", 1)
    with pytest.raises(InvalidValue, match="device"):
        Settings().with_value("device", "tpu")
    assert Settings().with_value("device", "cuda:1").device == "cuda:1"
    with pytest.raises(InvalidValue):
        Settings().with_value("sampling.temperature", True)


def test_parse_value():
    assert parse_value("0.2") == 0.2 and parse_value("true") is True and parse_value('["a"]') == ["a"]
    assert parse_value("plain words") == "plain words"


def test_cleared_overrides_leave_the_file(private_dirs):
    save_settings(Settings().with_value("sampling.temperature", 0.5))
    save_settings(Settings())
    assert "temperature" not in settings_path().read_text()


def test_config_flag_points_elsewhere(tmp_path):
    custom = tmp_path / "elsewhere.toml"
    save_settings(Settings().with_value("theme", "llmtui-light"), custom)
    assert load_settings(custom)[0].theme == "llmtui-light"


def test_bad_keymap_entries_are_reported_with_file_key_and_line_and_keep_their_defaults(private_dirs):
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text(
        '[keymap]\nstop = "nonsense+key+zz"\nquit = "\\u001b]0;pwned\\u0007"\nregenerate = "Ctrl+X, F12"\n'
        'no_such_binding = "f1"\nfocus.tokens = "/"\n"toggle.inspector" = "shift+ctrl+up"\ncopy = 5\n'
    )
    settings, problems = load_settings()
    # The good entries are used, in the form Textual's key events name keys; the bad ones keep the default.
    assert settings.keymap == {"regenerate": "ctrl+x,f12", "focus.tokens": "slash", "toggle.inspector": "ctrl+shift+up"}
    by_key = {p.key: p for p in problems}
    assert set(by_key) == {"keymap.stop", "keymap.quit", "keymap.no_such_binding", "keymap.copy"}
    assert [by_key[k].line for k in ("keymap.stop", "keymap.quit", "keymap.no_such_binding", "keymap.copy")] == [
        2,
        3,
        5,
        8,
    ]
    for problem in problems:
        line = str(problem)
        assert str(path) in line and "using the default" in line and "\n" not in line and "\x1b" not in line
    assert "'nonsense' is not a modifier" in str(by_key["keymap.stop"])
    assert "not a binding" in str(by_key["keymap.no_such_binding"])
    # A dotted binding id is changed where the file has it, not added again.
    save_settings(settings.with_value("keymap.focus.tokens", "f12"))
    assert 'focus.tokens = "f12"' in path.read_text() and load_settings()[0].keymap["focus.tokens"] == "f12"


def test_config_set_refuses_a_key_that_is_not_one():
    with pytest.raises(InvalidValue, match="not a key"):
        Settings().with_value("keymap.stop", "escape, \x1b[A")
    with pytest.raises(InvalidValue, match="not a binding"):
        Settings().with_value("keymap.sotp", "ctrl+x")
