"""A client of `llmtui serve`: the same Backend as the engine in this process, over HTTP.

It speaks the OpenAI-compatible API plus llmtui's extension (`llmtui.core.wire`): completions over token
ids (so that continuing and branching a reply is exact), with every step's TokenEvent in its chunk. It never
imports torch: the tokenizer the inspector shows is read from the model's files (tokenizer.json). The
connection, its failures and the streamed reply's faults are `backends.http`'s, shared with the client of
any other OpenAI-compatible server.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from llmtui.backends.base import Reply
from llmtui.backends.http import Endpoint, HttpBackend, StreamedReply
from llmtui.backends.served_tokenizer import ServerTokenizerView
from llmtui.core.errors import EngineUnavailable, GenerationError, InvalidValue, LlmtuiError
from llmtui.core.events import ReplyStats, TokenEvent
from llmtui.core.info import EngineInfo
from llmtui.core.lens import LensStep, Neighbour
from llmtui.core.prompt import Message, Prompt, fit
from llmtui.core.sampling import SamplingParams
from llmtui.core.tokens import TokenizerView
from llmtui.core.wire import EXTENSION, ReplyRequest


class ClientBackend(HttpBackend):
    """Replies from `llmtui serve` at ``base_url`` (or on a Unix socket, with ``uds``)."""

    what = "the engine"

    def __init__(
        self,
        base_url: str = "http://llmtui",
        *,
        uds: str | None = None,
        api_key: str | None = None,
        endpoint: Endpoint | None = None,
        model: str | None = None,
    ) -> None:
        self.connect(endpoint or Endpoint(base_url, uds=uds, key=api_key))
        data = self.request("GET", "/v1/models")["data"]
        entry = next((d for d in data if model is None or d.get("id") == model), None)
        if entry is None or EXTENSION not in entry:
            self.close()
            raise EngineUnavailable(f"{self.endpoint.host} serves no model that llmtui's extension describes")
        self.model_id = str(entry["id"])
        self.info = EngineInfo.from_dict(entry[EXTENSION])
        self.view = self._tokenizer_view()

    def _tokenizer_view(self) -> TokenizerView | None:
        from llmtui.engine.specs import load_tokenizer

        try:
            return TokenizerView(load_tokenizer(self.info.model.path), self.info.model.name)
        except LlmtuiError:
            if not self.endpoint.uds:  # a server on another host: its model's files may not be here
                return None
            raise

    def inspector_view(self) -> TokenizerView | None:
        """The model's tokenizer when its files are here; else the server's own, through its /tokenize."""
        return self.view or ServerTokenizerView(self, self.model_id)

    def render(self, messages: Sequence[Message], reserve: int = 0) -> Prompt:
        return fit(messages, reserve, self.info.context_length, self._template)

    def _template(self, messages: Sequence[Message]) -> tuple[str, list[int], bool]:
        body = {"model": self.model_id, "messages": list(messages), "add_generation_prompt": True}
        answer = self.request("POST", "/tokenize", body)
        return str(answer[EXTENSION]["text"]), [int(i) for i in answer["tokens"]], bool(answer[EXTENSION]["templated"])

    def generate(
        self, prompt: Prompt, params: SamplingParams, *, prefix: Sequence[int] = (), force: int | None = None
    ) -> Reply:
        return ClientReply(self, prompt, params.validate(), tuple(prefix), force)

    def score(self, ids: Sequence[int], top: int = 10, *, stride: int | None = None) -> list[TokenEvent]:
        # A completion of no new tokens that echoes the prompt with its log probabilities, as vLLM scores;
        # llmtui's extension carries each token's full step.
        if stride is not None:
            raise InvalidValue("the engine process scores long texts with its own stride")
        body = {"model": self.model_id, "prompt": list(ids), "max_tokens": 0, "echo": True, "logprobs": top}
        answer = self.request("POST", "/v1/completions", body)
        return _read(lambda: [TokenEvent.from_dict(d) for d in answer["choices"][0][EXTENSION]["prompt"]], "scores")

    def logit_lens(self, ids: Sequence[int], positions: Sequence[int], top: int = 5) -> list[LensStep]:
        body = {"model": self.model_id, "tokens": list(ids), "positions": list(positions), "top": top}
        answer = self.request("POST", "/llmtui/lens", body)
        return _read(lambda: [LensStep.from_dict(d) for d in answer["steps"]], "logit lens")

    def neighbours(self, token_id: int, k: int = 10) -> dict[str, list[Neighbour] | None]:
        answer = self.request("POST", "/llmtui/neighbours", {"model": self.model_id, "token": token_id, "k": k})
        return _read(
            lambda: {w: None if answer[w] is None else [Neighbour.from_dict(d) for d in answer[w]] for w in answer},
            "neighbours",
        )


def _read(parse: Any, what: str) -> Any:
    """The engine's answer, parsed; a malformed one is one sentence, not a traceback."""
    try:
        return parse()
    except (KeyError, TypeError, ValueError) as exc:
        raise GenerationError(f"the engine's {what} could not be read ({exc})") from None


class ClientReply(StreamedReply):
    """One reply from `llmtui serve`: completions over token ids, each step's TokenEvent in its chunk."""

    backend: ClientBackend

    def body(self) -> dict[str, Any]:
        p = self.params
        return {
            "model": self.backend.model_id,
            "prompt": [*self.prompt.ids, *self.prefix],
            "stream": True,
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "top_k": p.top_k,
            "repetition_penalty": p.repetition_penalty,
            "seed": p.seed,
            "stop": [*p.stop, *self.prompt.stop],
            EXTENSION: ReplyRequest(len(self.prefix), self.force, p.top_candidates).to_dict(),
        }

    def take(self, chunk: dict[str, Any]) -> Iterable[TokenEvent]:
        ext = chunk["choices"][0].get(EXTENSION) if chunk.get("choices") else None
        stats = (chunk.get(EXTENSION) or {}).get("stats")
        if stats is not None:
            self.stats = ReplyStats.from_dict(stats)
        return () if ext is None else (TokenEvent.from_dict(ext),)
