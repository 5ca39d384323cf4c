"""Surprise: how likely a model finds each token of a text it did not write.

Scoring reads every token's probability given the tokens before it, in one forward pass, or in windows of
the model's context with a stride when the text is longer (each token after the first window still sees at
least ``window - stride`` tokens before it). The per-token results are TokenEvents, so everything that
shows a reply's steps shows a scored text's; the summary is a ScoreSummary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmtui.core.events import TokenEvent


def surprisal_bits(prob: float) -> float:
    """How surprising a token was, in bits: -log2 of its probability (infinite for 0)."""
    return -math.log2(prob) if prob > 0 else math.inf


@dataclass(frozen=True, slots=True)
class Window:
    """One forward pass over ``ids[start:end]`` that scores the tokens from ``first`` on."""

    start: int
    end: int
    first: int


def windows(count: int, context: int, stride: int | None = None) -> list[Window]:
    """The forward passes that score every token after the first of ``count`` tokens with a model of
    ``context`` tokens: one when they fit, else windows of ``context`` tokens ``stride`` apart (half a
    context by default), each scoring only what the one before it did not."""
    if count < 2:
        return []
    if count <= context:
        return [Window(0, count, 1)]
    stride = max(1, min(stride or context // 2, context - 1))
    passes: list[Window] = []
    start, scored = 0, 1
    while scored < count:
        end = min(start + context, count)
        passes.append(Window(start, end, scored))
        scored = end
        start += stride  # the next window ends stride tokens further on: no token is skipped
    return passes


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    """A scored text at a glance: the last object of `score --json`."""

    tokens: int  # tokens scored: every token after the first
    perplexity: float  # exp of the mean negative log-likelihood of the scored tokens
    bits_per_byte: float  # total surprisal over the UTF-8 bytes those tokens make
    windows: int  # forward passes
    window: int  # tokens per pass when the text did not fit one, else 0
    stride: int  # tokens between passes when windowed, else 0

    @classmethod
    def of(cls, events: Sequence[TokenEvent], passes: Sequence[Window]) -> ScoreSummary:
        """The summary of ``events`` scored in ``passes``."""
        nll = [-math.log(e.prob) if e.prob > 0 else math.inf for e in events]
        size = len("".join(e.text for e in events).encode("utf-8"))
        windowed = len(passes) > 1
        return cls(
            tokens=len(events),
            perplexity=math.exp(sum(nll) / len(nll)) if nll else math.nan,
            bits_per_byte=sum(nll) / math.log(2) / size if size else math.nan,
            windows=len(passes),
            window=passes[0].end - passes[0].start if windowed else 0,
            stride=passes[1].start - passes[0].start if windowed else 0,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "stats",
            "tokens": self.tokens,
            "perplexity": self.perplexity,
            "bits_per_byte": self.bits_per_byte,
            "windows": self.windows,
            "window": self.window,
            "stride": self.stride,
        }
