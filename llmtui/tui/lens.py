"""The model lens in the workstation: the inspected text scored by the model (surprise mode), and the logit
lens at the sidebar's step. Both ask the engine off the UI thread and hand the panes what comes back."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from textual.worker import get_current_worker

from llmtui.backends.base import Backend
from llmtui.core.errors import LlmtuiError
from llmtui.core.events import TokenEvent
from llmtui.core.prompt import Message
from llmtui.core.score import windows
from llmtui.core.tokens import Tokenization

if TYPE_CHECKING:
    from llmtui.tui.workstation import Workstation


class LensController:
    """Scores and logit lenses for one workstation."""

    def __init__(self, workstation: Workstation) -> None:
        self.ws = workstation

    def _backend(self, able: bool, what: str) -> Backend | None:
        backend = self.ws.backend
        if backend is None or not able:
            why = "no model is loaded" if backend is None else f"this engine does not give {what}"
            self.ws.notify(f"No {what}: {why}.", severity="warning")
            return None
        return backend

    # -- surprise -----------------------------------------------------------------------------------------

    def score(self, tokenization: Tokenization) -> None:
        """Score the inspected text, a window of the context at a time, so long texts colour as the scores
        arrive (the engine queues this behind a reply that is decoding)."""
        backend = self.ws.backend
        if self._backend(backend is not None and backend.capabilities.scoring, "scores") is None:
            return
        assert backend is not None
        work = partial(self._score, backend, tokenization, self.ws.params.top_candidates)
        self.ws.run_worker(work, thread=True, exclusive=True, group="score", exit_on_error=False)

    def _score(self, backend: Backend, tokenization: Tokenization, top: int) -> None:
        ids = list(tokenization.ids)
        worker = get_current_worker()
        call = self.ws.app.call_from_thread
        for window in windows(len(ids), backend.info.context_length):
            try:
                scored = backend.score(ids[window.start : window.end], top)
            except LlmtuiError as exc:
                call(self.ws.notify, f"Scoring failed: {exc}", severity="error", markup=False)
                return
            if worker.is_cancelled or not self.ws.app.is_running:
                return
            skip = window.first - window.start  # what an earlier window scored with more context before it
            events = [replace(e, index=e.index + window.start) for e in scored if e.index >= skip]
            call(self.ws.inspector.add_scores, tokenization, events)

    # -- the logit lens -------------------------------------------------------------------------------------

    def logit_lens(self, event: TokenEvent) -> None:
        """The lens at the sidebar's step: a step of the scored text, or of the reply in the token stream."""
        backend = self.ws.backend
        if self._backend(backend is not None and backend.capabilities.lens, "logit lens") is None:
            return
        assert backend is not None
        inspector = self.ws.inspector
        messages: list[Message] | None = None
        if inspector.tokenization is not None and inspector.scores.get(event.index) is event:
            ids = list(inspector.tokenization.ids[: event.index])
        else:
            turn = self.ws.stream_turn
            events = self.ws.conversation.turns[turn].version.events if turn is not None else []
            if not any(e is event for e in events):
                self.ws.notify("The step shown is no longer in the token stream.", severity="warning")
                return
            messages = self.ws.conversation.messages(upto=turn)
            ids = [e.token_id for e in events[: event.index]]
        reserve = self.ws.params.max_new_tokens
        work = partial(self._lens, backend, event, messages, ids, reserve)
        self.ws.run_worker(work, thread=True, exclusive=True, group="lens", exit_on_error=False)

    def _lens(
        self, backend: Backend, event: TokenEvent, messages: list[Message] | None, ids: list[int], reserve: int
    ) -> None:
        """The context the step was read from (a reply's prompt rendered again, then the reply's tokens before
        the step; or the scored text's), then the lens at its last token."""
        call = self.ws.app.call_from_thread
        try:
            if messages is not None:
                ids = list(backend.render(messages, reserve=reserve).ids) + ids
            [step] = backend.logit_lens(ids, [len(ids) - 1], top=3)
        except LlmtuiError as exc:
            call(self.ws.notify, f"Logit lens failed: {exc}", severity="error", markup=False)
            return
        call(self.ws.sidebar.show_lens, event, step)
