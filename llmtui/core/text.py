"""Model output and file contents are data: make them safe and legible on a terminal."""

from __future__ import annotations

import re

# C0 and C1 controls and DEL, except newline and tab; ESC among them, so no escape sequence survives.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_VISIBLE = str.maketrans({" ": "·", "\n": "↵", "\t": "→", "\r": "␍"})


def escape_controls(text: str) -> str:
    """Replace terminal control characters with visible escapes (``\\x1b``); keep newlines and tabs."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def has_controls(text: str) -> bool:
    """Whether ``text`` holds a terminal control character (newlines and tabs aside)."""
    return _CONTROLS.search(text) is not None


def strip_controls(text: str) -> str:
    """``text`` without its terminal control characters (for output whose width is already laid out)."""
    return _CONTROLS.sub("", text)


def visible(text: str) -> str:
    """Whitespace made visible (· ↵ →) and controls escaped: for token chips and pieces."""
    return escape_controls(text.replace("\r", "␍")).translate(_VISIBLE)
