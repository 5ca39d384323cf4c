"""The lagged decode loop (the next step queued before this one's values are read, the end-of-reply checks
one step late) gives exactly the events of the plain loop; run here on the CPU, where the lag is off by
default, by asking for it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from llmtui.core.sampling import SamplingParams
from llmtui.engine.generation import Engine


class _CountingForward:
    """The engine's real forward pass, counting the decode steps run through it."""

    def __init__(self, inner):
        self.inner = inner
        self.name, self.quantize, self.note = inner.name, inner.quantize, inner.note
        self.steps = 0

    def begin(self, capacity: int):
        inner, outer = self.inner.begin(capacity), self

        class Counted:
            def prefill(self, ids: Sequence[int]):
                return inner.prefill(ids)

            def step(self, token):
                outer.steps += 1
                return inner.step(token)

        return Counted()


def _engines(tiny_loaded, eos: int | None = None) -> dict[bool, Engine]:
    engines = {lag: Engine(tiny_loaded, lag=lag) for lag in (False, True)}
    for engine in engines.values():
        engine.forward = _CountingForward(engine.forward)
        if eos is not None:
            engine.eos_ids = frozenset([eos])
    return engines


def _run(engine: Engine, prompt, params, *, stop_after: int | None = None, **kwargs):
    """The events (elapsed set to 0: the one field that is a clock), the stats' stop reason and how many
    decode steps the forward pass ran; ``stop_after``: stop() once the event of that index is read."""
    generation = engine.generate(prompt, params, **kwargs)
    events = []
    for event in generation:
        events.append(dataclasses.replace(event, elapsed=0.0))
        if event.index == stop_after:
            generation.stop()
    return events, generation.stats.stop_reason, generation.stats.new_tokens


def _prompt(engine: Engine, text: str = "Hello world"):
    return engine.render([{"role": "user", "content": text}])


def _free_run(tiny_loaded, n: int = 30):
    engine = Engine(tiny_loaded, lag=False)
    prompt = _prompt(engine)
    return prompt, list(engine.generate(prompt, SamplingParams(max_new_tokens=n)))


def test_the_lag_is_off_on_the_cpu_by_default(tiny_loaded):
    assert Engine(tiny_loaded).lag is False
    assert Engine(tiny_loaded, lag=True).lag is True


@pytest.mark.parametrize(
    ("case", "params", "reason"),
    [
        ("greedy", SamplingParams(max_new_tokens=12), "max_tokens"),
        ("one token", SamplingParams(max_new_tokens=1), "max_tokens"),
        (
            "seeded sampling",
            SamplingParams(temperature=1.3, top_k=20, top_p=0.9, repetition_penalty=1.3, max_new_tokens=16, seed=7),
            "max_tokens",
        ),
        ("context full", SamplingParams(max_new_tokens=5000), "context_full"),
    ],
)
def test_lagged_events_are_the_plain_loops(tiny_loaded, case, params, reason):
    engines = _engines(tiny_loaded)
    text = "Hello world " * 40 if case == "context full" else "Hello world"
    prompt = _prompt(engines[False], text)
    plain, lagged = (_run(engines[lag], prompt, params) for lag in (False, True))
    assert lagged == plain and plain[1] == reason
    # Where the budget ends the reply, the lag knows it in advance and queues no step past it.
    assert engines[True].forward.steps == engines[False].forward.steps == len(plain[0]) - 1


def test_lagged_eos_drops_the_extra_step(tiny_loaded):
    _, free = _free_run(tiny_loaded)
    eos = free[5].token_id
    engines = _engines(tiny_loaded, eos=eos)
    prompt = _prompt(engines[False])
    plain, lagged = (_run(engines[lag], prompt, SamplingParams(max_new_tokens=30)) for lag in (False, True))
    assert lagged == plain and plain[1] == "eos" and plain[0][-1].token_id == eos
    # One step ran past the end of sequence, and its token was never shown.
    assert engines[True].forward.steps == engines[False].forward.steps + 1


def test_lagged_stop_string_is_the_plain_loops(tiny_loaded):
    _, free = _free_run(tiny_loaded)
    text = "".join(e.text for e in free)
    stop = text[5:8]
    assert stop.strip(), text
    engines = _engines(tiny_loaded)
    prompt = _prompt(engines[False])
    params = SamplingParams(max_new_tokens=30, stop=(stop,))
    plain, lagged = (_run(engines[lag], prompt, params) for lag in (False, True))
    assert lagged == plain and plain[1] == "stop_string"
    assert stop not in "".join(e.text for e in lagged[0])


def test_lagged_forced_token_is_the_plain_loops(tiny_loaded):
    _, free = _free_run(tiny_loaded, 10)
    forced = free[3].candidates[2].token_id
    prefix = [e.token_id for e in free[:3]]
    engines = _engines(tiny_loaded)
    prompt = _prompt(engines[False])
    params = SamplingParams(max_new_tokens=6)
    plain, lagged = (_run(engines[lag], prompt, params, prefix=prefix, force=forced) for lag in (False, True))
    assert lagged == plain and plain[0][0].token_id == forced and plain[0][0].index == 3


def test_lagged_stop_request_is_the_plain_loops(tiny_loaded):
    engines = _engines(tiny_loaded)
    prompt = _prompt(engines[False])
    params = SamplingParams(max_new_tokens=30)
    plain, lagged = (_run(engines[lag], prompt, params, stop_after=4) for lag in (False, True))
    # The step in flight when stop() came is kept, in both.
    assert lagged == plain and plain[1] == "stopped" and len(plain[0]) == 6


def test_the_lagged_loop_queues_the_next_step_before_showing_this_one(tiny_loaded):
    engines = _engines(tiny_loaded)
    prompt = _prompt(engines[False])
    for lag, engine in engines.items():
        ahead = [engine.forward.steps - e.index for e in engine.generate(prompt, SamplingParams(max_new_tokens=8))]
        # Each event is shown after its own step (index steps before it); lagged, after the next one's too.
        assert ahead == ([1] * 7 + [0] if lag else [0] * 8)
