"""A client of `llmtui serve`: the same Backend as the engine in this process, over HTTP.

It speaks the OpenAI-compatible API plus llmtui's extension (`llmtui.core.wire`): completions over token
ids (so that continuing and branching a reply is exact), with every step's TokenEvent in its chunk. It never
imports torch: the tokenizer the inspector shows is read from the model's files (tokenizer.json).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

from llmtui.backends.base import Backend, Reply
from llmtui.core.errors import EngineUnavailable, GenerationError, InvalidValue, LlmtuiError
from llmtui.core.events import ReplyStats, TokenEvent
from llmtui.core.info import EngineInfo
from llmtui.core.lens import LensStep, Neighbour
from llmtui.core.prompt import Message, Prompt, fit
from llmtui.core.sampling import SamplingParams
from llmtui.core.tokens import TokenizerView
from llmtui.core.wire import EXTENSION, ReplyRequest

# Connecting is quick or never; a reply's first token may wait for the prompt's whole prefill.
TIMEOUT = httpx.Timeout(10.0, read=600.0)


def error_message(response: httpx.Response) -> str:
    """The one sentence an OpenAI-shaped error body carries, or the status line when it carries none."""
    try:
        body = response.json()
        message = body["error"]["message"] if isinstance(body.get("error"), dict) else body["error"]
        return str(message)
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"the server answered {response.status_code} {response.reason_phrase}"


class ClientBackend(Backend):
    """Replies from `llmtui serve` at ``base_url`` (or on a Unix socket, with ``uds``)."""

    def __init__(self, base_url: str = "http://llmtui", *, uds: str | None = None, api_key: str | None = None) -> None:
        transport = httpx.HTTPTransport(uds=uds) if uds else None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, transport=transport, headers=headers, timeout=TIMEOUT)
        data = self._request("GET", "/v1/models")["data"]
        if not data or EXTENSION not in data[0]:
            raise EngineUnavailable(f"{base_url} serves no model that llmtui's extension describes")
        self.model_id = str(data[0]["id"])
        self.info = EngineInfo.from_dict(data[0][EXTENSION])
        self.view = self._tokenizer_view()

    def _tokenizer_view(self) -> TokenizerView:
        from llmtui.engine.specs import load_tokenizer

        return TokenizerView(load_tokenizer(self.info.model.path), self.info.model.name)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        """One request that answers JSON; every failure becomes a one-sentence LlmtuiError."""
        try:
            response = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise self.unavailable(exc) from None
        if response.status_code >= 400:
            raise (InvalidValue if response.status_code < 500 else GenerationError)(error_message(response))
        return response.json()

    def unavailable(self, exc: BaseException) -> LlmtuiError:
        """What to tell the user when the server cannot be reached or stops answering."""
        return EngineUnavailable(f"the engine stopped answering ({type(exc).__name__}: {exc})")

    def render(self, messages: Sequence[Message], reserve: int = 0) -> Prompt:
        return fit(messages, reserve, self.info.context_length, self._template)

    def _template(self, messages: Sequence[Message]) -> tuple[str, list[int], bool]:
        body = {"model": self.model_id, "messages": list(messages), "add_generation_prompt": True}
        answer = self._request("POST", "/tokenize", body)
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
        answer = self._request("POST", "/v1/completions", body)
        return _read(lambda: [TokenEvent.from_dict(d) for d in answer["choices"][0][EXTENSION]["prompt"]], "scores")

    def logit_lens(self, ids: Sequence[int], positions: Sequence[int], top: int = 5) -> list[LensStep]:
        body = {"model": self.model_id, "tokens": list(ids), "positions": list(positions), "top": top}
        answer = self._request("POST", "/llmtui/lens", body)
        return _read(lambda: [LensStep.from_dict(d) for d in answer["steps"]], "logit lens")

    def neighbours(self, token_id: int, k: int = 10) -> dict[str, list[Neighbour] | None]:
        answer = self._request("POST", "/llmtui/neighbours", {"model": self.model_id, "token": token_id, "k": k})
        return _read(
            lambda: {w: None if answer[w] is None else [Neighbour.from_dict(d) for d in answer[w]] for w in answer},
            "neighbours",
        )

    def close(self) -> None:
        self.http.close()


def _read(parse: Any, what: str) -> Any:
    """The engine's answer, parsed; a malformed one is one sentence, not a traceback."""
    try:
        return parse()
    except (KeyError, TypeError, ValueError) as exc:
        raise GenerationError(f"the engine's {what} could not be read ({exc})") from None


class ClientReply:
    """One reply streamed from the server; `stop()` from any thread closes the stream, which stops the
    server's decode loop within one step."""

    def __init__(
        self, backend: ClientBackend, prompt: Prompt, params: SamplingParams, prefix: tuple[int, ...], force: int | None
    ) -> None:
        self.backend = backend
        self.prompt = prompt
        self.params = params
        self.prefix = prefix
        self.force = force
        self.events: list[TokenEvent] = []
        self.stats: ReplyStats | None = None
        self._stopped = threading.Event()
        self._response: httpx.Response | None = None

    def stop(self) -> None:
        self._stopped.set()
        response = self._response
        if response is not None:
            response.close()

    def _body(self) -> dict[str, Any]:
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

    def __iter__(self) -> Iterator[TokenEvent]:
        try:
            with connect_sse(self.backend.http, "POST", "/v1/completions", json=self._body()) as source:
                self._response = source.response
                if self._stopped.is_set():
                    return self._finish("stopped")
                if source.response.status_code >= 400:
                    source.response.read()
                    raise GenerationError(error_message(source.response))
                for sse in source.iter_sse():
                    if sse.data == "[DONE]":
                        break
                    chunk = json.loads(sse.data)
                    if "error" in chunk:
                        raise GenerationError(str(chunk["error"].get("message", chunk["error"])))
                    ext = chunk["choices"][0].get(EXTENSION) if chunk.get("choices") else None
                    if ext is not None:
                        event = TokenEvent.from_dict(ext)
                        self.events.append(event)
                        yield event
                    stats = (chunk.get(EXTENSION) or {}).get("stats")
                    if stats is not None:
                        self.stats = ReplyStats.from_dict(stats)
        except (httpx.HTTPError, SSEError, ValueError, KeyError, TypeError) as exc:
            if self._stopped.is_set():
                return self._finish("stopped")
            self._finish("error")
            if isinstance(exc, httpx.HTTPError):
                raise self.backend.unavailable(exc) from None
            raise GenerationError(f"the engine sent a reply llmtui cannot read ({type(exc).__name__})") from None
        except LlmtuiError:
            self._finish("error")
            raise
        finally:
            self._response = None
        if self.stats is None:  # the stream closed before the server's last chunk
            if not self._stopped.is_set():
                self._finish("error")
                raise GenerationError("the engine ended the reply without its last message")
            self._finish("stopped")

    def _finish(self, reason: str) -> None:
        self.stats = ReplyStats.of(self.events, len(self.prompt.ids), reason, self.prompt.dropped_turns)
