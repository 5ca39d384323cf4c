"""The seam between what shows replies (the workstation, `run`) and what produces them.

`LocalBackend` runs the engine in this process; `ClientBackend` talks to `llmtui serve` (the workstation's
own engine process, or one on another host). Both yield the same TokenEvents, so nothing above this
seam knows which it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from llmtui.core.choices import ModelOptions
from llmtui.core.errors import GenerationError, UnsupportedModel
from llmtui.core.events import ReplyStats, TokenEvent
from llmtui.core.info import EngineInfo
from llmtui.core.lens import LensStep, Neighbour
from llmtui.core.prompt import Message, Prompt
from llmtui.core.sampling import SamplingParams
from llmtui.core.tokens import TokenizerView


class Reply(Protocol):
    """One reply being written: iterate it for TokenEvents; `stop()` from any thread ends it within a step.

    Iterating raises an LlmtuiError when the reply fails; ``events`` then holds what came before it.
    """

    prompt: Prompt
    prefix: tuple[int, ...]  # reply tokens accepted before this run (continue, branch): not emitted again
    events: list[TokenEvent]
    stats: ReplyStats | None  # set when the reply ends

    def __iter__(self) -> Iterator[TokenEvent]: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Capabilities:
    """What a backend can give; what it cannot is shown to the user, never made up."""

    probabilities: bool = True  # raw and sampled probability, rank and entropy of every step
    candidates: bool = True  # the top-k candidates of every step
    branching: bool = True  # continue from accepted reply tokens, force a token at a step
    scoring: bool = True  # the probability of every token of a given text (score)
    lens: bool = True  # the model's insides: the logit lens, neighbours in embedding space


class Backend(ABC):
    """A model that writes replies."""

    info: EngineInfo
    # The model's tokenizer, for the inspector, the chips and token counts; None for a server whose model's
    # tokenizer is not on this machine.
    view: TokenizerView | None
    capabilities: Capabilities = Capabilities()
    server: str | None = None  # the URL of the server that writes the replies; None: an engine on this machine

    def default_params(self, **overrides: Any) -> SamplingParams:
        """The model's own sampling defaults (its generation_config), with the user's overrides on top."""
        return replace(self.info.defaults, **{k: v for k, v in overrides.items() if v is not None}).validate()

    @abstractmethod
    def render(self, messages: Sequence[Message], reserve: int = 0) -> Prompt:
        """The prompt for a conversation, with the generation prompt added and the oldest turns left out
        when prompt plus ``reserve`` new tokens would overflow the context."""

    @abstractmethod
    def generate(
        self, prompt: Prompt, params: SamplingParams, *, prefix: Sequence[int] = (), force: int | None = None
    ) -> Reply:
        """Start a reply. ``prefix``: reply tokens already accepted (not emitted again); ``force``: the token
        the first new step must take (branching from a candidate)."""

    def inspector_view(self) -> TokenizerView | None:
        """The tokenizer the inspector shows: ``view``, or another that cuts text the same way (a server's)."""
        return self.view

    def extend_refusal(self, prefix: Sequence[int | None]) -> str | None:
        """Why a reply with these accepted tokens cannot be continued or branched here (one sentence), or
        None when it can. A server that cannot take token ids says so, rather than doing something else."""
        return None

    def score(self, ids: Sequence[int], top: int = 10, *, stride: int | None = None) -> list[TokenEvent]:
        """How likely the model finds each token of ``ids`` after the ones before it (core.score): one
        TokenEvent per token after the first. Backends without ``capabilities.scoring`` refuse."""
        raise GenerationError("this engine cannot score a text")

    def logit_lens(self, ids: Sequence[int], positions: Sequence[int], top: int = 5) -> list[LensStep]:
        """At each position of ``ids``, the next tokens each layer would have chosen (engine/lens.py)."""
        raise UnsupportedModel("this engine does not show the model's layers")

    def neighbours(self, token_id: int, k: int = 10) -> dict[str, list[Neighbour] | None]:
        """The ``k`` tokens nearest ``token_id`` by the input embedding rows ("input") and the output
        head's ("output"; None when tied to the input's)."""
        raise UnsupportedModel("this engine does not show the model's embeddings")

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release what the backend holds (an engine process, connections)."""


# (fraction done, what is happening): how a loading backend reports progress.
Progress = Callable[[float, str], None]
# Starts a backend for a model: in this process, or an engine process; raises an LlmtuiError on failure.
StartBackend = Callable[[ModelOptions, Progress], Backend]
