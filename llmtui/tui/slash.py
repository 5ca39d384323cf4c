"""Slash commands typed into the composer, in ollama's style: /set, /show, /clear, /save, /load, /bye, /help."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from llmtui.core.errors import LlmtuiError
from llmtui.core.sampling import SamplingParams

if TYPE_CHECKING:
    from llmtui.tui.workstation import Workstation


@dataclass(frozen=True)
class Slash:
    """One slash command: its names (the first is the one /help shows), usage, what it does, and how."""

    names: tuple[str, ...]
    usage: str
    does: str
    run: Callable[[Workstation, str], None]


def _set(ws: Workstation, rest: str) -> None:
    name, _, value = rest.partition(" ")
    if name == "system":
        ws.set_system(value)
        ws.notify("System prompt set.")
        return
    try:
        ws.params = ws.params.with_value(name, value.strip())
    except LlmtuiError as exc:
        ws.notify(str(exc), severity="error", markup=False)
        return
    ws.notify(f"{name} = {getattr(ws.params, name)!r}", markup=False)


def _save(ws: Workstation, rest: str) -> None:
    if rest:
        ws.conversation.title = rest
    ws.autosave(announce=True)


def describe(ws: Workstation) -> str:
    """Model, sampling and conversation, as /show prints them."""
    p = ws.params
    lines = [f"model {ws.options.model}"]
    if ws.backend is not None:
        engine = ws.backend.info
        info = engine.model
        lines.append(f"  {info.architecture} · {info.parameters or 0:,} parameters · context {info.context_length}")
        lines.append(
            f"  device {engine.device} · {engine.weights} · forward pass {engine.forward} ({engine.forward_note})"
        )
    lines.append(
        f"sampling temperature {p.temperature} · top_k {p.top_k} · top_p {p.top_p} · "
        f"repetition_penalty {p.repetition_penalty} · max_new_tokens {p.max_new_tokens} · seed {p.seed} · "
        f"stop {list(p.stop)} · top_candidates {p.top_candidates}"
    )
    lines.append(f"conversation {ws.conversation.id} · {len(ws.conversation.turns)} turns")
    return "\n".join(lines)


SLASHES = (
    Slash(("/set",), "/set PARAM VALUE", ", ".join(f.name for f in fields(SamplingParams)), _set),
    Slash(("/set",), "/set system TEXT", "the system prompt", _set),
    Slash(("/show",), "/show", "model, sampling and context", lambda ws, _rest: ws.note(describe(ws))),
    Slash(
        ("/clear",),
        "/clear",
        "start a new conversation (the current one is saved)",
        lambda ws, _: ws.new_conversation(),
    ),
    Slash(("/save",), "/save [TITLE]", "save now, optionally renaming", _save),
    Slash(
        ("/load",),
        "/load [QUERY]",
        "open the history, or the newest conversation matching QUERY",
        lambda ws, rest: ws.action_history(rest),
    ),
    Slash(("/bye", "/exit", "/quit"), "/bye", "quit", lambda ws, _rest: ws.llmtui.quit_saving()),
)
WIDTH = max(len(s.usage) for s in SLASHES) + 3
HELP = "Slash commands:\n" + "\n".join(f"{s.usage.ljust(WIDTH)}{s.does}" for s in SLASHES)
_BY_NAME = {name: slash for slash in SLASHES for name in slash.names}


def run_slash(ws: Workstation, text: str) -> None:
    """Run one slash command typed into the composer; an unknown one is named, never guessed."""
    command, _, rest = text.strip().partition(" ")
    if command in ("/help", "/?"):
        ws.note(HELP)
        return
    slash = _BY_NAME.get(command)
    if slash is None:
        ws.notify(f"Unknown command {command}; /help lists them.", severity="error", markup=False)
        return
    slash.run(ws, rest.strip())
