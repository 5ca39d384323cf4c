"""An engine that dies mid-reply: the reply is kept as partial with the reason, the app stays up, and the
restart key brings a working engine back with the conversation untouched."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from llmtui.backends.base import Backend, Reply
from llmtui.backends.local import LocalBackend
from llmtui.core.errors import GenerationError
from llmtui.core.events import TokenEvent
from llmtui.core.prompt import Message, Prompt
from llmtui.core.sampling import SamplingParams
from llmtui.store.conversations import ConversationStore
from llmtui.store.settings import Settings
from llmtui.tui.app import LlmtuiApp
from llmtui.tui.widgets.conversation import Composer
from tests.tui.conftest import wait_for, wait_idle, wait_ready

DEATH = "the engine process exited (killed by signal 9)"


class DyingReply:
    """A real reply from the tiny model that fails after three steps, as when the engine process is killed."""

    def __init__(self, inner: Reply) -> None:
        self.inner = inner
        self.prompt = inner.prompt
        self.prefix = inner.prefix
        self.stats = None

    @property
    def events(self) -> list[TokenEvent]:
        return self.inner.events

    def __iter__(self) -> Iterator[TokenEvent]:
        for step, event in enumerate(self.inner):
            if step == 3:
                self.inner.stop()
                raise GenerationError(DEATH)
            yield event

    def stop(self) -> None:
        self.inner.stop()


class DyingBackend(Backend):
    """The tiny model in this process, whose every reply dies mid-way."""

    def __init__(self, real: LocalBackend) -> None:
        self.real = real
        self.info = real.info
        self.view = real.view
        self.closed = False

    def render(self, messages: Sequence[Message], reserve: int = 0) -> Prompt:
        return self.real.render(messages, reserve)

    def generate(
        self, prompt: Prompt, params: SamplingParams, *, prefix: Sequence[int] = (), force: int | None = None
    ) -> Reply:
        return DyingReply(self.real.generate(prompt, params, prefix=prefix, force=force))

    def close(self) -> None:
        self.closed = True


async def test_an_engine_that_dies_mid_reply_is_restarted_with_one_key(tiny_engine, private_dirs):
    dying = DyingBackend(LocalBackend(tiny_engine))
    started: list[Backend] = []

    def start_backend(options, progress) -> Backend:
        started.append(dying if not started else LocalBackend(tiny_engine))
        return started[-1]

    app = LlmtuiApp(
        settings=Settings().with_value("sampling.max_new_tokens", 12),
        model="tiny",
        start_backend=start_backend,
        store=ConversationStore(private_dirs / "data" / "conversations"),
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_ready(pilot)
        await pilot.press(*"Hello", "enter")
        await wait_for(pilot, lambda: app.conversation.replies() and not app.workstation.replies.busy)
        await pilot.pause(0.1)

        # The reply so far is kept, marked partial, with the reason; and it is saved.
        reply = app.conversation.turns[-1].version
        assert reply.partial and reply.error == DEATH
        assert len(reply.events) == 3 and reply.content == "".join(e.text for e in reply.events)
        saved = app.store.load(app.conversation.id).turns[-1].version
        assert saved.partial and saved.error == DEATH and len(saved.events) == 3
        # The UI stays up and says the engine stopped, and how to bring it back.
        assert app.status.state == "error"
        assert app.status.detail.startswith(f"engine stopped: {DEATH}") and "ctrl+t" in app.status.detail
        assert isinstance(app.focused, Composer)

        await pilot.press("ctrl+t")  # with the focus in the composer
        await wait_for(pilot, lambda: len(started) == 2 and app.backend is started[1])
        assert dying.closed
        assert app.status.state == "ready"
        assert [t.content for t in app.conversation.turns] == ["Hello", reply.content]  # untouched

        await pilot.press(*"Again", "enter")
        await wait_for(pilot, lambda: len(app.conversation.turns) == 4)
        await wait_idle(pilot)
        again = app.conversation.turns[-1].version
        assert again.error is None and again.stats is not None and len(again.events) == again.stats.new_tokens
        assert app.status.state in ("ready", "stopped")
