"""Themes as TOML files: the bundled ones (themes/ in the package) and the user's own.

A theme file holds the fields of a Textual Theme and a [variables] table; the probability colours of
token chips are variables ($prob-1 very likely .. $prob-5 surprising), as are the inspector's.
"""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

from llmtui.store.files import config_dir

# Variables every llmtui screen uses; a theme that lacks one (Textual's own themes) gets these.
DEFAULT_VARIABLES = {
    "prob-1": "#2e7d32",
    "prob-2": "#7cb342",
    "prob-3": "#f9a825",
    "prob-4": "#ef6c00",
    "prob-5": "#c62828",
    "tok-a": "#37474f",
    "tok-b": "#455a64",
    "special": "#6a1b9a",
    "partial": "#00838f",
}
_COLOUR_FIELDS = (
    "primary",
    "secondary",
    "warning",
    "error",
    "success",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
)


def bundled_themes_dir() -> Path:
    """themes/ inside the installed package (a wheel), or at the repository root (a checkout)."""
    here = Path(__file__).resolve().parent.parent
    inside = here / "themes"
    return inside if inside.is_dir() else here.parent / "themes"


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def read_theme(path: Path) -> Theme:
    """One theme file; ValueError with the reason if it is malformed."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read it ({exc})") from None
    known = {f.name for f in fields(Theme)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown keys {', '.join(sorted(unknown))}")
    if not isinstance(data.get("name"), str) or not isinstance(data.get("primary"), str):
        raise ValueError("a theme needs a name and a primary colour")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ValueError("[variables] must be a table")
    colours = [(k, data[k]) for k in _COLOUR_FIELDS if k in data]
    colours += [(k, variables[k]) for k in DEFAULT_VARIABLES if k in variables]
    for key, value in colours:
        try:
            Color.parse(value)
        except (ColorParseError, TypeError):
            raise ValueError(f"{key} = {value!r} is not a colour") from None
    return Theme(**data)


def load_themes() -> tuple[list[Theme], list[str]]:
    """Every theme from the bundled and the user's directories; a problem line per malformed file."""
    themes: list[Theme] = []
    problems: list[str] = []
    for directory in (bundled_themes_dir(), user_themes_dir()):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                themes.append(read_theme(path))
            except ValueError as exc:
                problems.append(f"theme {path} skipped: {exc}")
    return themes, problems
