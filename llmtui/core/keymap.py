"""The workstation's key bindings (written once: the screen's BINDINGS, [keymap] validation and the
README derive from this list) and the rule for what a key is.

Key names are the ones Textual's key events carry ("ctrl+x", "f5", "escape", "comma"); a key that is not
one of them never arrives, so a [keymap] entry naming it would silently unbind the action.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from llmtui.core.errors import InvalidValue


@dataclass(frozen=True)
class KeyBinding:
    """One workstation binding: its id in [keymap], its default key, the screen's action, its label."""

    id: str
    key: str
    action: str
    description: str
    show: bool = True


KEY_BINDINGS = (
    KeyBinding("quit", "ctrl+q", "app.quit", "Quit"),
    KeyBinding("stop", "escape", "stop", "Stop"),
    KeyBinding("regenerate", "ctrl+r", "regenerate", "Regenerate"),
    KeyBinding("continue", "ctrl+o", "continue_reply", "Continue"),
    KeyBinding("editor", "ctrl+g", "external_editor", "$EDITOR"),
    KeyBinding("copy", "ctrl+y", "copy_reply", "Copy reply"),
    KeyBinding("focus.conversation", "f2", "focus_pane('conversation')", "Chat"),
    KeyBinding("focus.tokens", "f3", "focus_pane('tokens')", "Tokens"),
    KeyBinding("focus.probabilities", "f4", "focus_pane('probabilities')", "Probs"),
    KeyBinding("focus.inspector", "f5", "focus_pane('inspector')", "Inspect"),
    KeyBinding("toggle.tokens", "f6", "toggle_pane('tokens')", "Hide tokens", show=False),
    KeyBinding("toggle.probabilities", "f7", "toggle_pane('probabilities')", "Hide probs", show=False),
    KeyBinding("toggle.inspector", "f8", "toggle_pane('inspector')", "Hide inspector", show=False),
    KeyBinding("settings", "f9", "settings", "Settings"),
    KeyBinding("history", "f10", "history", "History"),
    KeyBinding("restart", "ctrl+t", "restart_engine", "Restart engine", show=False),
)
BINDING_IDS = tuple(b.id for b in KEY_BINDINGS)
DEFAULT_KEYS = {b.id: b.key for b in KEY_BINDINGS}

# Modifiers in the order Textual's key names carry them (sorted).
MODIFIERS = ("alt", "ctrl", "hyper", "meta", "shift", "super")
_NAMED = ("escape", "enter", "tab", "backspace", "delete", "insert", "home", "end", "pageup", "pagedown")
_NAMED += ("up", "down", "left", "right", "space", "menu", "pause", "print_screen", "scroll_lock", "caps_lock")
NAMED_KEYS = frozenset([*_NAMED, *(f"f{n}" for n in range(1, 36))])
# Textual names a printable character by its Unicode name, with these spelled the common way.
_REPLACEMENTS = {
    "solidus": "slash",
    "reverse_solidus": "backslash",
    "commercial_at": "at",
    "hyphen_minus": "minus",
    "plus_sign": "plus",
    "low_line": "underscore",
}


def character_key(character: str) -> str:
    """The key name Textual gives a printable character: itself if alphanumeric, else its name ("comma")."""
    if character.isalnum():
        return character
    name = unicodedata.name(character, "").lower().replace("-", "_").replace(" ", "_")
    return _REPLACEMENTS.get(name, name)


_CHARACTER_KEYS = frozenset(character_key(chr(c)) for c in range(0x21, 0x7F) if not chr(c).isalnum())


def _one_key(key: str) -> str:
    *modifiers, base = key.split("+")
    if not base:
        raise ValueError("it names no key" if not modifiers else "it has no key after its modifiers")
    unknown = [m for m in modifiers if m not in MODIFIERS]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not a modifier ({', '.join(MODIFIERS)})")
    if len(set(modifiers)) != len(modifiers):
        raise ValueError("it repeats a modifier")
    if len(base) == 1:
        if not base.isprintable() or base.isspace():
            raise ValueError(f"{base!r} is not a key")
        base = character_key(base)
    elif base not in NAMED_KEYS and base not in _CHARACTER_KEYS:
        raise ValueError(f"{base!r} is not a key name")
    return "+".join([*sorted(modifiers), base])


def parse_keys(text: str) -> str:
    """A [keymap] value ("ctrl+x" or "ctrl+x, f12") in the form Textual's key events name keys;
    InvalidValue says which key is not one."""
    keys = []
    for key in text.split(","):
        key = key.strip().lower() if len(key.strip()) > 1 else key.strip()
        try:
            keys.append(_one_key(key))
        except ValueError as exc:
            raise InvalidValue(f"{key!r} is not a key: {exc}; keys look like ctrl+x, f5, escape, alt+up") from None
    return ",".join(keys)
