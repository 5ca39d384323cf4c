"""Typed reads of JSON that llmtui did not write itself (a conversation file, a chunk off the wire).

Each reader takes one field of a JSON object and returns it as the type its dataclass declares, or raises
ValueError naming the field and what it must be. The from_dict of every type that is read back from a file
goes through these, so a value of the wrong type or out of range is refused where it is read, never met
later as a crash (a timestamp of 1e300 in a date, a number where text was expected in a join).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_REQUIRED: Any = object()
# Python's int, float and the rest as a user of JSON names them.
_JSON_NAMES = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "an array", dict: "an object"}


def _kind(value: Any) -> str:
    return "null" if value is None else _JSON_NAMES.get(type(value), type(value).__name__)


def _get(d: Mapping[str, Any], key: str, default: Any) -> Any:
    if key in d:
        return d[key]
    if default is _REQUIRED:
        raise ValueError(f"{key} is missing")
    return default


def obj(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else ValueError naming ``what``."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object, not {_kind(value)}")
    return value


def text(d: Mapping[str, Any], key: str, default: Any = _REQUIRED) -> str:
    """A string field (``default`` when absent; required without one)."""
    value = _get(d, key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be text, not {_kind(value)}")
    return value


def optional_text(d: Mapping[str, Any], key: str) -> str | None:
    """A string field that may be absent or null."""
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be text, not {_kind(value)}")
    return value


def whole(d: Mapping[str, Any], key: str, default: Any = _REQUIRED, lo: int = 0, hi: int = 2**63 - 1) -> int:
    """A whole-number field from ``lo`` to ``hi`` (bool is not a number)."""
    value = _get(d, key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be a whole number, not {_kind(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"{key} must be from {lo} to {hi}, not {value}")
    return value


def optional_whole(d: Mapping[str, Any], key: str) -> int | None:
    """A whole-number field of 0 or more that may be absent or null (a value a server did not send)."""
    return None if d.get(key) is None else whole(d, key)


def optional_number(d: Mapping[str, Any], key: str, lo: float = -math.inf) -> float | None:
    """A finite number field that may be absent or null (a value a server did not send)."""
    return None if d.get(key) is None else number(d, key, lo=lo)


def number(
    d: Mapping[str, Any], key: str, default: Any = _REQUIRED, lo: float = -math.inf, hi: float = math.inf
) -> float:
    """A finite number field from ``lo`` to ``hi``, as a float (NaN and infinities are refused)."""
    value = _get(d, key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{key} must be a number, not {_kind(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, not {value}")
    if not lo <= value <= hi:
        low = f"{lo:g} or more" if hi == math.inf else f"from {lo:g} to {hi:g}"
        raise ValueError(f"{key} must be {low if lo > -math.inf else f'{hi:g} or less'}, not {value:g}")
    return value


def flag(d: Mapping[str, Any], key: str, default: bool) -> bool:
    """A true/false field."""
    value = _get(d, key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {_kind(value)}")
    return value


def array(d: Mapping[str, Any], key: str, default: Any = _REQUIRED) -> list[Any]:
    """An array field (its items are the caller's to read)."""
    value = _get(d, key, default)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{key} must be an array, not {_kind(value)}")
    return list(value)
