"""The model options a user chooses from, written once: settings, the command line, the engine process and
the loader all derive from these lists and this one typed object."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from llmtui.core.errors import InvalidValue

DEVICES = ("auto", "cpu", "cuda")  # and cuda:N
DTYPES = ("auto", "float32", "bfloat16", "float16")
FORWARDS = ("auto", "plain", "transformers")
QUANTIZE = ("none", "int8")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(value: str) -> str:
    """``value`` if it names a device llmtui understands, else InvalidValue."""
    if not _DEVICE.match(value):
        raise InvalidValue(f"unknown device {value!r}: use auto, cpu, cuda or cuda:N")
    return value


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else InvalidValue naming them."""
    if value not in choices:
        raise InvalidValue(f"unknown {name} {value!r}: use one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class ModelOptions:
    """Which model to load and how: the one object that settings plus command-line flags become."""

    model: str = "default"
    device: str = "auto"
    dtype: str = "auto"
    forward: str = "auto"
    quantize: str = "none"
    trust_remote_code: bool = False

    def validate(self) -> ModelOptions:
        """Return self, or raise InvalidValue for the first choice out of its list (before any load)."""
        check_device(self.device)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("forward", self.forward, FORWARDS)
        check_choice("quantize", self.quantize, QUANTIZE)
        return self

    @classmethod
    def merge(cls, settings: Any, **flags: Any) -> ModelOptions:
        """The settings' choices with the command line's flags (those not None) on top."""
        names = [f.name for f in fields(cls)]
        chosen = {n: getattr(settings, n) for n in names if hasattr(settings, n)}
        chosen.update({n: v for n, v in flags.items() if n in names and v is not None})
        return cls(**chosen).validate()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_args(self) -> list[str]:
        """These options as `llmtui serve` flags, for the engine process."""
        args = [self.model, "--device", self.device, "--dtype", self.dtype]
        args += ["--forward", self.forward, "--quantize", self.quantize]
        return [*args, "--trust-remote-code"] if self.trust_remote_code else args
