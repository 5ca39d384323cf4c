"""`llmtui history ACTION`: saved conversations; each action has its own subparser with only its options."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any

from llmtui.cli.options import add_model_options, model_options, out, read_file, read_stdin, settings, table, warn
from llmtui.core.errors import InvalidValue
from llmtui.core.text import escape_controls

if TYPE_CHECKING:
    from llmtui.core.conversation import Conversation
    from llmtui.store.conversations import ConversationStore

EXPORT_FORMATS = ("markdown", "openai", "json")


def add_parser(sub: Any) -> None:
    """Register `history` and its actions on the verbs' subparsers."""
    history = sub.add_parser("history", help="saved conversations: list, show, export, import, rm, replay")
    actions = history.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = actions.add_parser("list", help="saved conversations, newest first")
    ls.add_argument("--search", help="only conversations whose title or messages contain this")
    ls.add_argument("--limit", type=int, help="at most this many")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_history_list)

    # The id is optional to argparse so that a missing one is our one-line error (exit 1), as everywhere.
    show = actions.add_parser("show", help="a conversation as Markdown (or its file's JSON)")
    show.add_argument("target", nargs="?", metavar="ID", help="conversation id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_history_show)

    export = actions.add_parser("export", help="a conversation as Markdown, OpenAI messages or llmtui's JSON")
    export.add_argument("target", nargs="?", metavar="ID", help="conversation id")
    export.add_argument("--format", choices=EXPORT_FORMATS, default="markdown", help="export format")
    export.add_argument("-o", "--output", help="write to this file")
    export.set_defaults(func=cmd_history_export)

    imp = actions.add_parser("import", help="save OpenAI-style messages as a conversation")
    imp.add_argument("target", nargs="?", default="-", metavar="FILE", help="a JSON file, or - for stdin")
    imp.set_defaults(func=cmd_history_import)

    rm = actions.add_parser("rm", help="move a conversation to the trash")
    rm.add_argument("target", nargs="?", metavar="ID", help="conversation id")
    rm.set_defaults(func=cmd_history_rm)

    replay = actions.add_parser("replay", help="play a conversation back, or re-run it and show departures")
    replay.add_argument("target", nargs="?", metavar="ID", help="conversation id")
    replay.add_argument("--speed", type=float, default=1.0, help="times the recorded speed (0: at once)")
    replay.add_argument("--rerun", action="store_true", help="re-run with the current model, show departures")
    replay.add_argument("--model", help="--rerun: the model to use (default: the conversation's)")
    add_model_options(replay)
    replay.set_defaults(func=cmd_history_replay)


def _store() -> ConversationStore:
    from llmtui.store.conversations import ConversationStore

    return ConversationStore()


def _target(args: argparse.Namespace) -> str:
    if not args.target:
        raise InvalidValue(f"usage: llmtui history {args.action} ID")
    return str(args.target)


def _load(args: argparse.Namespace) -> Conversation:
    return _store().load(_target(args))


def cmd_history_list(args: argparse.Namespace) -> int:
    """The saved conversations (optionally those matching --search), as a table or JSON."""
    summaries, problems = _store().list(args.search or "", limit=args.limit)
    warn(problems)
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], ensure_ascii=False, indent=1))
        return 0
    rows = [("ID", "UPDATED", "TURNS", "TITLE")]
    rows += [
        (s.id, time.strftime("%Y-%m-%d %H:%M", time.localtime(s.updated)), str(s.turns), escape_controls(s.title))
        for s in summaries
    ]
    table(rows)
    return 0


def cmd_history_show(args: argparse.Namespace) -> int:
    """One conversation as Markdown, or with --json its file's JSON."""
    from llmtui.store.exchange import to_markdown

    conversation = _load(args)
    if args.json:
        print(json.dumps(conversation.to_dict(), ensure_ascii=False, indent=1))
    else:
        out(to_markdown(conversation))
    return 0


def cmd_history_export(args: argparse.Namespace) -> int:
    """One conversation in an export format, to stdout or (atomically) to a file."""
    from llmtui.store.exchange import to_markdown, to_openai

    conversation = _load(args)
    if args.format == "markdown":
        text = to_markdown(conversation)
    else:
        data = to_openai(conversation) if args.format == "openai" else conversation.to_dict()
        text = json.dumps(data, ensure_ascii=False, indent=1)
    if args.output:
        from pathlib import Path

        from llmtui.store.files import atomic_write

        # The user's file: written 0600, atomically; its directory is theirs and is never created or chmod-ed.
        atomic_write(Path(args.output), text.encode("utf-8"))
    else:
        out(text if text.endswith("\n") else text + "\n")
    return 0


def cmd_history_import(args: argparse.Namespace) -> int:
    """Save OpenAI-style messages (a file, or stdin) as a new conversation and print its id."""
    from llmtui.store.exchange import from_openai
    from llmtui.store.files import parse_json

    source = args.target
    raw = read_stdin("file") if source == "-" else read_file(source)
    data = parse_json(raw, "stdin" if source == "-" else source)
    print(_store().save(from_openai(data)).id)
    return 0


def cmd_history_rm(args: argparse.Namespace) -> int:
    """Move a conversation to the trash."""
    target = _target(args)
    _store().delete(target)
    print(f"moved {target} to the trash")
    return 0


def cmd_history_replay(args: argparse.Namespace) -> int:
    """Play a conversation back at its recorded speed, or with --rerun find where today's model departs."""
    from llmtui.core.replay import playback, rerun

    conversation = _load(args)
    if not args.rerun:
        for turn in conversation.turns:
            if turn.role == "user":
                out(f"\n> {turn.content}\n\n")
            elif turn.version.events:
                for event in playback(turn.version.events, args.speed):
                    out(event.text)
                out("\n")
            else:
                out(turn.content + "\n")
        return 0
    from llmtui.backends.local import LocalBackend

    chosen = settings(args)
    backend = LocalBackend.load(model_options(args, chosen, args.model or conversation.model))
    params = backend.default_params(**{**chosen.sampling.to_overrides(), "temperature": 0.0})
    for divergence in rerun(backend, conversation, params):
        print(divergence.describe(backend.view.display))
    return 0
