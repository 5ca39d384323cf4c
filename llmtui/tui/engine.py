"""The engine behind the workstation: started (the model's own process, or a server's client), restarted,
switched to another model or server, and what the panes learn when it is ready or when it stops."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from textual.widgets import ProgressBar
from textual.worker import get_current_worker

from llmtui.backends.base import Backend
from llmtui.core.choices import ModelOptions
from llmtui.core.errors import LlmtuiError

if TYPE_CHECKING:
    from llmtui.tui.workstation import Workstation


class EngineController:
    """The engine of one workstation. The backend itself is the workstation's (``ws.backend``): every pane
    asks it; only this controller sets it."""

    def __init__(self, workstation: Workstation) -> None:
        self.ws = workstation
        self.reply_when_ready = False  # a message was sent while the model was loading

    @property
    def progress(self) -> ProgressBar:
        return self.ws.query_one("#progress", ProgressBar)

    def start(self, options: ModelOptions) -> None:
        """Start a backend for ``options``; the one running (if any) is closed first, off the UI thread."""
        ws = self.ws
        old, ws.backend = ws.backend, None
        ws.options = options
        self.progress.display = True
        self.progress.update(progress=0)
        ws.status.set(model=options.model, state="loading", detail="starting")
        # Exclusive: a restart or a switch during a load cancels that load, whose backend is then closed.
        ws.run_worker(partial(self._load, options, old), thread=True, exclusive=True, group="load", exit_on_error=False)

    def _load(self, options: ModelOptions, old: Backend | None) -> None:
        call = self.ws.app.call_from_thread
        if old is not None:
            with contextlib.suppress(Exception):  # a backend that is already dead may fail to close
                old.close()

        def progress(fraction: float, what: str) -> None:
            call(self._progressed, fraction, what)

        try:
            backend = self.ws.llmtui.start_backend(options, progress)
        except LlmtuiError as exc:
            call(self._failed, str(exc))
            return
        except Exception as exc:
            call(self._failed, f"unexpected error while loading {options.model}: {exc}")
            return
        if get_current_worker().is_cancelled:  # another start (a restart, a switch) replaced this one
            backend.close()
            return
        call(self._ready, backend)

    def _progressed(self, fraction: float, what: str) -> None:
        self.progress.update(progress=fraction)
        self.ws.status.set(state="loading", detail=what)

    def _failed(self, message: str) -> None:
        ws = self.ws
        self.progress.display = False
        ws.status.set(state="error", detail=message)
        ws.notify(message, title="Model failed to load", severity="error", timeout=10, markup=False)
        ws.note(f"Model failed to load: {message}")

    def _ready(self, backend: Backend) -> None:
        ws = self.ws
        ws.backend = backend
        view, info = backend.view, backend.info
        ws.params = backend.default_params(**ws.settings.sampling.to_overrides())
        self.progress.display = False
        ws.chips.display_piece = view.display if view is not None else None
        ws.sidebar.display_piece = view.display if view is not None else None
        ws.inspector.view = backend.inspector_view()
        if view is None:
            shown = ws.inspector.view.name if ws.inspector.view is not None else "no tokenizer"
            ws.note(
                f"The tokenizer of {info.model.name} is not on this machine: the chips show the server's text, "
                f"token counts are off, and the inspector shows {shown}."
            )
        ws.status.set(
            model=info.model.name,
            device=info.device,
            dtype=info.weights,
            context_max=info.context_length,
            state="ready",
            detail="",
        )
        ws.inspect_prompt()
        ws.update_token_count()
        if ws.stream_turn is not None:
            ws.show_stream(ws.stream_turn)
        if self.reply_when_ready:
            self.reply_when_ready = False
            ws.call_after_refresh(ws.replies.reply_at_end)
        # The tokenizer's tables now live as long as the model: out of every later full collection.
        ws.llmtui.collector.settle()

    def stopped(self, reason: str) -> None:
        """A reply failed mid-way (the engine process died, a device fault): say so and how to recover."""
        restart = self.ws.key_of("restart")
        self.ws.status.set(state="error", detail=f"engine stopped: {reason} · {restart} restarts it")
        self.ws.notify(
            f"{reason}\nThe reply so far is kept, marked partial. {restart} restarts the engine.",
            title="Engine stopped",
            severity="error",
            timeout=10,
            markup=False,
        )

    def restart(self) -> None:
        """Close the backend and start a new one with the same options; the conversation stays."""
        if self.ws.replies.can_act(needs_model=False):
            self.start(self.ws.options)

    def switch_model(self, spec: str) -> None:
        """Load another model on this machine; the conversation stays as it is."""
        if self.ws.replies.can_act(needs_model=False):
            self.ws.llmtui.start_backend = self.ws.llmtui.local_backend
            self.start(replace(self.ws.options, model=spec))

    def connect_server(self, name: str) -> None:
        """Use a server named in the settings ([servers.NAME]); the conversation stays as it is."""
        from llmtui.backends.http import Endpoint, check_url, plain_text_warning
        from llmtui.backends.openai import starter

        ws = self.ws
        server = ws.settings.servers.get(name)
        if server is None or not ws.replies.can_act(needs_model=False):
            return
        warning = plain_text_warning(server.url)
        if warning:
            ws.notify(warning, severity="warning", markup=False)
        ws.llmtui.start_backend = starter(Endpoint(check_url(server.url), key=server.key), server.model)
        self.start(replace(ws.options, model=server.model or name))
