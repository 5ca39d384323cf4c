"""What every reply keeps while it is written, whoever writes it (the engine here, or a server)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from llmtui.core.events import ReplyStats, TokenEvent
from llmtui.core.prompt import Prompt
from llmtui.core.sampling import SamplingParams


class ReplyState:
    """A reply's prompt, its parameters, the steps it continues from, its events so far, its stats once it
    ends, and the request to stop it, which any thread may make. The engine's Generation and the client's
    StreamedReply build on it; backends/base.py's Reply is what they offer."""

    def __init__(
        self,
        prompt: Prompt,
        params: SamplingParams,
        prefix: Sequence[int] = (),
        force: int | None = None,
    ) -> None:
        self.prompt = prompt
        self.params = params
        self.prefix = tuple(prefix)  # reply tokens accepted before this run: not emitted again
        self.force = force  # the token the first new step must take (branching from a candidate)
        self.events: list[TokenEvent] = []
        self.stats: ReplyStats | None = None  # set when the reply ends
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the reply to end: the step in flight finishes and is kept."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """Whether the reply was asked to end."""
        return self._stop.is_set()

    @property
    def text(self) -> str:
        """The reply's text so far."""
        return "".join(e.text for e in self.events)
