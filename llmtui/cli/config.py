"""`llmtui config path|show|set`: the settings file; each action has its own subparser."""

from __future__ import annotations

import argparse
from typing import Any

from llmtui.cli.options import warn
from llmtui.core.errors import InvalidValue


def add_parser(sub: Any) -> None:
    """Register `config` and its actions on the verbs' subparsers."""
    config = sub.add_parser("config", help="settings: path, show, set KEY VALUE")
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("path", help="where the settings file is").set_defaults(func=cmd_config_path)
    actions.add_parser("show", help="the settings in effect, as TOML").set_defaults(func=cmd_config_show)
    # KEY and VALUE are optional to argparse so that a missing one is our one-line error (exit 1).
    set_ = actions.add_parser("set", help="set one key and save the file")
    set_.add_argument("key", nargs="?", help="dotted key, e.g. sampling.temperature")
    set_.add_argument("value", nargs="?", help='a TOML value (0.2, true, "text") or plain text')
    set_.set_defaults(func=cmd_config_set)


def cmd_config_path(args: argparse.Namespace) -> int:
    """Print the settings file's path (it need not exist yet)."""
    from llmtui.store.settings import settings_path

    print(settings_path(args.config))
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """Print the settings in effect as TOML."""
    import tomlkit

    from llmtui.store.settings import load_settings

    settings, problems = load_settings(args.config)
    warn(problems)
    print(tomlkit.dumps(settings.to_toml_dict()), end="")
    return 0


def cmd_config_set(args: argparse.Namespace) -> int:
    """Validate one value, write it into the settings file in place (every other byte stays as it was),
    and print what was stored."""
    from llmtui.store.settings import load_settings, parse_value, save_settings

    if not args.key or args.value is None:
        raise InvalidValue("usage: llmtui config set KEY VALUE")
    settings, problems = load_settings(args.config)
    # A file-level problem (it does not parse, cannot be read) is the save's one error line below; the
    # key being set is being fixed.
    warn([p for p in problems if p.key is not None and p.key != args.key])
    settings = settings.with_value(args.key, parse_value(args.value))
    save_settings(settings, args.config, keys=[args.key])
    print(f"{args.key} = {settings.get(args.key)!r}")
    return 0
