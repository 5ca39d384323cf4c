"""What llmtui adds to the OpenAI wire format, written once for `llmtui serve` and its client.

Standard clients ignore these fields; llmtui's own client loses nothing that the in-process engine gives.
- a request to `/v1/completions` may carry ``"llmtui": ReplyRequest`` (prefix, forced token, candidates);
- each streamed token chunk's choice carries ``"llmtui": TokenEvent.to_dict()``;
- the last chunk (and a non-streamed response) carries ``"llmtui": {"stats": ReplyStats.to_dict()}``;
- each model of `GET /v1/models` carries ``"llmtui": EngineInfo.to_dict()``;
- `POST /tokenize` with messages answers ``"llmtui": {"text": ..., "templated": ...}`` beside vLLM's fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llmtui.core.errors import InvalidValue

EXTENSION = "llmtui"
# The environment variable `llmtui serve` reads its API key from.
API_KEY_ENV = "LLMTUI_API_KEY"
# ReplyStats.stop_reason -> OpenAI's finish_reason.
FINISH_REASONS = {
    "eos": "stop",
    "stop_string": "stop",
    "stopped": "stop",
    "max_tokens": "length",
    "context_full": "length",
    "error": "error",
}
# OpenAI's logprob of a token whose probability is 0 (JSON has no -inf); vLLM uses the same.
MIN_LOGPROB = -9999.0
MAX_TOP_LOGPROBS = 20


def logprob(prob: float) -> float:
    """ln(prob) as the wire carries it."""
    return math.log(prob) if prob > 0 else MIN_LOGPROB


@dataclass(frozen=True)
class ReplyRequest:
    """llmtui's extension of a completion request: how the prompt's ids continue or branch a reply."""

    prefix: int = 0  # how many of the prompt's last ids are reply tokens already accepted (not emitted again)
    force: int | None = None  # the token the first new step must take
    top_candidates: int | None = None  # candidates per step (1 to 100), beyond OpenAI's 20 top_logprobs

    def to_dict(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "force": self.force, "top_candidates": self.top_candidates}

    @classmethod
    def from_dict(cls, d: Any) -> ReplyRequest:
        if not isinstance(d, dict):
            raise InvalidValue(f"'{EXTENSION}' must be an object")
        prefix, force, top = d.get("prefix", 0), d.get("force"), d.get("top_candidates")
        if not isinstance(prefix, int) or isinstance(prefix, bool) or prefix < 0:
            raise InvalidValue(f"'{EXTENSION}.prefix' must be a whole number of 0 or more")
        if force is not None and (not isinstance(force, int) or isinstance(force, bool) or force < 0):
            raise InvalidValue(f"'{EXTENSION}.force' must be a token id")
        if top is not None and (not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= 100):
            raise InvalidValue(f"'{EXTENSION}.top_candidates' must be from 1 to 100")
        return cls(prefix, force, top)
