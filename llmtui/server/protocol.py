"""The OpenAI wire format as `llmtui serve` speaks it: requests read and checked, responses and chunks built.

The shapes follow OpenAI's API reference (chat completions, legacy completions, error bodies) and vLLM's
additions (`/tokenize`, `/detokenize`, `max_model_len`, `top_k`, `repetition_penalty`, `echo` with
logprobs). llmtui's own per-token data rides in the `llmtui` extension fields of `llmtui.core.wire`.
Every wrong field becomes an `ApiError` that names it; nothing here touches the model.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmtui.core import wire
from llmtui.core.errors import ContextOverflow, InvalidValue, LlmtuiError, OutOfMemory
from llmtui.core.events import ReplyStats, TokenEvent
from llmtui.core.prompt import Message
from llmtui.core.sampling import SEED_MAX, SEED_MIN
from llmtui.core.tokens import TokenizerView


class ApiError(Exception):
    """A request the server refuses, as OpenAI's error body: ``{"error": {message, type, param, code}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400: the request itself is wrong."""
    return ApiError(400, message, param=param, code=code)


# -- reading a request -------------------------------------------------------------------------------------

# Fields of OpenAI's requests that llmtui serves only at their neutral value (anything else is a 400).
_NEUTRAL: dict[str, Any] = {
    "n": lambda v: v == 1,
    "best_of": lambda v: v == 1,
    "frequency_penalty": lambda v: v == 0,
    "presence_penalty": lambda v: v == 0,
    "logit_bias": lambda v: v == {},
    "tools": lambda v: v == [],
    "functions": lambda v: v == [],
    "tool_choice": lambda v: v in ("none", "auto"),
    "function_call": lambda v: v in ("none", "auto"),
    "response_format": lambda v: v == {"type": "text"},
    "modalities": lambda v: v == ["text"],
    "suffix": lambda v: v == "",
    "min_p": lambda v: v == 0,
}
# Fields that describe the caller, not the reply: accepted and not used.
_IGNORED = frozenset(
    {"user", "metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier", "parallel_tool_calls"}
)
_SAMPLING = ("temperature", "top_p", "top_k", "repetition_penalty", "seed", "stop")


class Body:
    """A JSON request body, read field by field; a field of the wrong type or range is a 400 naming it.

    ``null`` is the same as leaving a field out, as OpenAI's client libraries send it.
    """

    def __init__(self, data: Any, known: Sequence[str]) -> None:
        if not isinstance(data, dict):
            raise invalid("the request body must be a JSON object")
        self.data = {k: v for k, v in data.items() if v is not None}
        for name, value in self.data.items():
            if name in known or name in _IGNORED:
                continue
            neutral = _NEUTRAL.get(name)
            if neutral is None:
                raise invalid(f"unrecognized request argument: {name!r}", name)
            if not neutral(value):
                raise invalid(f"{name!r} is not supported by llmtui serve (only at its default)", name)

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def int(self, name: str, default: int | None = None, lo: int | None = None, hi: int | None = None) -> Any:
        value = self.data.get(name, default)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise invalid(f"{name!r} must be a whole number, not {_shown(value)}", name)
        _check_range(name, value, lo, hi)
        return value

    def float(self, name: str, lo: float | None = None, hi: float | None = None) -> Any:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
            raise invalid(f"{name!r} must be a number, not {_shown(value)}", name)
        _check_range(name, value, lo, hi)
        return float(value)

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise invalid(f"{name!r} must be true or false, not {_shown(value)}", name)
        return value

    def str(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, str):
            raise invalid(f"{name!r} must be a string, not {_shown(value)}", name)
        return value

    def sampling(self) -> dict[str, Any]:
        """The sampling fields the request sets, as SamplingParams overrides (unset: the model's defaults)."""
        out: dict[str, Any] = {}
        temperature = self.float("temperature", 0)  # OpenAI stops at 2; llmtui's settings (and vLLM) do not
        if temperature is not None:
            out["temperature"] = temperature
        top_p = self.float("top_p", 0, 1)
        if top_p is not None:
            if top_p == 0:
                raise invalid("'top_p' must be more than 0", "top_p")
            out["top_p"] = top_p
        top_k = self.int("top_k", lo=-1)
        if top_k is not None:
            out["top_k"] = max(top_k, 0)  # vLLM's -1 and OpenAI-style 0 both mean off
        penalty = self.float("repetition_penalty", 0)
        if penalty is not None:
            if penalty == 0:
                raise invalid("'repetition_penalty' must be more than 0", "repetition_penalty")
            out["repetition_penalty"] = penalty
        seed = self.int("seed", lo=SEED_MIN, hi=SEED_MAX)
        if seed is not None:
            out["seed"] = seed
        stop = self.data.get("stop")
        if stop is not None:
            if isinstance(stop, str):
                stop = [stop]
            if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
                raise invalid("'stop' must be a string or a list of strings", "stop")
            out["stop"] = tuple(s for s in stop if s)
        return out

    def stream_options(self, stream: bool) -> bool:
        """Whether a stream ends with a usage chunk (``stream_options.include_usage``)."""
        options = self.data.get("stream_options")
        if options is None:
            return False
        if not stream:
            raise invalid("'stream_options' is only allowed when 'stream' is true", "stream_options")
        if not isinstance(options, dict):
            raise invalid("'stream_options' must be an object", "stream_options")
        include = options.get("include_usage", False)
        if not isinstance(include, bool):
            raise invalid("'stream_options.include_usage' must be true or false", "stream_options")
        return include

    def extension(self) -> wire.ReplyRequest:
        try:
            return wire.ReplyRequest.from_dict(self.data.get(wire.EXTENSION, {}))
        except Exception as exc:
            raise invalid(str(exc), wire.EXTENSION) from None


def _check_range(name: str, value: float, lo: float | None, hi: float | None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if lo is not None and hi is not None:
            rule = f"from {lo} to {hi}"
        elif lo is not None:
            rule = f"{lo} or more"
        else:
            rule = f"{hi} or less"
        raise invalid(f"{name!r} must be {rule}, not {value}", name)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


_COMMON = ("model", "stream", "stream_options", "max_tokens", *_SAMPLING, wire.EXTENSION)
_CHAT_FIELDS = (*_COMMON, "messages", "max_completion_tokens", "logprobs", "top_logprobs")
_COMPLETION_FIELDS = (*_COMMON, "prompt", "logprobs", "echo")
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class GenerateRequest:
    """A chat or completion request, read and checked; what the server runs."""

    model: str | None
    overrides: dict[str, Any]  # SamplingParams fields the request sets
    max_tokens: int | None  # None: until the context is full (chat)
    logprobs: int | None  # None: no logprobs; else how many top logprobs per token
    stream: bool
    include_usage: bool
    extension: wire.ReplyRequest
    messages: list[Message] = field(default_factory=list)  # chat
    prompt: str | list[int] | None = None  # completions: text or token ids
    echo: bool = False  # completions: return the prompt too (with its logprobs when asked)


def read_chat(data: Any) -> GenerateRequest:
    """`POST /v1/chat/completions`."""
    body = Body(data, _CHAT_FIELDS)
    messages = _messages(body.raw("messages"))
    if not messages:
        raise invalid("'messages' must hold at least one message", "messages")
    stream = body.bool("stream")
    logprobs = body.bool("logprobs")
    top = body.int("top_logprobs", lo=0, hi=wire.MAX_TOP_LOGPROBS)
    if top is not None and not logprobs:
        raise invalid("'top_logprobs' needs 'logprobs' set to true", "top_logprobs")
    max_tokens = body.int("max_completion_tokens", lo=1)
    if max_tokens is None:
        max_tokens = body.int("max_tokens", lo=1)
    extension = body.extension()
    if extension.prefix or extension.force is not None:
        raise invalid(f"'{wire.EXTENSION}.prefix' and '.force' are for /v1/completions", wire.EXTENSION)
    return GenerateRequest(
        model=body.str("model"),
        overrides=body.sampling(),
        max_tokens=max_tokens,
        logprobs=(top or 0) if logprobs else None,
        stream=stream,
        include_usage=body.stream_options(stream),
        extension=extension,
        messages=messages,
    )


def read_completion(data: Any) -> GenerateRequest:
    """`POST /v1/completions` (OpenAI's legacy completions, with vLLM's echo of prompt logprobs)."""
    body = Body(data, _COMPLETION_FIELDS)
    prompt = _prompt(body.raw("prompt"))
    echo = body.bool("echo")
    max_tokens = body.int("max_tokens", 16, lo=0)
    if max_tokens == 0 and not echo:
        raise invalid("'max_tokens' must be 1 or more (0 only with 'echo', to score the prompt)", "max_tokens")
    stream = body.bool("stream")
    extension = body.extension()
    if extension.prefix and not isinstance(prompt, list):
        raise invalid(f"'{wire.EXTENSION}.prefix' needs the prompt as a list of token ids", wire.EXTENSION)
    return GenerateRequest(
        model=body.str("model"),
        overrides=body.sampling(),
        max_tokens=max_tokens,
        logprobs=body.int("logprobs", lo=0, hi=wire.MAX_TOP_LOGPROBS),
        stream=stream,
        include_usage=body.stream_options(stream),
        extension=extension,
        prompt=prompt,
        echo=echo,
    )


def _messages(value: Any) -> list[Message]:
    if not isinstance(value, list):
        raise invalid("'messages' must be a list of messages", "messages")
    out = []
    for i, message in enumerate(value):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise invalid(f"{param} must be an object with 'role' and 'content'", param)
        role = message.get("role")
        if role not in _ROLES:
            shown = _shown(role) if role is not None else "missing"
            raise invalid(f"{param}.role must be system, developer, user or assistant, not {shown}", param)
        if message.get("tool_calls") or message.get("function_call"):
            raise invalid(f"{param}: tool calls are not supported by llmtui serve", param)
        out.append({"role": _ROLES[role], "content": _content(message.get("content"), param)})
    return out


def _content(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise invalid(f"{param}.content: only text parts are supported by llmtui serve", param)
            parts.append(part["text"])
        return "".join(parts)
    raise invalid(f"{param}.content must be a string or a list of text parts", param)


def _prompt(value: Any) -> str | list[int]:
    # OpenAI also takes a batch (a list of strings or of id lists); one reply at a time takes one prompt.
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str | list):
        value = value[0]
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        return value
    if isinstance(value, list) and value and all(isinstance(p, str | list) for p in value):
        raise invalid("'prompt' holds several prompts; llmtui serve takes one per request", "prompt")
    raise invalid("'prompt' must be a string or a non-empty list of token ids", "prompt")


@dataclass(frozen=True)
class TokenizeRequest:
    """vLLM's `POST /tokenize`: a text (``prompt``) or a conversation (``messages``)."""

    model: str | None
    prompt: str | None
    messages: list[Message] | None
    add_special_tokens: bool
    add_generation_prompt: bool
    return_token_strs: bool


def read_tokenize(data: Any) -> TokenizeRequest:
    if isinstance(data, dict) and "messages" in data:
        body = Body(
            data,
            (
                "model",
                "messages",
                "add_generation_prompt",
                "add_special_tokens",
                "return_token_strs",
                "continue_final_message",
            ),
        )
        if body.bool("continue_final_message"):
            raise invalid("'continue_final_message' is not supported by llmtui serve", "continue_final_message")
        return TokenizeRequest(
            model=body.str("model"),
            prompt=None,
            messages=_messages(body.raw("messages")),
            add_special_tokens=body.bool("add_special_tokens", False),
            add_generation_prompt=body.bool("add_generation_prompt", True),
            return_token_strs=body.bool("return_token_strs"),
        )
    body = Body(data, ("model", "prompt", "add_special_tokens", "return_token_strs"))
    prompt = body.str("prompt")
    if prompt is None:
        raise invalid("give 'prompt' (a text) or 'messages' (a conversation)", "prompt")
    return TokenizeRequest(
        model=body.str("model"),
        prompt=prompt,
        messages=None,
        add_special_tokens=body.bool("add_special_tokens", True),
        add_generation_prompt=True,
        return_token_strs=body.bool("return_token_strs"),
    )


def read_detokenize(data: Any) -> tuple[str | None, list[int]]:
    """vLLM's `POST /detokenize`: (model, tokens)."""
    body = Body(data, ("model", "tokens"))
    tokens = body.raw("tokens")
    if not isinstance(tokens, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in tokens):
        raise invalid("'tokens' must be a list of token ids", "tokens")
    return body.str("model"), tokens


def _id_list(body: Body, name: str) -> list[int]:
    values = body.raw(name)
    if not isinstance(values, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in values):
        raise invalid(f"'{name}' must be a list of whole numbers", name)
    return values


def read_lens(data: Any) -> tuple[str | None, list[int], list[int], int]:
    """llmtui's `POST /llmtui/lens`: (model, tokens, positions, top)."""
    body = Body(data, ("model", "tokens", "positions", "top"))
    return body.str("model"), _id_list(body, "tokens"), _id_list(body, "positions"), body.int("top", 5, lo=1, hi=20)


def read_neighbours(data: Any) -> tuple[str | None, int, int]:
    """llmtui's `POST /llmtui/neighbours`: (model, token, k)."""
    body = Body(data, ("model", "token", "k"))
    token = body.int("token", lo=0)
    if token is None:
        raise invalid("'token' is required", "token")
    return body.str("model"), token, body.int("k", 10, lo=1, hi=1000)


def check_ids(ids: Sequence[int], vocab: int, param: str) -> None:
    """A 400 for the first id outside the vocabulary."""
    for token_id in ids:
        if not 0 <= token_id < vocab:
            raise invalid(f"token id {token_id} is out of range: the vocabulary has ids 0 to {vocab - 1}", param)


# -- building a response -------------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def token_text(view: TokenizerView, token_id: int) -> str:
    """A token as OpenAI's logprobs name it: its own bytes as text (a partial character shows as U+FFFD)."""
    return view.piece_bytes(token_id).decode("utf-8", errors="replace")


def _top(view: TokenizerView, event: TokenEvent, n: int) -> list[dict[str, Any]]:
    return [
        {
            "token": token_text(view, c.token_id),
            "logprob": wire.logprob(c.prob),
            "bytes": list(view.piece_bytes(c.token_id)),
        }
        for c in event.candidates[:n]
    ]


def chat_logprob(view: TokenizerView, event: TokenEvent, top: int) -> dict[str, Any]:
    """One entry of ``choices[0].logprobs.content``, from the raw distribution, as OpenAI defines it."""
    return {
        "token": token_text(view, event.token_id),
        "logprob": wire.logprob(event.prob),
        "bytes": list(view.piece_bytes(event.token_id)),
        "top_logprobs": _top(view, event, top),
    }


class LegacyLogprobs:
    """The legacy completions ``logprobs`` object: tokens, token_logprobs, top_logprobs, text_offset.

    Offsets count characters of the tokens' texts from the start of the returned text, as vLLM does; each
    ``top_logprobs`` entry holds the top ``n`` tokens and always the chosen one (so up to n + 1).
    """

    def __init__(self, view: TokenizerView, n: int, offset: int = 0) -> None:
        self.view = view
        self.n = n
        self.offset = offset

    def empty(self) -> dict[str, list[Any]]:
        return {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}

    def add(self, out: dict[str, list[Any]], token_id: int, event: TokenEvent | None) -> None:
        """Append one token; ``event`` None for the prompt's first token, which nothing predicts."""
        text = token_text(self.view, token_id)
        out["tokens"].append(text)
        out["text_offset"].append(self.offset)
        self.offset += len(text)
        if event is None:
            out["token_logprobs"].append(None)
            out["top_logprobs"].append(None)
            return
        out["token_logprobs"].append(wire.logprob(event.prob))
        top = {token_text(self.view, c.token_id): wire.logprob(c.prob) for c in event.candidates[: self.n]}
        top.setdefault(text, wire.logprob(event.prob))
        out["top_logprobs"].append(top)


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def finish_reason(stats: ReplyStats) -> str:
    return wire.FINISH_REASONS.get(stats.stop_reason, "stop")


def stats_field(stats: ReplyStats) -> dict[str, Any]:
    """The top-level extension of a reply's last chunk, or of a whole response."""
    return {wire.EXTENSION: {"stats": stats.to_dict()}}


def from_llmtui(exc: LlmtuiError) -> ApiError:
    """An engine's typed error as an HTTP error."""
    if isinstance(exc, ContextOverflow):
        return invalid(str(exc), "messages", "context_length_exceeded")
    if isinstance(exc, InvalidValue):
        return invalid(str(exc))
    code = "out_of_memory" if isinstance(exc, OutOfMemory) else "generation_failed"
    return ApiError(500, str(exc), type="server_error", code=code)
