"""What every verb shares: the model options and the one place they become a load, settings, input, output.

Model options plus settings become a `ModelOptions` here and nowhere else, so every verb that loads a model
(chat, run, history replay --rerun) honours the same settings the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmtui.core.errors import InvalidValue
from llmtui.core.text import escape_controls

if TYPE_CHECKING:
    from llmtui.backends.base import Backend
    from llmtui.backends.http import Endpoint
    from llmtui.core.choices import ModelOptions
    from llmtui.store.settings import Settings

MODEL_SPEC_HELP = "model spec: default, a directory, a .gguf file or a hub id"


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The flags that choose how a model is loaded, for every verb that loads one; from core.choices."""
    from llmtui.core.choices import MODEL_CHOICES

    for choice in MODEL_CHOICES.values():
        p.add_argument(
            f"--{choice.name}",
            # An open list (cuda:N) cannot be argparse's choices; ModelOptions.validate checks it, exit 1.
            choices=None if choice.open else choice.values,
            metavar=choice.name.upper() if choice.open else None,
            help=f"{choice.about}: {choice.words} (default {choice.default})"
            if choice.open
            else f"{choice.about} (default {choice.default})",
        )
    add_trust_option(p)


# The client's key for a server named by --url. Not the server's own LLMTUI_API_KEY: the workstation's engine
# process inherits the environment, and would then ask its own client for a key.
REMOTE_KEY_ENV = "LLMTUI_REMOTE_API_KEY"


def add_remote_options(p: argparse.ArgumentParser) -> None:
    """--url and --api-key: the verb talks to an OpenAI-compatible server instead of a local model."""
    p.add_argument("--url", help="an OpenAI-compatible server (vLLM, SGLang, llama.cpp, ollama, llmtui serve)")
    p.add_argument(
        "--api-key",
        help=f"the server's API key (prefer the environment variable {REMOTE_KEY_ENV}: a flag shows in ps)",
    )
    p.add_argument("--timeout", type=float, help="seconds a server may send nothing before a reply fails (600)")
    p.add_argument("--server", metavar="NAME", help="a server named in the settings ([servers.NAME] url, key, model)")


def remote_endpoint(
    args: argparse.Namespace, notices: list[str] | None = None, chosen: Settings | None = None
) -> Endpoint | None:
    """The server --url (or --server, from the settings) names, with its key: the flag, else the environment,
    else the settings'; None without either. Where the model is not named, a named server's default model is
    set on ``args.model``. A plain http:// URL to another host gets a one-line warning: on stderr, or added
    to ``notices`` (the workstation's)."""
    import os

    url, key = getattr(args, "url", None), None
    name = getattr(args, "server", None)
    if name:
        chosen = chosen if chosen is not None else settings(args)
        server = chosen.servers.get(name)
        if server is None:
            known = ", ".join(sorted(chosen.servers)) or "none"
            raise InvalidValue(f"no server {name!r} in the settings ([servers.{name}] url = ...); named: {known}")
        url, key = url or server.url, server.key
        if getattr(args, "model", None) is None and server.model:
            args.model = server.model
    if not url:
        return None
    # Only now: httpx is a tenth of a second to import, which a verb run without a server does not pay.
    from llmtui.backends.http import READ_SECONDS, Endpoint, check_url, plain_text_warning

    url = check_url(url)
    warning = plain_text_warning(url)
    if warning and notices is not None:
        notices.append(warning)
    elif warning:
        say("warning", warning)
    timeout = getattr(args, "timeout", None) or READ_SECONDS
    if timeout <= 0:
        raise InvalidValue("--timeout must be more than 0 seconds")
    key = getattr(args, "api_key", None) or os.environ.get(REMOTE_KEY_ENV) or key or None
    return Endpoint(url, key=key, read_seconds=timeout)


def add_trust_option(p: argparse.ArgumentParser) -> None:
    """--trust-remote-code, for every verb that reads a model's config or tokenizer through transformers."""
    p.add_argument("--trust-remote-code", action="store_true", help="run a model's own Python code (off by default)")


def model_options(args: argparse.Namespace, settings: Settings, model: str | None) -> ModelOptions:
    """The one place where the settings' model choices and the command line's flags become a load."""
    from llmtui.core.choices import ModelOptions

    return ModelOptions.merge(
        settings,
        model=model,
        device=getattr(args, "device", None),
        dtype=getattr(args, "dtype", None),
        forward=getattr(args, "forward", None),
        quantize=getattr(args, "quantize", None),
        trust_remote_code=getattr(args, "trust_remote_code", None) or None,
    )


def open_backend(args: argparse.Namespace, chosen: Settings) -> Backend:
    """What writes a verb's replies: the server --url or --server names (``args.model`` its model id), else
    the model loaded here from the settings and the flags (model_options)."""
    endpoint = remote_endpoint(args, chosen=chosen)
    if endpoint is not None:
        from llmtui.backends.openai import connect

        return connect(endpoint, args.model)
    from llmtui.backends.local import LocalBackend

    return LocalBackend.load(model_options(args, chosen, args.model))


def settings(args: argparse.Namespace) -> Settings:
    """The settings (`--config` or the platform's file); their problems become warnings on stderr."""
    from llmtui.store.settings import load_settings

    loaded, problems = load_settings(getattr(args, "config", None))
    warn(problems)
    return loaded


def say(kind: str, message: object) -> None:
    """One line on stderr ("llmtui: error: ..."): every error, warning and note the command line gives
    passes here. Messages quote file names, ids and values from files, so control characters in them are
    shown escaped, never sent to the terminal."""
    print(f"llmtui: {kind}: {escape_controls(str(message))}", file=sys.stderr)


def warn(problems: Sequence[object]) -> None:
    """One warning line on stderr per problem (a file that failed to parse, a bad setting)."""
    for problem in problems:
        say("warning", problem)


def read_stdin(what: str) -> bytes:
    """All of stdin, up to the size llmtui reads of any file (`< /dev/zero` ends in an error, not a hang)."""
    from llmtui.store.files import MAX_FILE_BYTES

    data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidValue(f"the {what} on stdin is more than {MAX_FILE_BYTES:,} bytes")
    return data


def read_text(arg: str, what: str) -> str:
    """An argument, or stdin for '-'; stdin must be UTF-8."""
    if arg != "-":
        return arg
    data = read_stdin(what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidValue(
            f"the {what} on stdin is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def read_file(path: str) -> bytes:
    """The bytes of a file the user names: a regular file of bounded size, or one line saying why not."""
    from llmtui.store.files import read_regular

    try:
        return read_regular(Path(path))
    except FileNotFoundError:
        raise InvalidValue(f"cannot read {path}: no such file") from None


def out(text: str) -> None:
    """Write model output: escaped when a person is watching, raw bytes of data when piped."""
    sys.stdout.write(escape_controls(text) if sys.stdout.isatty() else text)
    sys.stdout.flush()


def table(rows: Sequence[Sequence[str]]) -> None:
    """Print rows as left-aligned columns; the first row is the header."""
    rows = [[escape_controls(str(c)) for c in row] for row in rows]  # ids and titles come from files
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def human_size(n: int) -> str:
    """Bytes as B, KB, MB or GB (powers of 1000)."""
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
