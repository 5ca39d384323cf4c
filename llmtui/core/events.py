"""The one data type every pane shares: a reply is a list of steps (TokenEvent).

The engine yields these, the TUI renders them, the store saves them, `run --json` prints them
and replay plays them back. Each type has exactly one serialiser (to_dict / from_dict).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmtui.core import checked


@dataclass(frozen=True, slots=True)
class Candidate:
    """One of the top-k tokens the model considered at a step."""

    token_id: int | None  # None: a server that names its tokens by text only
    piece: str  # raw vocabulary piece, e.g. "Ġthe"
    prob: float  # raw probability (softmax of the logits at temperature 1)

    def to_dict(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "piece": self.piece, "prob": self.prob}

    @classmethod
    def from_dict(cls, d: Any) -> Candidate:
        """Read back one candidate; ValueError names a field of the wrong type or out of range."""
        d = checked.obj(d, "a candidate")
        return cls(checked.optional_whole(d, "token_id"), checked.text(d, "piece"), checked.number(d, "prob", lo=0))


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One decode step of a reply: the token chosen and the distribution it was chosen from.

    The local engine and `llmtui serve` know every field. Another server may know less (`backends.openai`):
    a field it did not send is None, never a made-up number, and an entropy computed from its top-k
    candidates only is a lower bound (``entropy_bound``).
    """

    index: int
    token_id: int | None  # None: the server did not say which token it was
    text: str  # what this step adds to the visible reply ('' while a character is incomplete)
    prob: float | None  # raw probability of the chosen token (None: the server sent no log probabilities)
    sampled_prob: float | None  # probability under the distribution actually sampled from
    rank: int | None  # 0 = the most likely token under the raw distribution (None: unknown)
    entropy: float | None  # entropy of the raw distribution, in nats (None: unknown)
    candidates: tuple[Candidate, ...]
    elapsed: float  # seconds since the reply started
    entropy_bound: bool = False  # entropy is a lower bound, from the top-k candidates only

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "token",
            "index": self.index,
            "token_id": self.token_id,
            "text": self.text,
            "prob": self.prob,
            "sampled_prob": self.sampled_prob,
            "rank": self.rank,
            "entropy": self.entropy,
            "candidates": [c.to_dict() for c in self.candidates],
            "elapsed": self.elapsed,
            **({"entropy_bound": True} if self.entropy_bound else {}),
        }

    @classmethod
    def from_dict(cls, d: Any) -> TokenEvent:
        """Read back one step (from a file or the wire); ValueError names a field that is wrong."""
        d = checked.obj(d, "a token step")
        return cls(
            index=checked.whole(d, "index"),
            token_id=checked.optional_whole(d, "token_id"),
            text=checked.text(d, "text"),
            prob=checked.optional_number(d, "prob", lo=0),
            sampled_prob=checked.optional_number(d, "sampled_prob", lo=0),
            rank=checked.optional_whole(d, "rank"),
            entropy=checked.optional_number(d, "entropy"),
            candidates=tuple(Candidate.from_dict(c) for c in checked.array(d, "candidates", ())),
            elapsed=checked.number(d, "elapsed", 0.0, lo=0),
            entropy_bound=checked.flag(d, "entropy_bound", False),
        )


def decode_rate(events: Sequence[TokenEvent]) -> float:
    """Tokens per second after the first token (the first one also pays for the prompt's prefill)."""
    if len(events) < 2 or events[-1].elapsed <= events[0].elapsed:
        return 0.0
    return (len(events) - 1) / (events[-1].elapsed - events[0].elapsed)


STOP_REASONS = ("eos", "max_tokens", "stop_string", "stopped", "context_full", "error")


@dataclass(frozen=True, slots=True)
class ReplyStats:
    """What a reply cost: the figures in the status bar and the last line of `run --json`."""

    prompt_tokens: int
    new_tokens: int
    ttft_s: float  # time to first token: the prompt's prefill plus the first step
    tokens_per_second: float  # decode rate after the first token
    stop_reason: str  # one of STOP_REASONS
    dropped_turns: int = 0  # oldest turns left out so the prompt fits the context

    @classmethod
    def of(cls, events: Sequence[TokenEvent], prompt_tokens: int, reason: str, dropped_turns: int = 0) -> ReplyStats:
        """The stats of a reply that ended for ``reason`` after ``events``."""
        return cls(
            prompt_tokens=prompt_tokens,
            new_tokens=len(events),
            ttft_s=events[0].elapsed if events else 0.0,
            tokens_per_second=decode_rate(events),
            stop_reason=reason,
            dropped_turns=dropped_turns,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "stats",
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "ttft_s": self.ttft_s,
            "tokens_per_second": self.tokens_per_second,
            "stop_reason": self.stop_reason,
            "dropped_turns": self.dropped_turns,
        }

    @classmethod
    def from_dict(cls, d: Any) -> ReplyStats:
        """Read back a reply's stats; ValueError names a field that is wrong."""
        d = checked.obj(d, "stats")
        reason = checked.text(d, "stop_reason")
        if reason not in STOP_REASONS:
            raise ValueError(f"stop_reason must be one of {', '.join(STOP_REASONS)}, not {reason!r}")
        return cls(
            prompt_tokens=checked.whole(d, "prompt_tokens"),
            new_tokens=checked.whole(d, "new_tokens"),
            ttft_s=checked.number(d, "ttft_s", lo=0),
            tokens_per_second=checked.number(d, "tokens_per_second", lo=0),
            stop_reason=reason,
            dropped_turns=checked.whole(d, "dropped_turns", 0),
        )
