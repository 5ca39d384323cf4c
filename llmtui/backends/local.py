"""The engine in this process: what `llmtui run`, `tokenize` and the engine process itself use."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from llmtui.backends.base import Backend, Reply
from llmtui.core.choices import ModelOptions
from llmtui.core.events import TokenEvent
from llmtui.core.info import EngineInfo
from llmtui.core.lens import LensStep, Neighbour
from llmtui.core.prompt import Message, Prompt
from llmtui.core.sampling import SamplingParams
from llmtui.engine.generation import Engine
from llmtui.engine.lens import Lens
from llmtui.engine.loader import Progress, load


class LocalBackend(Backend):
    """Replies from an Engine over a model loaded in this process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.view = engine.view
        loaded = engine.loaded
        self.info = EngineInfo(
            model=loaded.info,
            device=str(loaded.device),
            weights=loaded.weights,
            forward=loaded.forward.name,
            forward_note=loaded.forward.note,
            context_length=engine.context_length,
            defaults=engine.default_params(),
        )

    @classmethod
    def load(cls, options: ModelOptions, progress: Progress | None = None) -> LocalBackend:
        """Load the model ``options`` name; every failure is a typed LlmtuiError."""
        kwargs = {} if progress is None else {"progress": progress}
        loaded = load(
            options.model,
            device=options.device,
            dtype=options.dtype,
            forward=options.forward,
            quantize=options.quantize,
            trust_remote_code=options.trust_remote_code,
            **kwargs,
        )
        engine = Engine(loaded)
        engine.view.pieces  # noqa: B018 - build the piece table now, not in the first step
        return cls(engine)

    @cached_property
    def lens(self) -> Lens:
        return Lens(self.engine.loaded, self.view)

    def logit_lens(self, ids: Sequence[int], positions: Sequence[int], top: int = 5) -> list[LensStep]:
        return self.lens.lens(ids, positions, top)

    def neighbours(self, token_id: int, k: int = 10) -> dict[str, list[Neighbour] | None]:
        return {which: self.lens.neighbours(token_id, k, which) for which in ("input", "output")}

    def score(self, ids: Sequence[int], top: int = 10, *, stride: int | None = None) -> list[TokenEvent]:
        return self.engine.score(ids, top, stride=stride)

    def render(self, messages: Sequence[Message], reserve: int = 0) -> Prompt:
        return self.engine.render(messages, reserve)

    def generate(
        self, prompt: Prompt, params: SamplingParams, *, prefix: Sequence[int] = (), force: int | None = None
    ) -> Reply:
        return self.engine.generate(prompt, params, prefix=prefix, force=force)
