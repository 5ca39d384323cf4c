"""Model output and file contents are data: make them safe and legible on a terminal."""

from __future__ import annotations

import re

# C0 and C1 controls and DEL, except newline and tab; ESC among them, so no escape sequence survives.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_VISIBLE = str.maketrans({" ": "·", "\n": "↵", "\t": "→", "\r": "␍"})


def escape_controls(text: str) -> str:
    """Replace terminal control characters with visible escapes (``\\x1b``); keep newlines and tabs."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def visible(text: str) -> str:
    """Whitespace made visible (· ↵ →) and controls escaped: for token chips and pieces."""
    return escape_controls(text.replace("\r", "␍")).translate(_VISIBLE)
