"""Python's full garbage collections at quiet moments, not in the middle of a keypress.

A full (generation 2) collection walks every object the interpreter tracks: with a long conversation open
(its turns, the lines rendered for its messages, Textual's strips and their caches, the widgets) that is a
quarter of a million objects, and one collection took 150 to 300 ms here. Python starts one whenever enough
objects have survived two younger collections, which scrolling makes happen every few page keys; the key
that arrives meanwhile waits for it (most of the conversation pane's worst keypress times were these).

QuietCollector leaves the young generations to Python (they are cheap: only new objects) and runs the full
collection itself: once no key or mouse event has come for ``quiet_s``, or after ``longest_s`` whatever
happens, so that cyclic garbage cannot pile up while someone holds a key down. Never more often than
``SPACING`` times its last collection's length, though: a reply streams without keys being pressed, and
the UI should not spend more than a twentieth of its time collecting (Python's own rule, a full collection
only once the objects that survived the younger ones are a quarter as many as the rest, keeps that cost
in proportion too).

What lives as long as the app (modules, classes, the widgets, a tokenizer's tables) is settled out of the
collections altogether (``gc.freeze``): at start and once a model is ready. A full collection then walks only
what came after, not the 50,000 objects (38 ms here) of the UI's modules and a tokenizer's tables. Frozen
objects are still freed when their last reference goes; only a cycle among them waits until stop().
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

# Above any number of younger collections between two full ones: Python never starts a full one itself.
NEVER = 2**31 - 1
# Full collections Python would have run by now: its own default threshold for the oldest generation.
DUE = 10
# At least this many times the last full collection's length between two.
SPACING = 20


class QuietCollector:
    """Full garbage collections when the user is not waiting for the screen."""

    def __init__(
        self, *, quiet_s: float = 1.0, longest_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.quiet_s = quiet_s
        self.longest_s = longest_s
        self._clock = clock
        self._last_input = self._last_full = clock()
        self._saved: tuple[int, int, int] | None = None
        self._took = 0.0  # the last full collection's length
        self.collections = 0  # full collections run here

    def start(self) -> None:
        """Take the full collections over from Python (the younger ones stay its own)."""
        if self._saved is None:
            self._saved = gc.get_threshold()
            young, middle, _ = self._saved
            gc.set_threshold(young, middle, NEVER)
            self.settle()

    def settle(self) -> None:
        """Collect once, then leave every object alive now out of later collections: what exists at start or
        once a model is ready lives as long as the app, and walking it again was most of each collection.
        Only while started: a model ready after stop() (the app closing) would stay frozen for good."""
        if self._saved is None:
            return
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        """Give them back, as they were before start(), the settled objects collectable again."""
        if self._saved is not None:
            gc.set_threshold(*self._saved)
            gc.unfreeze()
            self._saved = None

    def input(self) -> None:
        """A key or mouse event came: the user may be waiting for the next frame."""
        self._last_input = self._clock()

    def tick(self) -> bool:
        """Run a full collection if one is due and the moment is quiet (or it has waited too long);
        whether one ran."""
        now = self._clock()
        pending = gc.get_count()[2]  # younger collections since the last full one
        since = now - self._last_full
        overdue = since >= self.longest_s
        quiet = now - self._last_input >= self.quiet_s and since >= SPACING * self._took
        if not pending or not (overdue or (quiet and pending >= DUE)):
            return False
        gc.collect()
        self._last_full = self._clock()
        self._took = self._last_full - now
        self.collections += 1
        return True
