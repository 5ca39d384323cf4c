from __future__ import annotations

from dataclasses import replace

import pytest

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.core.replay import playback, rerun
from llmtui.core.sampling import SamplingParams


def test_playback_keeps_the_recorded_pace():
    from llmtui.core.events import TokenEvent

    events = [TokenEvent(i, i, "x", 1.0, 1.0, 0, 0.0, (), elapsed=0.1 * (i + 1)) for i in range(5)]
    slept: list[float] = []
    assert list(playback(events, speed=2.0, sleep=slept.append)) == events
    # A fake sleep does not move the clock: each wait is the event's due time at double speed.
    assert slept == pytest.approx([0.05 * (i + 1) for i in range(5)], abs=0.01)
    slept.clear()
    list(playback(events, speed=0, sleep=slept.append))
    assert slept == []


def test_rerun_finds_the_first_departing_token(tiny_engine):
    conversation = Conversation()
    conversation.add_user("Hello")
    prompt = tiny_engine.render(conversation.messages())
    events = list(tiny_engine.generate(prompt, SamplingParams(max_new_tokens=12)))
    conversation.turns.append(Turn("assistant", [Version("".join(e.text for e in events), list(events))]))
    same = list(rerun(tiny_engine, conversation, SamplingParams()))
    assert len(same) == 1 and same[0].step is None and "the same 12 tokens" in same[0].describe()
    # Pretend the recording had taken another token at step 5.
    other = events[5].candidates[1]
    conversation.turns[1].version.events[5] = replace(events[5], token_id=other.token_id, prob=other.prob)
    departed = list(rerun(tiny_engine, conversation, SamplingParams()))
    assert departed[0].step == 5 and departed[0].now.token_id == events[5].token_id
    assert "departs at step 5" in departed[0].describe()
