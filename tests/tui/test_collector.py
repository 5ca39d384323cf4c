"""Full garbage collections wait for a quiet moment (llmtui/tui/collector.py)."""

from __future__ import annotations

import gc
import itertools

import pytest

from llmtui.tui import collector as collector_module
from llmtui.tui.collector import DUE, NEVER, QuietCollector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def collector():
    clock = Clock()
    collector = QuietCollector(quiet_s=1.0, longest_s=30.0, clock=clock)
    collector.start()
    yield collector, clock
    collector.stop()


def younger_collections(n: int) -> None:
    for _ in range(n):
        gc.collect(1)  # each counts towards the oldest generation, as Python's own do


def test_python_runs_no_full_collection_of_its_own_until_stopped():
    before = gc.get_threshold()
    collector = QuietCollector()
    collector.start()
    try:
        assert gc.get_threshold() == (before[0], before[1], NEVER)
    finally:
        collector.stop()
    assert gc.get_threshold() == before


def walked() -> set[int]:
    """What a full collection walks now (by identity: some tracked objects compare oddly)."""
    return {id(o) for o in gc.get_objects()}


def test_what_lives_at_start_is_left_out_of_later_collections_until_stopped():
    class Node:
        pass

    alive = [Node() for _ in range(1000)]
    collector = QuietCollector()
    collector.start()
    try:
        assert gc.get_freeze_count() >= len(alive)
        assert not any(id(o) in walked() for o in alive[:10])
        later = Node()
        assert id(later) in walked()
        collector.settle()  # a model is ready: what it loaded is settled too
        assert id(later) not in walked()
    finally:
        collector.stop()
    assert gc.get_freeze_count() == 0
    assert id(alive[0]) in walked()
    collector.settle()  # a model ready after the app stopped: nothing is settled, for nothing would give it back
    assert gc.get_freeze_count() == 0


def test_a_due_collection_waits_while_keys_come_and_runs_once_they_stop(collector):
    collector, clock = collector
    gc.collect()
    younger_collections(DUE)
    for _ in range(20):  # a key held down: one every 30 ms
        clock.now += 0.03
        collector.input()
        assert not collector.tick()
    assert gc.get_count()[2] >= DUE
    clock.now += 1.0
    assert collector.tick()
    assert gc.get_count()[2] == 0
    assert not collector.tick()  # nothing due any more


def test_one_waits_no_longer_than_longest_s(collector):
    collector, clock = collector
    gc.collect()
    younger_collections(1)
    for _ in range(29):
        clock.now += 1.0
        collector.input()
        assert not collector.tick()
    clock.now += 1.0
    collector.input()
    assert collector.tick() and collector.collections == 1


def test_collections_take_no_more_than_a_twentieth_of_the_time(collector, monkeypatch):
    # A reply streams with no key pressed: quiet, but a full collection every second would be 200 ms a second.
    collector, clock = collector
    collect = gc.collect

    def slow(*args):
        if not args:  # a full collection (the younger ones below are the test's own)
            clock.now += 0.2
        return collect(*args)

    monkeypatch.setattr(collector_module.gc, "collect", slow)
    ran = []
    for _ in range(200):  # 20 s, a tick every 0.1 s
        clock.now += 0.1
        younger_collections(DUE)
        if collector.tick():
            ran.append(clock.now)
    assert len(ran) >= 2
    assert all(b - a >= 4.0 - 1e-9 for a, b in itertools.pairwise(ran))  # 20 times 0.2 s


async def test_the_app_takes_full_collections_over_while_it_runs(make_app):
    before = gc.get_threshold()
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.pause(0.1)
        assert gc.get_threshold()[2] == NEVER
    assert gc.get_threshold() == before
