"""A reply's whole lifecycle in the workstation: start, regenerate, continue, branch, replay, drain, finish,
fail, stop and save partial, behind one "can I act now" guard.

Threads: the backend renders the prompt and decodes on a thread worker, which only appends TokenEvents to a
deque (a replay's worker appends recorded events at their recorded pace). While a reply or a replay is in
flight, a timer on the UI thread drains the deque once a frame and hands each pane only what is new; when
nothing is in flight the timer does not run at all.

Nothing is lost to a crash: the conversation is saved as a reply starts (the user's turn, the reply marked
partial) and, while it streams, every SAVE_SECONDS or more, so a killed app leaves a file whose last reply
is partial with what had arrived.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from textual.timer import Timer

from llmtui.backends.base import Backend, Reply
from llmtui.core.errors import LlmtuiError
from llmtui.core.events import TokenEvent, decode_rate
from llmtui.core.prompt import Message
from llmtui.core.replay import playback
from llmtui.core.sampling import SamplingParams

if TYPE_CHECKING:
    from llmtui.core.conversation import Version
    from llmtui.tui.workstation import Workstation

# The token stream takes new steps once a frame; the panes that change slowly take them every SLOW_SECONDS
# (and on the first and the last frame): the reply's Markdown (its last block rendered again), the sidebar
# (its top-k list is the dearest widget to draw), the sparkline and the status bar. Textual repaints every
# widget that overlaps what changed, whole, so a frame costs milliseconds however little it changes; on a
# small machine that CPU is the decode loop's. 15 frames a second still reads as a live stream, and at a
# GPU's hundreds of tokens a second each frame takes many.
FRAME_SECONDS = 1 / 15
SLOW_SECONDS = 0.4
# While a reply streams, the conversation is saved at most this often, and never more than a tenth of the
# time: a save that took longer (a long conversation's file is rewritten whole) waits ten times as long.
SAVE_SECONDS = 3.0
SAVE_SHARE = 10


class ReplyController:
    """Owns the reply in flight (or the replay) of one workstation; the panes only ever show what it hands them."""

    def __init__(self, workstation: Workstation) -> None:
        self.ws = workstation
        self.generation: Reply | None = None  # the backend's reply being written, once it has started
        self.live_turn: int | None = None  # the turn being written, from the moment a reply is asked for
        self.replaying = False
        self._stop = threading.Event()  # set by stop(): ends a replay, or a reply that has not started yet
        self._queue: deque[TokenEvent] = deque()
        self._timer: Timer | None = None
        self._slow_at = 0.0  # when the slow panes last took what had arrived (time.monotonic)
        self._shown = 0  # characters of the live reply the conversation pane has drawn
        self._saved_at: float | None = None  # when the reply in flight was last saved; None: not again
        self._save_every = SAVE_SECONDS
        self.closed = False  # the app is quitting

    # -- the guard --------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """A reply or a replay is in flight."""
        return self.live_turn is not None or self.replaying

    def can_act(self, *, needs_model: bool = True) -> bool:
        """The one check every action on the conversation passes: nothing in flight, and the model loaded
        when the action needs it. When the answer is no, the user is told why."""
        if self.busy:
            what = "replayed" if self.replaying else "written"
            self.ws.notify(f"A reply is being {what}; stop it with {self.ws.key_of('stop')} first.", severity="warning")
            return False
        if needs_model and self.ws.backend is None:
            self.ws.notify(self._no_model(), severity="warning")
            return False
        return True

    def _no_model(self) -> str:
        if self.ws.status.state == "error":
            return f"No model is running; {self.ws.key_of('restart')} restarts the engine."
        return "The model is still loading."

    # -- starting ---------------------------------------------------------------------------------------

    def send(self, text: str) -> bool:
        """Add the user's message and reply to it (when the model is ready). False when refused."""
        if not self.can_act(needs_model=False):
            return False
        conversation = self.ws.conversation
        conversation.add_user(text)
        if self.ws.backend is None:
            self.ws.engine.reply_when_ready = True
            self.ws.notify(f"{self._no_model()} Your message will be sent when it is ready.")
            self.ws.autosave()
            self.ws.call_after_refresh(self.ws.conversation_view.extend, conversation)
            return True
        self.reply_at_end()
        return True

    def reply_at_end(self) -> None:
        """A new assistant turn answering the conversation as it stands."""
        if not self.can_act():
            return
        index = self.ws.conversation.start_reply(*self._author())
        self._begin(index, rebuild=False)

    def regenerate(self) -> None:
        """A new version of the last reply (the old one stays, see the version switcher)."""
        index = self.last_reply()
        if index is None or not self.can_act():
            return
        self.ws.conversation.start_reply(*self._author(), at=index)
        self._begin(index)

    def continue_reply(self) -> None:
        """Continue the last reply from where it stopped (token limit, or stopped by hand)."""
        index = self.last_reply()
        if index is None or not self.can_act():
            return
        version = self.ws.conversation.turns[index].version
        if not version.events:
            self.ws.notify("This reply has no recorded tokens to continue from.", severity="warning")
            return
        if self._refused([e.token_id for e in version.events]):
            return
        version.partial = True
        self._begin(index, prefix=version.token_ids, rebuild=None)

    def branch(self, index: int, step: int, token_id: int) -> None:
        """Cut reply ``index`` at ``step``, put ``token_id`` there, and continue from it (a new version)."""
        if not self.can_act():
            return
        turn = self.ws.conversation.turns[index]
        kept = turn.version.events[:step]
        if self._refused([e.token_id for e in kept]):
            return
        self.ws.conversation.start_reply(*self._author(), at=index, branched_from=(turn.current, step))
        fresh = turn.version
        fresh.events = list(kept)
        fresh.content = "".join(e.text for e in kept)
        self._begin(index, prefix=[e.token_id for e in kept], force=token_id)

    def edit(self, index: int, text: str) -> None:
        """A new version of user message ``index``, and a reply to it."""
        if not self.can_act():
            return
        self.ws.conversation.edit_user(index, text)
        index = self.ws.conversation.start_reply(*self._author())
        self._begin(index)

    def _refused(self, prefix: list[int | None]) -> bool:
        """Whether the engine cannot continue from ``prefix``; then it says why, and nothing starts."""
        backend = self.ws.backend
        why = backend.extend_refusal(prefix) if backend is not None else None
        if why:
            self.ws.notify(why, severity="warning", markup=False)
        return bool(why)

    def _author(self) -> tuple[str, str | None]:
        """Who writes the next reply, as the conversation records it: the model (the spec as given, or the
        server's model id) and the server's URL (None: an engine on this machine)."""
        backend = self.ws.backend
        server = backend.server if backend is not None else None
        return (backend.info.model.name if server and backend else self.ws.options.model), server

    def last_reply(self) -> int | None:
        replies = self.ws.conversation.replies()
        return replies[-1] if replies else None

    def _begin(
        self, index: int, *, prefix: Sequence[int] = (), force: int | None = None, rebuild: bool | None = True
    ) -> None:
        """Mark turn ``index`` as being written now (so the guard holds from this moment), then show it and
        start the worker once the conversation pane is rebuilt (``rebuild``), extended by the new turn
        (False), or left as it is (None: continuing a reply already on screen)."""
        self.live_turn = index
        self._stop.clear()
        backend = self.ws.backend
        assert backend is not None
        conversation = self.ws.conversation
        messages = conversation.messages(upto=index)
        params = self.ws.params
        conversation.sampling = params.to_dict()
        conversation.model = self._author()[0]
        conversation.fingerprint = backend.info.model.fingerprint
        # Saved before the reply starts: the user's turn, and the reply marked partial.
        self._save_every = SAVE_SECONDS
        self._save_progress()

        def show_and_start() -> None:
            pane = self.ws.conversation_view
            if rebuild:
                self.ws.show_conversation()
            elif rebuild is False:
                pane.extend(conversation)
            self.ws.show_stream(index)
            self._shown = len(conversation.turns[index].version.content)
            pane.begin_live(index)
            self.ws.status.set(state="generating", detail="")
            self._start_frames()
            worker = partial(self._decode, backend, messages, params, tuple(prefix), force)
            self.ws.run_worker(worker, thread=True, group="reply", exit_on_error=False)

        self.ws.call_after_refresh(show_and_start)

    # -- the worker -------------------------------------------------------------------------------------

    def _decode(
        self,
        backend: Backend,
        messages: list[Message],
        params: SamplingParams,
        prefix: tuple[int, ...],
        force: int | None,
    ) -> None:
        """Worker thread: render, start and run the reply, queueing each event. Touches no widget."""
        call = self.ws.app.call_from_thread
        try:
            prompt = backend.render(messages, reserve=params.max_new_tokens)
            generation = backend.generate(prompt, params, prefix=prefix, force=force)
        except LlmtuiError as exc:
            call(self._finished, None, str(exc))
            return
        except Exception as exc:
            call(self._finished, None, f"the reply could not start: {exc}")
            return
        call(self._started, generation)
        error = None
        try:
            for event in generation:
                self._queue.append(event)
        except LlmtuiError as exc:
            error = str(exc)
        except Exception as exc:
            error = f"generation failed unexpectedly: {exc}"
        call(self._finished, generation, error)

    def _started(self, generation: Reply) -> None:
        """UI thread: the backend has accepted the reply."""
        self.generation = generation
        if self._gone:
            generation.stop()
            return
        if self._stop.is_set():  # stopped (or quitting) while the prompt was being rendered
            generation.stop()
        prompt = generation.prompt
        self.ws.status.set(context_used=len(prompt.ids) + len(generation.prefix))
        if prompt.dropped_turns:
            self.ws.notify(f"{prompt.dropped_turns} oldest turns were left out to fit the context.", severity="warning")
        if not prompt.templated:
            self.ws.notify("This tokenizer has no chat template; using the plain format.", severity="warning")
        self.ws.show_prompt(prompt)

    # -- replay -----------------------------------------------------------------------------------------

    def replay(self, index: int | None, speed: float = 1.0) -> None:
        """Play reply ``index`` back in the token stream and the sidebar at its recorded pace."""
        if index is None or not self.ws.conversation.turns[index].version.events:
            self.ws.notify("No recorded reply to play back.", severity="warning")
            return
        if not self.can_act(needs_model=False):
            return
        events = list(self.ws.conversation.turns[index].version.events)
        self.replaying = True
        self._stop.clear()
        self.ws.show_stream(index)
        self.ws.chips.show([])
        self.ws.status.set(state="generating", detail=f"replaying at {speed:g}x")
        self._start_frames()
        self.ws.run_worker(partial(self._play, events, speed), thread=True, group="reply", exit_on_error=False)

    def _play(self, events: list[TokenEvent], speed: float) -> None:
        """Worker thread: core.replay's pacing, interrupted by stop()."""
        for event in playback(events, speed, sleep=self._stop.wait):
            if self._stop.is_set():
                break
            self._queue.append(event)
        self.ws.app.call_from_thread(self._replay_finished)

    def _replay_finished(self) -> None:
        if self._gone:
            return
        self._frame(final=True)
        self._stop_frames()
        self.replaying = False
        self.ws.status.set(state="ready", detail="")

    # -- each frame -------------------------------------------------------------------------------------

    def _start_frames(self) -> None:
        self._slow_at = -SLOW_SECONDS
        if self._timer is None:
            self._timer = self.ws.set_interval(FRAME_SECONDS, self._frame)

    def _stop_frames(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _take(self) -> tuple[list[TokenEvent], Version | None]:
        """The events that arrived since the last frame, added to the live reply's version (if any)."""
        queue = self._queue
        events = [queue.popleft() for _ in range(len(queue))]
        if self.live_turn is None:
            return events, None
        version = self.ws.conversation.turns[self.live_turn].version
        if events:
            version.events.extend(events)
            version.content += "".join(e.text for e in events)
        return events, version

    def _frame(self, *, final: bool = False) -> None:
        """UI thread, once a frame: hand each pane what arrived since the last frame."""
        events, version = self._take()
        if not events and not final:
            return
        now = time.monotonic()
        slow = final or now - self._slow_at >= SLOW_SECONDS
        if slow:
            self._slow_at = now
        if version is not None and slow:
            if len(version.content) > self._shown:
                self._shown = len(version.content)
                self.ws.conversation_view.grew()
            if version.events:
                generation = self.generation
                self.ws.status.set(
                    tokens_per_second=decode_rate(version.events),
                    ttft=version.events[0].elapsed,
                    context_used=len(generation.prompt.ids) + len(generation.prefix) + len(generation.events)
                    if generation is not None
                    else self.ws.status.context_used,
                )
        if self.replaying or self.ws.stream_turn == self.live_turn:
            self.ws.stream_events(events, summary=slow)
        if (
            version is not None
            and not final
            and self._saved_at is not None
            and now - self._saved_at >= self._save_every
        ):
            self._save_progress()

    def _save_progress(self) -> None:
        """Save the conversation with the reply so far (marked partial while it is in flight); the next
        such save waits SAVE_SECONDS, or ten times as long as this one took. After a failed save (said
        once, by autosave) there is none until the reply ends, whose save tries again."""
        started = time.monotonic()
        if not self.ws.autosave():
            self._saved_at = None
            return
        self._saved_at = time.monotonic()
        self._save_every = max(SAVE_SECONDS, SAVE_SHARE * (self._saved_at - started))

    # -- ending -----------------------------------------------------------------------------------------

    def _finished(self, generation: Reply | None, error: str | None) -> None:
        """UI thread: the reply ended (finished, stopped, or failed with ``error``); keep it and save it."""
        if self._gone:
            return
        index = self.live_turn
        self._frame(final=True)
        self._stop_frames()
        self.generation = None
        self.live_turn = None
        if index is None:
            return
        version = self.ws.conversation.turns[index].version
        stats = generation.stats if generation is not None else None
        if stats is not None and generation is not None and generation.prefix:
            # Continued or branched: the reply's count covers the steps it kept as well as the new ones.
            stats = replace(stats, new_tokens=len(version.events))
        version.stats = stats
        version.partial = error is not None or (stats is not None and stats.stop_reason == "stopped")
        version.error = error
        self.ws.conversation_view.end_live()
        if error is None:
            self.ws.status.set(state="stopped" if version.partial else "ready", detail="")
        elif generation is None:  # refused before it began (the context is full, the engine cannot be reached)
            self.ws.status.set(state="error", detail=error)
            self.ws.notify(error, title="Cannot reply", severity="error", timeout=10, markup=False)
        else:  # failed mid-reply: the engine is gone or broken; what it wrote is kept, marked partial
            self.ws.engine.stopped(error)
        self.ws.autosave()
        self.ws.inspect_prompt()

    @property
    def _gone(self) -> bool:
        """The app is quitting: the panes are being torn down, and what the workers report is dropped."""
        return self.closed or not self.ws.app.is_running

    def stop(self) -> bool:
        """Stop the reply or replay in flight; False when there is none."""
        if not self.busy:
            return False
        self._stop.set()
        if self.generation is not None:
            self.generation.stop()
        return True

    def close(self) -> None:
        """Quitting (ctrl+q, SIGTERM, SIGHUP): stop what is in flight, keep what the reply has so far as
        partial, save; whatever the workers report after this is ignored, the panes being torn down."""
        self.closed = True
        if self.busy:
            self.stop()
            _events, version = self._take()
            if version is not None:
                version.partial = True
        self.ws.autosave()
