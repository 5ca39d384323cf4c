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
    import tomli_w

    from llmtui.store.settings import load_settings, settings_path

    settings, problems = load_settings(settings_path(args.config))
    warn(problems)
    print(tomli_w.dumps(settings.to_toml_dict()), end="")
    return 0


def cmd_config_set(args: argparse.Namespace) -> int:
    """Validate one value, write it to the settings file, and print what was stored."""
    from llmtui.store.settings import load_settings, parse_value, save_settings, settings_path

    if not args.key or args.value is None:
        raise InvalidValue("usage: llmtui config set KEY VALUE")
    path = settings_path(args.config)
    settings, problems = load_settings(path)
    warn(problems)
    settings = settings.with_value(args.key, parse_value(args.value))
    save_settings(settings, path)
    print(f"{args.key} = {settings.get(args.key)!r}")
    return 0
