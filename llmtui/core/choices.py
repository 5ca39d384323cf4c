"""The model options a user chooses from, written once: settings, the command line, the engine process and
the loader all derive from these lists and this one typed object."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from llmtui.core.errors import InvalidValue

DEVICES = ("auto", "cpu", "cuda")  # and cuda:N (MODEL_CHOICES["device"])
DTYPES = ("auto", "float32", "bfloat16", "float16")
FORWARDS = ("auto", "plain", "transformers")
QUANTIZE = ("none", "int8")


def in_words(values: tuple[str, ...]) -> str:
    """``("a", "b", "c")`` as ``"a, b or c"``, the way every message and help text lists choices."""
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


@dataclass(frozen=True)
class Choice:
    """One model option picked from a list: its name, its values (the first is the default), and what it
    chooses, for help texts."""

    name: str
    values: tuple[str, ...]
    about: str
    # Values beyond the list (the device's cuda:N): a pattern, and how it is written in words.
    pattern: str = ""
    pattern_words: str = ""

    @property
    def default(self) -> str:
        """The value used when nothing is chosen."""
        return self.values[0]

    @property
    def open(self) -> bool:
        """Whether values beyond the list are allowed (so `choices=` cannot list them all)."""
        return bool(self.pattern)

    @property
    def words(self) -> str:
        """Every allowed value in words: ``auto, cpu, cuda or cuda:N``."""
        return in_words(self.values + ((self.pattern_words,) if self.pattern else ()))

    def allows(self, value: Any) -> bool:
        """Whether ``value`` is one of this option's values."""
        if not isinstance(value, str):
            return False
        return value in self.values or bool(self.pattern and re.fullmatch(self.pattern, value))

    def check(self, value: Any) -> str:
        """``value`` if allowed, else InvalidValue naming the choices."""
        if not self.allows(value):
            raise InvalidValue(f"unknown {self.name} {value!r}: use {self.words}")
        return str(value)


# By name (the settings key, the flag, the ModelOptions field), in the order help texts and `to_args` list them.
MODEL_CHOICES: dict[str, Choice] = {
    c.name: c
    for c in (
        Choice("device", DEVICES, "where the weights go", pattern=r"cuda:\d+", pattern_words="cuda:N"),
        Choice("dtype", DTYPES, "the weights' dtype; auto: bf16 or fp16 on CUDA, fp32 on the CPU"),
        Choice(
            "forward", FORWARDS, "the decode loop's forward pass: llmtui's plain one (Llama family) or transformers'"
        ),
        Choice("quantize", QUANTIZE, "int8: faster CPU decoding, the probabilities move slightly"),
    )
}


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else InvalidValue naming them."""
    if value not in choices:
        raise InvalidValue(f"unknown {name} {value!r}: use {in_words(choices)}")
    return value


def check_choices(forward: str, quantize: str) -> None:
    """InvalidValue for a forward or quantize name llmtui does not know, or a pair that cannot run together
    (checked before a load starts)."""
    check_choice("forward", forward, FORWARDS)
    check_choice("quantize", quantize, QUANTIZE)
    if forward == "transformers" and quantize != "none":
        raise InvalidValue("int8 weights need the plain forward pass, not transformers'")


@dataclass(frozen=True)
class ModelOptions:
    """Which model to load and how: the one object that settings plus command-line flags become."""

    model: str = "default"
    device: str = DEVICES[0]
    dtype: str = DTYPES[0]
    forward: str = FORWARDS[0]
    quantize: str = QUANTIZE[0]
    trust_remote_code: bool = False

    def validate(self) -> ModelOptions:
        """Return self, or raise InvalidValue for the first choice out of its list (before any load)."""
        for choice in MODEL_CHOICES.values():
            choice.check(getattr(self, choice.name))
        check_choices(self.forward, self.quantize)
        return self

    @classmethod
    def merge(cls, settings: Any, **flags: Any) -> ModelOptions:
        """The settings' choices with the command line's flags (those not None) on top."""
        names = [f.name for f in fields(cls)]
        chosen = {n: getattr(settings, n) for n in names if hasattr(settings, n)}
        chosen.update({n: v for n, v in flags.items() if n in names and v is not None})
        return cls(**chosen).validate()

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict (for the wire and logs)."""
        return asdict(self)

    def to_args(self) -> list[str]:
        """These options as `llmtui serve` flags, for the engine process."""
        args = [self.model]
        for name in MODEL_CHOICES:
            args += [f"--{name}", getattr(self, name)]
        return [*args, "--trust-remote-code"] if self.trust_remote_code else args
