"""core.score: the windows that cover a long text, and the summary of a scored text."""

from __future__ import annotations

import math

import pytest

from llmtui.core.events import TokenEvent
from llmtui.core.score import ScoreSummary, surprisal_bits, windows


@pytest.mark.parametrize(
    ("count", "context", "stride"), [(2, 8, None), (8, 8, None), (9, 8, None), (50, 8, 3), (50, 8, 7)]
)
def test_windows_score_every_token_after_the_first_once_within_the_context(count, context, stride):
    passes = windows(count, context, stride)
    assert [i for w in passes for i in range(w.first, w.end)] == list(range(1, count))
    assert all(w.end - w.start <= context and w.start < w.first for w in passes)
    # Each token after the first window sees at least context - stride tokens before it.
    seen = context - (stride or context // 2)
    assert all(w.first - w.start >= seen for w in passes[1:])


def _event(index: int, prob: float, text: str) -> TokenEvent:
    return TokenEvent(index, index, text, prob, prob, 0, 0.0, (), 0.0)


def test_the_summary_is_perplexity_and_bits_per_byte_of_the_scored_tokens():
    events = [_event(1, 0.5, "ab"), _event(2, 0.25, "c"), _event(3, 0.125, "é")]  # 1 + 2 + 3 bits, 5 bytes
    summary = ScoreSummary.of(events, windows(4, 8))
    assert summary.tokens == 3 and summary.windows == 1 and summary.window == 0
    assert math.isclose(summary.perplexity, 2.0**2)  # exp of the mean NLL: 2 bits a token
    assert math.isclose(summary.bits_per_byte, 6 / 5)
    assert surprisal_bits(0.125) == 3 and surprisal_bits(0.0) == math.inf
    assert summary.to_dict()["type"] == "stats"
