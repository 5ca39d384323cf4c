"""The command line, in ollama's habits: chat (the TUI), run, serve, list, show, tokenize, score,
embed, lens, config, history.

One module per verb, each with `add_parser(sub)` and its `cmd_*`; what they share (model options and the one
place they become a load, settings, stdin, output) is in `options`. Every failure a user can cause ends in
one line on stderr and a non-zero exit status, never a traceback: 1 for bad input, 2 for a command line
argparse cannot parse.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from llmtui.cli import chat, config, embed, history, lens, ls, run, score, serve, show, tokenize
from llmtui.cli.options import say
from llmtui.core.errors import LlmtuiError
from llmtui.core.text import escape_controls

EXIT_ERROR = 1
EXIT_USAGE = 2

# The verbs in the order `llmtui --help` lists them; a new verb is a module here.
VERBS = (chat, run, serve, ls, show, tokenize, score, embed, lens, config, history)


class _Parser(argparse.ArgumentParser):
    verbs: tuple[str, ...] = ()  # the top-level parser's subcommands

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {escape_controls(message)} (see {self.prog} --help)\n")


def build_parser() -> _Parser:
    """The whole command line: global options, then one subparser per verb."""
    parser = _Parser(
        prog="llmtui",
        description="A terminal chat workstation for local language models.",
        epilog="`llmtui MODEL [options]` is `llmtui chat MODEL [options]`, as `ollama run MODEL` is ollama's chat.",
    )
    parser.add_argument("--config", help="settings file to use instead of the platform's settings.toml")
    parser.add_argument("--version", action="version", version=f"llmtui {__import__('llmtui').__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    for verb in VERBS:
        verb.add_parser(sub)
    parser.verbs = tuple(sub.choices)
    # Bare `llmtui` is `llmtui chat`.
    parser.set_defaults(
        func=chat.cmd_chat, model=None, device=None, dtype=None, forward=None, quantize=None, trust_remote_code=False
    )
    return parser


# Global options that take a value, so that the word after one is not read as the verb.
_GLOBAL_VALUES = ("--config",)


def with_verb(argv: Sequence[str], verbs: Sequence[str]) -> list[str]:
    """`llmtui MODEL ...` as `llmtui chat MODEL ...`: the first word that is neither a global option nor a
    verb is a model to chat with."""
    argv = list(argv)
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _GLOBAL_VALUES else 1
    if i < len(argv) and argv[i] not in verbs:
        argv.insert(i, "chat")
    return argv


def _a_model(word: str, verbs: Sequence[str]) -> bool:
    """Whether the first word, not a verb, names a model llmtui can find (so a mistyped verb is an error,
    not a workstation on a model that does not exist); says why not."""
    from llmtui.core.errors import ModelNotFound
    from llmtui.engine.specs import resolve

    try:
        resolve(word)
    except ModelNotFound as exc:
        say("error", f"{word!r} is not a command ({', '.join(verbs)}), and {exc}")
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llmtui` console script."""
    parser = build_parser()
    given = list(sys.argv[1:] if argv is None else argv)
    words = with_verb(given, parser.verbs)
    # With a server, MODEL is the server's model id: nothing to find on this machine.
    remote = any(word in ("--url", "--server") or word.startswith(("--url=", "--server=")) for word in given)
    if words != given and not remote and not _a_model(words[words.index("chat") + 1], parser.verbs):
        return EXIT_USAGE
    args = parser.parse_args(words)
    try:
        return int(args.func(args) or 0)
    except LlmtuiError as exc:
        say("error", exc)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`| head`); nothing left to say
        return 0
    except OSError as exc:  # a file system error no layer above put in words: still one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        say("error", f"{where}{exc.strerror or exc}")
        return EXIT_ERROR
