"""An OpenAI-compatible server's log probabilities read as llmtui's steps, knowing only what the server
says: ids (llama.cpp's `id`, vLLM's "token_id:N"), probabilities from logprobs, candidates from the top,
a lower bound on the entropy, true bytes, and the legacy completions format in chat completions' shape."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from llmtui.core.events import Candidate, TokenEvent
from llmtui.core.tokens import TokenizerView
from llmtui.core.wire import MIN_LOGPROB

# vLLM's return_tokens_as_token_ids names each token so.
_TOKEN_ID = re.compile(r"^token_id:(\d+)$")


def token_id(entry: dict[str, Any]) -> int | None:
    """A logprobs entry's token id: llama.cpp's ``id``, vLLM's "token_id:N" (return_tokens_as_token_ids)."""
    value = entry.get("id")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = _TOKEN_ID.match(str(entry.get("token", "")))
    return int(m.group(1)) if m else None


def prob_of(logprob: Any) -> float:
    """A probability from the wire's logprob (-9999 and below: 0)."""
    if not isinstance(logprob, (int, float)) or isinstance(logprob, bool) or math.isnan(logprob):
        raise ValueError("a logprob that is not a number")
    return 0.0 if logprob <= MIN_LOGPROB else min(1.0, math.exp(logprob))


def entropy_lower_bound(probs: Sequence[float]) -> float:
    """A lower bound on the entropy (nats) of a distribution of which only the top ``probs`` are known.

    The unseen mass r = 1 - sum(probs) lies on tokens each no likelier than the least of the top, so each
    of its nats is at least -ln(min p): H >= sum(-p ln p) + r * -ln(min p).
    """
    seen = sum(-p * math.log(p) for p in probs if p > 0)
    rest = max(0.0, 1.0 - sum(probs))
    least = min((p for p in probs if p > 0), default=0.0)
    return seen + (rest * -math.log(least) if rest > 0 and least > 0 else 0.0)


def true_bytes(view: TokenizerView | None, entry: dict[str, Any], chosen: int | None) -> bytes:
    """A token's true bytes: the local tokenizer's, else the server's ``bytes``, else its text."""
    if view is not None and chosen is not None and chosen < view.size:
        return view.piece_bytes(chosen)
    raw = entry.get("bytes")
    named_by_id = _TOKEN_ID.match(str(entry.get("token", "")))  # its bytes are of "token_id:N"
    if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw) and not named_by_id:
        return bytes(raw)
    return str(entry.get("token", "")).encode("utf-8", errors="replace")


def own_bytes(view: TokenizerView | None, entry: dict[str, Any], chosen: int | None) -> bytes | None:
    """A token's own bytes, where a server's entry carries its whole character's (llama.cpp): the local
    tokenizer's, else those of its own entry among the top; None when neither says."""
    if view is not None and chosen is not None and chosen < view.size:
        return view.piece_bytes(chosen)
    for top in entry.get("top_logprobs") or []:
        raw = top.get("bytes") if isinstance(top, dict) else None
        mine = chosen is not None and token_id(top) == chosen and isinstance(raw, list)
        if mine and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
            return bytes(raw)
    return None


def step_event(
    view: TokenizerView | None, index: int, entry: dict[str, Any], chosen: int | None, top: int
) -> TokenEvent:
    """A step from one logprobs entry, with what the server said and nothing more: its probability, its
    rank where its top shows it, ``top`` candidates, an entropy bound; no sampled probability, no text."""
    tops = [t for t in entry.get("top_logprobs") or [] if isinstance(t, dict)]
    candidates = tuple(Candidate(token_id(t), _piece(view, t), prob_of(t.get("logprob"))) for t in tops[:top])
    rank = None
    for i, t in enumerate(tops):
        # Without ids, the same text and log probability: the legacy format keys its top by text, so two
        # tokens shown alike (a partial character) collapse into one entry, and then the rank is unknown.
        if chosen is not None:
            same = token_id(t) == chosen
        else:
            same = t.get("token") == entry.get("token") and t.get("logprob") == entry.get("logprob")
        if same:
            rank = i
            break
    entropy = entropy_lower_bound([c.prob for c in candidates]) if candidates else None
    prob = prob_of(entry.get("logprob"))
    return TokenEvent(index, chosen, "", prob, None, rank, entropy, candidates, 0.0, entropy_bound=entropy is not None)


def _piece(view: TokenizerView | None, entry: dict[str, Any]) -> str:
    chosen = token_id(entry)
    if view is not None and chosen is not None and chosen < view.size:
        return view.pieces[chosen]
    return true_bytes(view, entry, chosen).decode("utf-8", errors="replace")


def legacy_entries(choice: dict[str, Any]) -> list[dict[str, Any]]:
    """The legacy completions format's log probabilities (parallel lists, the top keyed by text) as one
    entry per token in chat completions' shape, the top sorted from the most likely."""
    legacy = choice.get("logprobs") or {}
    content = legacy.get("content")
    if isinstance(content, list):  # llama.cpp's /v1/completions answers in chat completions' shape
        return [e for e in content if isinstance(e, dict)]
    tokens = legacy.get("tokens") or []
    logprobs = legacy.get("token_logprobs") or []
    tops = legacy.get("top_logprobs") or [None] * len(tokens)
    entries = []
    for token, logprob, top in zip(tokens, logprobs, tops, strict=True):
        ranked = sorted((top or {}).items(), key=lambda kv: -kv[1])
        entries.append(
            {"token": token, "logprob": logprob, "top_logprobs": [{"token": t, "logprob": x} for t, x in ranked]}
        )
    return entries
