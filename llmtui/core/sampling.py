"""How the next token is chosen: one typed object for settings, the command line, the wire and the store."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import Field, asdict, dataclass, field, fields, replace
from typing import Any, get_args, get_origin, get_type_hints

from llmtui.core.errors import InvalidValue

# torch's generators take a seed of 64 bits, signed or not; anything wider is an error deep inside torch.
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1


def _setting(default: Any, about: str, rule: str = "", check: Callable[[Any], bool] | None = None) -> Any:
    """A SamplingParams field with what every surface says of it: ``about`` for help texts, and the allowed
    range as a check and in words (none when any value of the field's type goes)."""
    return field(default=default, metadata={"about": about, "rule": rule, "check": check})


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen. temperature 0 means greedy; top_k 0 and top_p 1 mean off.

    A field declared here is a `run` flag, a `[sampling]` setting, a `/set` name and a settings-panel row.
    """

    temperature: float = _setting(0.0, "0 means greedy", "0 or more", lambda v: v >= 0 and math.isfinite(v))
    top_k: int = _setting(0, "sample from the k most likely tokens; 0 means off", "0 or more", lambda v: v >= 0)
    top_p: float = _setting(
        1.0,
        "sample from the most likely tokens up to this total probability; 1 means off",
        "in (0, 1]",
        lambda v: 0 < v <= 1,
    )
    repetition_penalty: float = _setting(
        1.0,
        "make tokens already in the text less likely; 1 means off",
        "more than 0",
        lambda v: v > 0 and math.isfinite(v),
    )
    max_new_tokens: int = _setting(512, "the most tokens one reply may have", "1 or more", lambda v: v >= 1)
    seed: int | None = _setting(
        None,
        "seed for sampling, for a repeatable reply (none: random)",
        f"from {SEED_MIN} to {SEED_MAX}",
        lambda v: SEED_MIN <= v <= SEED_MAX,
    )
    stop: tuple[str, ...] = _setting((), "a string that ends the reply where it appears")
    top_candidates: int = _setting(
        10, "candidates recorded per step, with their probabilities", "from 1 to 100", lambda v: 1 <= v <= 100
    )

    def validate(self) -> SamplingParams:
        """Return self, or raise InvalidValue naming the first value out of range."""
        for f in SAMPLING_FIELDS:
            value = getattr(self, f.name)
            if f.check is not None and value is not None and not f.check(value):
                raise InvalidValue(f"{f.name} must be {f.rule}, not {value}")
        return self

    @classmethod
    def from_generation_config(cls, config: Any, **overrides: Any) -> SamplingParams:
        """The model's own defaults (its generation_config), with the user's overrides on top."""
        base: dict[str, Any] = {}
        if config is not None:
            if getattr(config, "do_sample", False):
                base["temperature"] = float(getattr(config, "temperature", None) or 1.0)
                base["top_k"] = int(getattr(config, "top_k", None) or 0)
                base["top_p"] = float(getattr(config, "top_p", None) or 1.0)
            if getattr(config, "repetition_penalty", None):
                base["repetition_penalty"] = float(config.repetition_penalty)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base).validate()

    def with_value(self, name: str, text: str) -> SamplingParams:
        """A copy with one field parsed from text (for `/set`, `config set` and the settings panel)."""
        by_name = {f.name: f for f in SAMPLING_FIELDS}
        if name not in by_name:
            raise InvalidValue(f"unknown sampling setting {name!r}; known: {', '.join(by_name)}")
        return replace(self, **{name: by_name[name].parse(text)}).validate()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplingParams:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if "stop" in kwargs:
            kwargs["stop"] = tuple(kwargs["stop"])
        return cls(**kwargs).validate()


@dataclass(frozen=True)
class SamplingField:
    """One field of SamplingParams as the command line, the settings and text input see it."""

    name: str
    hint: Any  # the field's type, as declared
    kind: type  # int, float or str: what one value is parsed as
    many: bool  # a tuple of values (stop strings)
    optional: bool  # None is allowed (seed: random)
    default: Any
    about: str
    rule: str
    check: Callable[[Any], bool] | None

    @property
    def kind_words(self) -> str:
        """The field's type in words: ``a whole number``, ``a list of strings``."""
        one = {int: "a whole number", float: "a number"}.get(self.kind, "text")
        return f"a list of {'strings' if self.kind is str else one}" if self.many else one

    @property
    def words(self) -> str:
        """What a value must be, in words: ``a number, 0 or more``."""
        return f"{self.kind_words}, {self.rule}" if self.rule else self.kind_words

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (from TOML or JSON) has this field's type; bool is never a number."""

        def one(v: Any) -> bool:
            if isinstance(v, bool):
                return False
            return isinstance(v, (int, float)) if self.kind is float else isinstance(v, self.kind)

        if self.many:
            return isinstance(value, (list, tuple)) and all(one(v) for v in value)
        return one(value)

    def parse(self, text: str) -> Any:
        """A value from text: ``a|b`` for stop strings, ``none`` or ``random`` for an optional one."""
        if self.many:
            return tuple(s for s in text.split("|") if s) if text else ()
        if self.optional and text.lower() in ("", "none", "random"):
            return None
        try:
            return self.kind(text)
        except ValueError:
            raise InvalidValue(f"{self.name} needs {self.kind_words}, not {text!r}") from None


def _describe(f: Field[Any], hint: Any) -> SamplingField:
    args = [a for a in get_args(hint) if a is not type(None)]
    many = get_origin(hint) is tuple
    kind = args[0] if args else hint
    return SamplingField(
        name=f.name,
        hint=hint,
        kind=kind,
        many=many,
        optional=type(None) in get_args(hint),
        default=f.default,
        about=f.metadata["about"],
        rule=f.metadata["rule"],
        check=f.metadata["check"],
    )


# In declaration order: the order of `run --help`, the settings file and the settings panel.
SAMPLING_FIELDS: tuple[SamplingField, ...] = tuple(
    _describe(f, get_type_hints(SamplingParams)[f.name]) for f in fields(SamplingParams)
)
