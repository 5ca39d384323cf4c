"""Replay a saved conversation: play its recorded steps back, or re-run it and find where it departs.

A re-run renders every recorded reply's own context (the turns before it, as saved) with the current
model and sampling, and compares token by token with what was recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmtui.core.conversation import Conversation
from llmtui.core.events import TokenEvent
from llmtui.core.sampling import SamplingParams

if TYPE_CHECKING:
    from llmtui.backends.base import Backend


def playback(
    events: Sequence[TokenEvent], speed: float = 1.0, sleep: Callable[[float], None] = time.sleep
) -> Iterator[TokenEvent]:
    """Yield recorded events at their recorded pace, ``speed`` times faster (0: as fast as possible)."""
    started = time.monotonic()
    for event in events:
        if speed > 0:
            due = event.elapsed / speed - (time.monotonic() - started)
            if due > 0:
                sleep(due)
        yield event


@dataclass(frozen=True)
class Divergence:
    """How a re-run reply compares with the recorded one."""

    turn: int
    recorded_tokens: int
    step: int | None  # the first step whose token differs; None when every recorded step matched
    recorded: TokenEvent | None = None
    now: TokenEvent | None = None

    def describe(self, piece: Callable[[int], str] = str) -> str:
        if self.step is None:
            return f"turn {self.turn + 1}: the same {self.recorded_tokens} tokens as recorded"
        assert self.recorded is not None
        was = _said(self.recorded, piece)
        if self.now is None:
            return f"turn {self.turn + 1}: ends at step {self.step}; recorded went on with {was}"
        now = _said(self.now, piece)
        return f"turn {self.turn + 1}: departs at step {self.step}: recorded {was}, now {now}"


def _said(event: TokenEvent, piece: Callable[[int], str]) -> str:
    """A step in a few words: its token and probability (a server may have sent neither id nor probability)."""
    token = event.text if event.token_id is None else piece(event.token_id)
    return f"{token!r} (p={'unknown' if event.prob is None else format(event.prob, '.3f')})"


def rerun(backend: Backend, conversation: Conversation, params: SamplingParams) -> Iterator[Divergence]:
    """Re-generate every recorded reply in its own context and report the first token that differs."""
    for index, turn in enumerate(conversation.turns):
        recorded = turn.version.events
        if turn.role != "assistant" or not recorded:
            continue
        prompt = backend.render(conversation.messages(upto=index), reserve=len(recorded))
        budget = SamplingParams(**{**params.to_dict(), "max_new_tokens": len(recorded), "stop": ()})
        fresh = list(backend.generate(prompt, budget.validate()))
        step = next(
            (i for i, (a, b) in enumerate(zip(recorded, fresh, strict=False)) if a.token_id != b.token_id),
            None,
        )
        if step is None and len(fresh) < len(recorded):
            step = len(fresh)
        yield Divergence(
            turn=index,
            recorded_tokens=len(recorded),
            step=step,
            recorded=recorded[step] if step is not None else None,
            now=fresh[step] if step is not None and step < len(fresh) else None,
        )
