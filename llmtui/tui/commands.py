"""The command palette (ctrl+p): the model switcher and the workstation's own commands."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.command import Hit, Hits, Provider

from llmtui.core.text import escape_controls

if TYPE_CHECKING:
    from llmtui.tui.workstation import Workstation


class ModelCommands(Provider):
    """Switch to any model llmtui can find, or to a server named in the settings."""

    async def search(self, query: str) -> Hits:
        from llmtui.engine.catalog import list_models
        from llmtui.tui.workstation import Workstation

        workstation = self.screen
        assert isinstance(workstation, Workstation)
        entries = await asyncio.to_thread(list_models, workstation.settings.model_dirs)
        matcher = self.matcher(query)
        for name, server in workstation.settings.servers.items():
            title = f"Connect to server: {escape_controls(name)}"
            score = matcher.match(title)
            if score > 0:
                about = escape_controls(f"{server.url} · {server.model or 'the model it serves'}")
                yield Hit(score, matcher.highlight(title), partial(workstation.engine.connect_server, name), help=about)
        for entry in entries:
            # A spec is a directory name or a hub id from the disk: data, shown with its controls escaped.
            title = f"Switch model: {escape_controls(entry.spec)}"
            score = matcher.match(title)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(title),
                    partial(workstation.engine.switch_model, entry.spec),
                    help=escape_controls(entry.architecture),
                )


def system_commands(ws: Workstation) -> Iterator[SystemCommand]:
    """The workstation's commands, each naming its key where it has one."""
    from llmtui.tui.workstation import PANES

    replies = ws.replies
    yield SystemCommand("Stop reply", f"Stop the reply being written ({ws.key_of('stop')})", ws.action_stop)
    yield SystemCommand(
        "Regenerate", f"A new version of the last reply ({ws.key_of('regenerate')})", replies.regenerate
    )
    yield SystemCommand(
        "Continue reply", f"Continue the last reply where it stopped ({ws.key_of('continue')})", replies.continue_reply
    )
    yield SystemCommand("Copy reply", f"Copy the last reply via OSC 52 ({ws.key_of('copy')})", ws.action_copy_reply)
    yield SystemCommand(
        "Restart engine",
        f"Stop the engine and start it again with the same model; the conversation stays ({ws.key_of('restart')})",
        ws.action_restart_engine,
    )
    yield SystemCommand("Edit system prompt", "Set the system prompt", ws.edit_system)
    yield SystemCommand("New conversation", "Start over; the current one is saved (/clear)", ws.new_conversation)
    yield SystemCommand(
        "History", f"Browse, search and open saved conversations ({ws.key_of('history')})", ws.action_history
    )
    yield SystemCommand("Settings", f"Sampling and system prompt ({ws.key_of('settings')})", ws.action_settings)
    yield SystemCommand(
        "Inspect prompt", "The prompt as the model receives it", partial(ws.inspect_prompt, reveal=True)
    )
    yield SystemCommand("Vocabulary", "Search the tokenizer's vocabulary", ws.action_vocabulary)
    yield SystemCommand("Replay reply", "Play the shown reply back at its recorded speed", ws.action_replay)
    yield SystemCommand(
        "Replay reply ×4", "Play the shown reply back four times faster", partial(ws.action_replay, 4.0)
    )
    yield SystemCommand("Re-run and compare", "Re-generate each reply greedily; show where it departs", ws.action_rerun)
    yield SystemCommand("Toggle token ids", "Show ids on token chips", ws.chips.action_toggle_ids)
    yield SystemCommand("Sparkline: entropy / probability", "What the sparkline plots", ws.toggle_sparkline)
    for pane in PANES:
        yield SystemCommand(f"Show/hide {pane}", f"Toggle the {pane} pane", partial(ws.action_toggle_pane, pane))
