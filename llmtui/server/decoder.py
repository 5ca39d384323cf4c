"""The one thread that runs the model: one job at a time, the others waiting in a bounded queue.

Serving many users at once is vLLM's job; llmtui serves one reply at a time, in the order asked. The decode
loop runs on this thread, apart from the event loop that speaks HTTP, and hands each step over with
`call_soon_threadsafe`, so neither waits for the other.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmtui.backends.base import Reply
from llmtui.core.errors import GenerationError, LlmtuiError


class QueueFull(Exception):
    """Every place in the queue is taken."""


@dataclass(frozen=True, slots=True)
class Item:
    """What a job hands to the request waiting on it: ``kind`` is score, event, done, error or gone."""

    kind: str
    value: Any = None
    stats: Any = None  # the reply's ReplyStats with an error, when the reply had begun


class Job:
    """One request's work for the model thread, and the stream of items it produces for that request.

    ``work`` runs on the model thread; it hands items over with `post` and registers the reply it starts
    with `attach`, so that `stop` (from the event loop) ends it within a step.
    """

    def __init__(self, work: Callable[[Job], None], loop: asyncio.AbstractEventLoop) -> None:
        self.work = work
        self.loop = loop
        self.items: asyncio.Queue[Item] = asyncio.Queue()
        self.reply: Reply | None = None
        self.stopped = threading.Event()
        self.decoder: Decoder | None = None

    def post(self, kind: str, value: Any = None, stats: Any = None) -> None:
        """Hand an item to the waiting request (from any thread)."""
        try:
            self.loop.call_soon_threadsafe(self.items.put_nowait, Item(kind, value, stats))
        except RuntimeError:  # the event loop has closed: the server is gone, nobody is waiting
            self.stop()

    def attach(self, reply: Reply) -> None:
        """The reply this job runs; stopped at once if the request went away before it began."""
        self.reply = reply
        if self.stopped.is_set():
            reply.stop()

    def stop(self) -> None:
        """The request went away (or the server is stopping): leave the queue, or end the reply within a step."""
        self.stopped.set()
        reply = self.reply
        if reply is not None:
            reply.stop()
        elif self.decoder is not None and self.decoder.withdraw(self):
            self.post("gone", "the client went away")

    async def get(self) -> Item:
        return await self.items.get()

    def get_nowait(self) -> Item | None:
        try:
            return self.items.get_nowait()
        except asyncio.QueueEmpty:
            return None


class Decoder:
    """Runs jobs one at a time on its own thread; at most ``max_queue`` wait behind the running one."""

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self.current: Job | None = None
        self.last: Reply | None = None  # the reply that ran most recently (what `stop` ended, for the tests)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="llmtui-model", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self._waiting)

    def submit(self, job: Job) -> None:
        """Queue a job; QueueFull when ``max_queue`` already wait (the running one does not count)."""
        with self._cond:
            if self._closed or len(self._waiting) >= self.max_queue:
                raise QueueFull
            job.decoder = self
            self._waiting.append(job)
            self._cond.notify()

    def withdraw(self, job: Job) -> bool:
        """Take a job out of the queue before it runs; False when it already began (or ended)."""
        with self._cond:
            try:
                self._waiting.remove(job)
            except ValueError:
                return False
            return True

    def close(self) -> None:
        """Stop the running reply and turn away the waiting ones (the server is stopping)."""
        with self._cond:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            current = self.current
            self._cond.notify()
        for job in waiting:
            job.stopped.set()
            job.post("gone", "the server is shutting down")
        if current is not None:
            current.stop()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self.current = self._waiting.popleft()
            if job.stopped.is_set():  # it went away between leaving the queue and starting
                job.post("gone", "the client went away")
                self.current = None
                continue
            try:
                job.work(job)
            except LlmtuiError as exc:
                job.post("error", exc, job.reply.stats if job.reply is not None else None)
            except Exception as exc:  # a bug or a library failure: the server stays up and says what happened
                what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                print(f"llmtui: error: the model thread failed: {what[:300]}", file=sys.stderr, flush=True)
                stats = job.reply.stats if job.reply is not None else None
                job.post("error", GenerationError(f"generation failed: {what[:300]}"), stats)
            finally:
                with self._cond:
                    self.current = None
                    if job.reply is not None:
                        self.last = job.reply
