"""What llmtui knows of a model: before loading (`show`, `list`) and once an engine runs it (`EngineInfo`).

These cross the engine process's wire, so each has one serialiser (to_dict / from_dict).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from llmtui.core.sampling import SamplingParams


@dataclass(frozen=True)
class ModelInfo:
    """What `llmtui show` prints and the status bar shows."""

    name: str
    spec: str
    path: str
    architecture: str
    model_type: str
    parameters: int | None
    context_length: int | None
    vocab_size: int
    special_tokens: dict[str, str]
    special_token_ids: dict[str, int]
    chat_template: str | None
    size_bytes: int
    fingerprint: str
    forward: str  # "plain", or why the decode loop runs through transformers instead

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class ModelEntry:
    """One line of `llmtui list`."""

    spec: str
    architecture: str
    size_bytes: int
    where: str  # "bundled" | "hf-cache" | "directory"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEntry:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class EngineInfo:
    """What an engine says of the model it runs: the status bar, `/show`, and the engine process's wire."""

    model: ModelInfo
    device: str  # "cpu", "cuda:0", or several when accelerate spread the model
    weights: str  # the precision a user reads: "float32", "bfloat16", "int8"
    forward: str  # the pass that decodes: "plain" | "transformers"
    forward_note: str  # why that one, in a few words
    context_length: int
    defaults: SamplingParams  # the model's own generation_config, before the user's settings

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["defaults"] = self.defaults.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineInfo:
        return cls(
            model=ModelInfo.from_dict(d["model"]),
            device=str(d["device"]),
            weights=str(d["weights"]),
            forward=str(d["forward"]),
            forward_note=str(d["forward_note"]),
            context_length=int(d["context_length"]),
            defaults=SamplingParams.from_dict(d["defaults"]),
        )
