"""A reply's items as OpenAI's wire shapes: the chunks of a streamed reply (SSE) or one whole response,
for chat completions and legacy completions alike, with llmtui's TokenEvent beside OpenAI's fields."""

from __future__ import annotations

import json
from typing import Any

from llmtui.core import wire
from llmtui.core.events import ReplyStats, TokenEvent
from llmtui.core.tokens import TokenizerView
from llmtui.server import protocol
from llmtui.server.decoder import Item
from llmtui.server.protocol import ApiError, GenerateRequest


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sse(obj: Any) -> bytes:
    """One server-sent event carrying ``obj`` as compact JSON."""
    return b"data: " + _encode(obj) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


class ReplyWriter:
    """A job's items as OpenAI's chunks (streamed) or one response: chat or legacy completions."""

    def __init__(
        self,
        view: TokenizerView,
        model: str,
        request: GenerateRequest,
        *,
        chat: bool,
        prompt_tokens: int,
        echo_ids: list[int] | None = None,
        echo_text: str = "",
    ) -> None:
        self.view = view
        self.model = model
        self.request = request
        self.chat = chat
        self.prompt_tokens = prompt_tokens
        self.echo_ids = echo_ids
        self.echo_text = echo_text
        self.id = protocol.new_id("chatcmpl" if chat else "cmpl")
        self.object = "chat.completion" if chat else "text_completion"
        self.created = protocol.now()
        self.events: list[TokenEvent] = []
        self.legacy = None
        if not chat and request.logprobs is not None:
            self.legacy = protocol.LegacyLogprobs(self.view, request.logprobs)

    # A chunk's frame: OpenAI repeats id, object, created and model in every chunk.
    def _chunk(self, choice: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [] if choice is None else [choice],
        }
        if self.request.include_usage:
            chunk["usage"] = None
        chunk.update(extra)
        return chunk

    def _choice(self, text: str | None, logprobs: Any, finish: str | None) -> dict[str, Any]:
        if self.chat:
            delta = {} if text is None else {"content": text}
            return {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return {"index": 0, "text": text or "", "logprobs": logprobs, "finish_reason": finish}

    def opening(self) -> list[bytes]:
        """What a stream starts with: OpenAI's chat streams open with the assistant's role."""
        if not self.chat:
            return []
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        return [sse(self._chunk(choice))]

    def echo_chunk(self, scored: list[TokenEvent] | None) -> dict[str, Any] | None:
        """The streamed chunk that returns the prompt first, with ``echo``."""
        echo = self.echo(scored)
        if echo is None:
            return None
        return self._chunk(self._with_scored(self._choice(echo["text"], echo["logprobs"], None), scored))

    @staticmethod
    def _with_scored(choice: dict[str, Any], scored: list[TokenEvent] | None) -> dict[str, Any]:
        """llmtui's own data for the echoed prompt's tokens (TokenEvents: ids, rank, entropy, candidates)."""
        if scored is not None:
            choice[wire.EXTENSION] = {"prompt": [e.to_dict() for e in scored]}
        return choice

    def echo(self, scored: list[TokenEvent] | None) -> dict[str, Any] | None:
        """The prompt, returned first with ``echo``; with logprobs, its own tokens' (the first has none)."""
        if self.echo_ids is None:
            return None
        if self.legacy is None:
            return {"text": self.echo_text, "logprobs": None}
        out = self.legacy.empty()
        by_index = {e.index: e for e in scored or ()}
        for i, token_id in enumerate(self.echo_ids):
            self.legacy.add(out, token_id, by_index.get(i))
        return {"text": self.echo_text, "logprobs": out}

    def token(self, event: TokenEvent) -> dict[str, Any]:
        """One streamed chunk per token, carrying llmtui's TokenEvent beside OpenAI's fields."""
        self.events.append(event)
        logprobs = self._logprobs(event)
        choice = self._choice(event.text, logprobs, None)
        choice[wire.EXTENSION] = event.to_dict()
        return self._chunk(choice)

    def _logprobs(self, event: TokenEvent) -> Any:
        if self.request.logprobs is None:
            return None
        if self.chat:
            return {"content": [protocol.chat_logprob(self.view, event, self.request.logprobs)]}
        assert self.legacy is not None
        out = self.legacy.empty()
        self.legacy.add(out, event.token_id, event)
        return out

    def closing(self, stats: ReplyStats) -> list[dict[str, Any]]:
        """The last chunk (finish_reason and llmtui's stats), then usage when the client asked for it."""
        chunks = [self._chunk(self._choice(None, None, protocol.finish_reason(stats)), **protocol.stats_field(stats))]
        if self.request.include_usage:
            chunks.append(self._chunk(None, usage=self.usage()))
        return chunks

    def usage(self) -> dict[str, int]:
        return protocol.usage(self.prompt_tokens, len(self.events))

    def response(self, scored: list[TokenEvent] | None, stats: ReplyStats) -> dict[str, Any]:
        """A whole (non-streamed) response."""
        text = "".join(e.text for e in self.events)
        finish = protocol.finish_reason(stats)
        if self.chat:
            logprobs = None
            if self.request.logprobs is not None:
                top = self.request.logprobs
                logprobs = {"content": [protocol.chat_logprob(self.view, e, top) for e in self.events]}
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": logprobs,
                "finish_reason": finish,
            }
        else:
            echo = self.echo(scored)
            logprobs = None
            if self.legacy is not None:
                logprobs = echo["logprobs"] if echo else self.legacy.empty()
                for e in self.events:
                    self.legacy.add(logprobs, e.token_id, e)
            choice = {"index": 0, "text": (echo["text"] if echo else "") + text, "logprobs": logprobs}
            choice["finish_reason"] = finish
            self._with_scored(choice, scored)
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage(),
            **protocol.stats_field(stats),
        }

    def feed(self, item: Item, parts: list[bytes]) -> bool:
        """Add one item's SSE events to ``parts``; True when the stream is over."""
        if item.kind == "event":
            parts.append(sse(self.token(item.value)))
            return False
        if item.kind == "score":
            chunk = self.echo_chunk(item.value)
            if chunk is not None:
                parts.append(sse(chunk))
            return False
        if item.kind == "done":
            parts.extend(sse(chunk) for chunk in self.closing(item.value))
        else:  # an error after the stream began: an error event, then the end, as vLLM does
            body = item_error(item).body()
            if item.stats is not None:
                body.update(protocol.stats_field(item.stats))
            parts.append(sse(body))
        parts.append(SSE_DONE)
        return True


def item_error(item: Item) -> ApiError:
    """What a job's error or cancellation item says to the client."""
    if item.kind == "gone":
        status = 499 if item.value == "the client went away" else 503
        return ApiError(status, f"the reply did not run: {item.value}", type="server_error", code="cancelled")
    return protocol.from_llmtui(item.value)
