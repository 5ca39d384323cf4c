"""Themes as TOML files: the bundled ones (themes/ in the package) and the user's own.

A theme file holds the fields of a Textual Theme and a [variables] table; the probability colours of
token chips are variables ($prob-1 very likely .. $prob-5 surprising), as are the inspector's.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields, replace
from functools import lru_cache
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.css.stylesheet import Stylesheet
from textual.theme import Theme

from llmtui.store.files import StoreError, config_dir, read_regular

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


# A theme file is a few hundred bytes; anything near this is not one.
MAX_THEME_BYTES = 1 << 20
_NAME = re.compile(r"[\w.-]+")
# The properties a variable's value is tried in, to learn its kind from Textual's own default value.
_KINDS = ("background", "color", "text-style")


def read_theme(path: Path) -> Theme:
    """One theme file, checked as Textual will use it; ValueError with the reason if it would not work.

    Textual checks nothing when a theme is registered: a wrong type (``dark = "yes"``), a non-number
    ``luminosity_spread`` or a variable that does not parse fails only when the theme is applied, and
    that crashed the app. So the theme is built here as Textual builds it (Theme -> ColorSystem ->
    generate()) and every variable it sets is parsed in a stylesheet, in a property of its kind.
    """
    try:
        data = tomllib.loads(read_regular(path, MAX_THEME_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise ValueError("cannot read it (it is gone)") from None
    except (StoreError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read it ({exc})") from None
    known = {f.name for f in fields(Theme)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown keys {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not isinstance(data.get("primary"), str):
        raise ValueError("a theme needs a name and a primary colour")
    if not _NAME.fullmatch(name):
        raise ValueError(f"name = {name!r}: a theme's name is letters, digits, '.', '-' and '_'")
    for key in ("dark", "ansi"):
        if key in data and not isinstance(data[key], bool):
            raise ValueError(f"{key} = {data[key]!r} must be true or false")
    for key in ("luminosity_spread", "text_alpha"):
        value = data.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{key} = {value!r} must be a number from 0 to 1")
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ValueError("[variables] must be a table")
    for key, value in variables.items():
        if not isinstance(value, str):
            raise ValueError(f"variable {key} = {value!r} must be a string")
    for key in _COLOUR_FIELDS:
        if key in data:
            try:
                Color.parse(data[key])
            except (ColorParseError, TypeError):
                raise ValueError(f"{key} = {data[key]!r} is not a colour") from None
    theme = Theme(**data)
    try:
        theme.to_color_system().generate()
        # What Textual would give each variable without this theme's own: the kind each must keep.
        generated = replace(theme, variables={}).to_color_system().generate()
    except Exception as exc:  # Textual's own computation: whatever it raises, the theme cannot be used
        raise ValueError(f"Textual cannot build it ({exc})") from None
    _check_variables(variables, {**DEFAULT_VARIABLES, **generated})
    return theme


@lru_cache(maxsize=512)
def _kind(default: str) -> str | None:
    """The first property Textual accepts a variable's default value in: what the variable is used as."""
    return next((prop for prop in _KINDS if _parses({"v": default}, {"v": prop})), None)


def _parses(variables: dict[str, str], properties: dict[str, str]) -> bool:
    """Whether Textual's CSS parser takes these variables (it tokenizes every one, used or not) and
    accepts each of ``properties``' variables in its property."""
    css = "".join(f"#v{i} {{ {prop}: ${var}; }}\n" for i, (var, prop) in enumerate(properties.items()))
    stylesheet = Stylesheet(variables=variables)
    stylesheet.add_source(css + "#theme-check { color: red; }\n", read_from=("theme", ""))
    try:
        stylesheet.parse()
    except Exception:  # Textual's parser: whatever it raises (TokenError, StylesheetParseError...) is a no
        return False
    return True


def _check_variables(variables: dict[str, str], defaults: dict[str, str]) -> None:
    """Every variable must be CSS Textual can tokenize, and each that Textual or llmtui uses must parse
    where its default does (a colour, a text style)."""
    properties = {}
    for key in variables:
        if key in DEFAULT_VARIABLES:
            properties[key] = "background"
        elif key in defaults and (kind := _kind(defaults[key])) is not None:
            properties[key] = kind
    if _parses({**defaults, **variables}, properties):
        return
    for key, value in variables.items():  # which one: only when the theme is bad
        prop = properties.get(key)
        if not _parses({**defaults, key: value}, {key: prop} if prop else {}):
            what = {"background": "a colour", None: "a CSS value Textual can read"}.get(prop, f"a {prop} value")
            raise ValueError(f"variable {key} = {value!r} is not {what}")
    raise ValueError("its variables do not parse together")


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
