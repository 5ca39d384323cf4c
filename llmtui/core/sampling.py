"""How the next token is chosen: one typed object for settings, the command line, the wire and the store."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from llmtui.core.errors import InvalidValue


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen. temperature 0 means greedy; top_k 0 and top_p 1 mean off."""

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_new_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_candidates: int = 10

    def validate(self) -> SamplingParams:
        """Return self, or raise InvalidValue naming the first value out of range."""
        checks = [
            ("temperature", self.temperature >= 0 and math.isfinite(self.temperature), "0 or more"),
            ("top_k", self.top_k >= 0, "0 (off) or more"),
            ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
            ("repetition_penalty", self.repetition_penalty > 0, "more than 0"),
            ("max_new_tokens", self.max_new_tokens >= 1, "1 or more"),
            ("top_candidates", 1 <= self.top_candidates <= 100, "from 1 to 100"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise InvalidValue(f"{name} must be {rule}, not {getattr(self, name)}")
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
        names = [f.name for f in fields(self)]
        if name not in names:
            raise InvalidValue(f"unknown sampling setting {name!r}; known: {', '.join(names)}")
        value: Any
        try:
            if name == "stop":
                value = tuple(s for s in text.split("|") if s) if text else ()
            elif name == "seed":
                value = None if text.lower() in ("", "none", "random") else int(text)
            elif name in ("top_k", "max_new_tokens", "top_candidates"):
                value = int(text)
            else:
                value = float(text)
        except ValueError:
            raise InvalidValue(f"{name} needs a number, not {text!r}") from None
        return replace(self, **{name: value}).validate()

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
