"""Settings <-> settings.toml. One typed object; an invalid value falls back to its default alone.

The file is the user's: llmtui edits it in place (tomlkit), changing only the values that changed, so
comments, order, keys it does not know and values it finds invalid stay byte for byte as written; a file
that does not parse is reported and never overwritten.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, make_dataclass, replace
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from llmtui.core.choices import DEVICES, DTYPES, FORWARDS, MODEL_CHOICES, QUANTIZE, ModelOptions
from llmtui.core.errors import InvalidValue
from llmtui.core.keymap import BINDING_IDS, parse_keys
from llmtui.core.sampling import SAMPLING_FIELDS, SamplingParams
from llmtui.store.files import StoreError, atomic_write, config_dir, private_dir, read_regular

SETTINGS_FILE = "settings.toml"
# A settings file is a few hundred bytes; anything near this is not one.
MAX_SETTINGS_BYTES = 1 << 20


def _to_overrides(self: Any) -> dict[str, Any]:
    """The values the user set, by name: what SamplingParams takes on top of the model's own defaults."""
    return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


# The user's sampling choices: SamplingParams' fields, each None until set (None leaves a value to the
# model's generation_config). Made from SAMPLING_FIELDS so that a new sampling field is one edit.
SamplingSettings = make_dataclass(
    "SamplingSettings",
    [(f.name, f.hint | None, field(default=None)) for f in SAMPLING_FIELDS],
    frozen=True,
    namespace={
        "to_overrides": _to_overrides,
        "__doc__": "The user's sampling choices; None leaves a value to the model's own.",
        "__module__": __name__,
    },
)


@dataclass(frozen=True)
class Layout:
    """Which panes show, and how."""

    token_stream: bool = True
    inspector: bool = True
    sidebar: bool = True
    token_ids: bool = False  # show ids on token chips
    sparkline: str = "prob"  # "prob" or "entropy"


@dataclass(frozen=True)
class ServerSettings:
    """A server named in the settings (`[servers.NAME]`): `llmtui chat --server NAME` uses it."""

    url: str = ""
    key: str | None = field(default=None, repr=False)  # an API key: never in a repr, a log or `config show`
    model: str | None = None  # the model to use when none is named


_SERVER_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
SERVER_FIELDS = tuple(f.name for f in fields(ServerSettings))


def _server_value(key: str, value: Any) -> tuple[str, str, str]:
    """(name, field, value) of a `servers.NAME.FIELD` setting, checked; InvalidValue says what is wrong."""
    from urllib.parse import urlsplit

    name, _, what = key[len("servers.") :].rpartition(".")
    if not _SERVER_NAME.match(name) or what not in SERVER_FIELDS:
        fields_ = ", ".join(SERVER_FIELDS)
        raise InvalidValue(f"{key}: a server is [servers.NAME] with {fields_} (NAME: letters, digits, . - _)")
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"{key} must be text that is not empty")
    if what == "url":
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidValue(f"{key} must be an http:// or https:// URL with a host, not {value!r}")
    return name, what, value


@dataclass(frozen=True)
class Settings:
    """Everything llmtui remembers between runs."""

    model: str = ModelOptions.model
    device: str = DEVICES[0]
    dtype: str = DTYPES[0]
    forward: str = FORWARDS[0]  # the decode loop's forward pass
    quantize: str = QUANTIZE[0]  # int8 weights on the CPU are opt-in: they change the numbers slightly
    system_prompt: str = ""
    theme: str = "llmtui-dark"
    model_dirs: tuple[str, ...] = ()
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    layout: Layout = field(default_factory=Layout)
    keymap: dict[str, str] = field(default_factory=dict)  # binding id -> keys, as Textual's App.set_keymap
    servers: dict[str, ServerSettings] = field(default_factory=dict)  # read from the file; edited by hand

    def get(self, key: str) -> Any:
        if key.startswith("servers."):
            name, _, what = key[len("servers.") :].rpartition(".")
            server = self.servers.get(name)
            return getattr(server, what, None) if server else None
        section, name = _split(key)
        if section == "keymap":
            return self.keymap.get(name)
        return getattr(getattr(self, section) if section else self, name)

    def with_value(self, key: str, value: Any) -> Settings:
        """A copy with one dotted key set, validated; InvalidValue names the key and the rule."""
        if key.startswith("servers."):
            name, what, value = _server_value(key, value)
            server = replace(self.servers.get(name, ServerSettings()), **{what: value})
            return replace(self, servers={**self.servers, name: server})
        value = _check(key, value)
        section, name = _split(key)
        if section == "keymap":
            return replace(self, keymap={**self.keymap, name: value})
        if section:
            return replace(self, **{section: replace(getattr(self, section), **{name: value})})
        return replace(self, **{key: value})

    def to_toml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "sampling":
                out[f.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in value.to_overrides().items()}
            elif f.name == "layout":
                out[f.name] = {g.name: getattr(value, g.name) for g in fields(value)}
            elif f.name == "servers":
                shown = {n: {"url": v.url, "key": "***" if v.key else None, "model": v.model} for n, v in value.items()}
                out[f.name] = {n: {k: x for k, x in d.items() if x is not None} for n, d in shown.items()}
            elif isinstance(value, tuple):
                out[f.name] = list(value)
            else:
                out[f.name] = value
        return out


def _sampling_check(name: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        try:
            SamplingParams(**{name: value}).validate()
        except InvalidValue:
            return False
        return True

    return check


def _is(*types: type) -> Callable[[Any], bool]:
    # bool is an int in Python, but `sidebar = 1` is not a switch a user meant.
    return lambda v: isinstance(v, types) and not (isinstance(v, bool) and bool not in types)


def _any(_value: Any) -> bool:
    return True


_SAMPLING = {f"sampling.{f.name}": f for f in SAMPLING_FIELDS}

# dotted key -> (type check, range check, the rule in words). The model choices and the sampling fields
# come from their one definition each (core.choices, core.sampling).
_SCHEMA: dict[str, tuple[Callable[[Any], bool], Callable[[Any], bool], str]] = {
    "model": (_is(str), bool, "a model spec"),
    **{c.name: (_is(str), c.allows, c.words) for c in MODEL_CHOICES.values()},
    "system_prompt": (_is(str), _any, "text"),
    "theme": (_is(str), bool, "a theme name"),
    "model_dirs": (_is(list, tuple), lambda v: all(isinstance(x, str) for x in v), "a list of directories"),
    **{key: (f.accepts, _sampling_check(f.name), f.words) for key, f in _SAMPLING.items()},
    "layout.token_stream": (_is(bool), _any, "true or false"),
    "layout.inspector": (_is(bool), _any, "true or false"),
    "layout.sidebar": (_is(bool), _any, "true or false"),
    "layout.token_ids": (_is(bool), _any, "true or false"),
    "layout.sparkline": (_is(str), lambda v: v in ("prob", "entropy"), "prob or entropy"),
}
KEYS = tuple(_SCHEMA)


def _split(key: str) -> tuple[str, str]:
    """A dotted key's section and name; a binding id may itself hold dots (keymap.focus.tokens)."""
    if key.startswith("keymap."):
        return "keymap", key[len("keymap.") :]
    section, _, name = key.rpartition(".")
    return section, name


def _check(key: str, value: Any) -> Any:
    if key.startswith("keymap."):
        binding = key[len("keymap.") :]
        if binding not in BINDING_IDS:
            raise InvalidValue(f"{key}: {binding!r} is not a binding; the bindings are {', '.join(BINDING_IDS)}")
        if not isinstance(value, str):
            raise InvalidValue(f'{key} must be keys such as "ctrl+x", not {value!r}')
        try:
            return parse_keys(value)
        except InvalidValue as exc:
            raise InvalidValue(f"{key}: {exc}") from None
    if key not in _SCHEMA:
        raise InvalidValue(f"unknown setting {key!r}; known: {', '.join(KEYS)}, keymap.<binding id>")
    type_ok, range_ok, rule = _SCHEMA[key]
    if not (type_ok(value) and range_ok(value)):
        raise InvalidValue(f"{key} must be {rule}, not {value!r}")
    if isinstance(value, list):
        value = tuple(value)
    if key in _SAMPLING and _SAMPLING[key].kind is float and not _SAMPLING[key].many:
        value = float(value)  # `temperature = 1` in TOML is an int
    return value


@dataclass(frozen=True)
class SettingsProblem:
    """One thing wrong in a settings file: which file, which key, which line, what."""

    path: Path
    message: str
    key: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}" + (f" line {self.line}" if self.line else "")
        return f"{where}: {self.message}" + ("; using the default" if self.key else "")


class SettingsFileError(StoreError):
    """The settings file cannot be rewritten (it does not parse, or cannot be read)."""


def settings_path(path: str | Path | None = None) -> Path:
    return Path(path).expanduser() if path else config_dir() / SETTINGS_FILE


def _line_of(text: str, key: str) -> int | None:
    section, name = _split(key)
    # A name is written bare, quoted, or (a dotted binding id) as dotted bare parts.
    parts = r"\s*\.\s*".join(re.escape(p) for p in name.split("."))
    spelled = rf"^\s*(?:{parts}|\"{re.escape(name)}\"|'{re.escape(name)}')\s*="
    current = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1)
        elif current == section and re.match(spelled, line):
            return number
    return None


def _read(file: Path) -> str:
    """The settings file's text; "" when there is none. StoreError if it cannot be read as UTF-8 text."""
    try:
        raw = read_regular(file, MAX_SETTINGS_BYTES)
    except FileNotFoundError:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StoreError(f"cannot read {file}: it is not UTF-8 text") from None


def load_settings(path: str | Path | None = None) -> tuple[Settings, list[SettingsProblem]]:
    """Read settings; each bad value is reported and replaced by its default. A missing file is defaults."""
    file = settings_path(path)
    try:
        text = _read(file)
    except StoreError as exc:
        return Settings(), [SettingsProblem(file, f"{exc}; using defaults")]
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.11's TOMLDecodeError carries the position only in its message.
        found = re.search(r"at line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(found.group(1)) if found else None)
        return Settings(), [SettingsProblem(file, f"not valid TOML ({exc}); using defaults", line=line)]
    return _apply(doc, text, file)


def _apply(doc: dict[str, Any], text: str, file: Path) -> tuple[Settings, list[SettingsProblem]]:
    """The settings a parsed file says, each invalid value reported and left at its default."""
    settings = Settings()
    problems: list[SettingsProblem] = []
    for key, value in _flatten(doc):
        if key not in _SCHEMA and not key.startswith(("keymap.", "servers.")):
            continue  # unknown keys are kept in the file, not used
        try:
            settings = settings.with_value(key, value)
        except InvalidValue as exc:
            problems.append(SettingsProblem(file, str(exc), key=key, line=_line_of(text, key)))
    return settings, problems


def _flatten(doc: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in doc.items():
        if isinstance(value, dict) and key in ("sampling", "layout", "keymap") and not prefix:
            out.extend(_flatten(value, f"{key}."))
        elif isinstance(value, dict) and key == "servers" and not prefix:
            for name, server in value.items():  # [servers.NAME] url, key, model
                table = server.items() if isinstance(server, dict) else [("url", server)]
                out.extend((f"servers.{name}.{what}", v) for what, v in table)
        elif isinstance(value, dict) and prefix.startswith("keymap."):
            out.extend(_flatten(value, f"{prefix}{key}."))  # focus.tokens = "f3": a dotted binding id
        else:
            out.append((prefix + key, value))
    return out


def _values(settings: Settings) -> dict[str, Any]:
    """Every setting by dotted key; None for a sampling value left to the model."""
    return {**{key: settings.get(key) for key in KEYS}, **{f"keymap.{k}": v for k, v in settings.keymap.items()}}


def _put(doc: Any, key: str, value: Any) -> None:
    """Set (or, for None, remove) one dotted key in a tomlkit document, touching nothing else."""
    section, name = _split(key)
    table = doc
    if section:
        table = doc.get(section)
        if not isinstance(table, dict):  # absent, or a value where a table belongs
            doc[section] = tomlkit.table()
            table = doc[section]
    if section == "keymap" and name not in table:
        # A binding id the file spells as dotted keys (focus.tokens = "f3") is changed where it stands.
        node, *parts = [table, *name.split(".")]
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                break
            node = node[part]
        else:
            table, name = node, parts[-1]
    if value is None:
        if name in table:
            del table[name]
    else:
        table[name] = list(value) if isinstance(value, tuple) else value


def save_settings(settings: Settings, path: str | Path | None = None, *, keys: Iterable[str] = ()) -> Path:
    """Write into the settings file the values that differ from what it says (and ``keys`` in any case),
    editing it in place: every other byte (comments, order, unknown keys, invalid values) stays as the
    user wrote it. Refuses to rewrite a file that does not parse or cannot be read.

    Without ``path`` the file is in llmtui's config dir, created private if missing; a file the user names
    (``--config``) is written 0600 and its directory is left alone.
    """
    file = settings_path(path)
    if path is None:
        private_dir(file.parent)
    try:
        text = _read(file)
    except StoreError as exc:
        raise SettingsFileError(f"{exc}; llmtui will not overwrite it") from None
    try:
        tomllib.loads(text)  # what load_settings cannot read is never rewritten
        doc = tomlkit.parse(text)
    except (tomllib.TOMLDecodeError, TOMLKitError) as exc:
        raise SettingsFileError(
            f"{file} does not parse ({exc}); fix it by hand, llmtui will not overwrite it"
        ) from None
    now, _ = _apply(doc.unwrap(), text, file)
    before, after, forced = _values(now), _values(settings), set(keys)
    changed = [k for k in after if after[k] != before.get(k) or k in forced]
    if not changed:
        return file
    for key in changed:
        _put(doc, key, after[key])
    atomic_write(file, tomlkit.dumps(doc).encode("utf-8"))
    return file


def parse_value(text: str) -> Any:
    """A command-line value as TOML (0.2, true, ["a"]), else as a plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
