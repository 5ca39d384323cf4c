"""The command line, in ollama's habits: chat (the TUI), run, list, show, tokenize, history, config.

Every failure a user can cause ends in one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from llmtui.core.errors import InvalidValue, LlmtuiError
from llmtui.core.text import escape_controls

EXIT_ERROR = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _read_text(arg: str, what: str) -> str:
    """An argument, or stdin for '-'; stdin must be UTF-8."""
    if arg != "-":
        return arg
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidValue(
            f"the {what} on stdin is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _out(text: str) -> None:
    """Write model output: escaped when a person is watching, raw bytes of data when piped."""
    sys.stdout.write(escape_controls(text) if sys.stdout.isatty() else text)
    sys.stdout.flush()


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _settings(args: argparse.Namespace) -> Any:
    from llmtui.store.settings import load_settings

    settings, problems = load_settings(getattr(args, "config", None))
    for problem in problems:
        print(f"llmtui: warning: {problem}", file=sys.stderr)
    return settings


# -- run -----------------------------------------------------------------------------------------------------


def _sampling_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "temperature",
        "top_k",
        "top_p",
        "repetition_penalty",
        "max_new_tokens",
        "seed",
        "top_candidates",
    )
    overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.stop:
        overrides["stop"] = tuple(args.stop)
    return overrides


def _model_options(args: argparse.Namespace, settings: Any, model: str | None) -> Any:
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


def cmd_run(args: argparse.Namespace) -> int:
    from llmtui.core.sampling import SamplingParams

    prompt_text = _read_text(args.prompt, "prompt")
    if not prompt_text.strip():
        raise InvalidValue("the prompt is empty")
    settings = _settings(args)
    overrides = {**settings.sampling.to_overrides(), **_sampling_overrides(args)}
    SamplingParams(**overrides).validate()  # fail on a bad value before paying for the model load
    options = _model_options(args, settings, args.model)

    from llmtui.backends.local import LocalBackend

    backend = LocalBackend.load(options)
    params = backend.default_params(**overrides)
    system = args.system if args.system is not None else settings.system_prompt
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt_text}]
    prompt = backend.render(messages, reserve=params.max_new_tokens)
    if not prompt.templated:
        print("llmtui: note: the tokenizer has no chat template; using the plain format", file=sys.stderr)
    generation = backend.generate(prompt, params)
    try:
        for event in generation:
            if args.json:
                print(json.dumps(event.to_dict(), ensure_ascii=False), flush=True)
            else:
                _out(event.text)
    except KeyboardInterrupt:
        generation.stop()
    stats = generation.stats
    if args.json and stats is not None:
        print(json.dumps(stats.to_dict()), flush=True)
    elif not args.json:
        _out("\n")
    if args.verbose and stats is not None:
        print(
            f"prompt tokens {stats.prompt_tokens} · new tokens {stats.new_tokens} · ttft {stats.ttft_s:.3f} s · "
            f"{stats.tokens_per_second:.1f} tokens/s · stop: {stats.stop_reason} · "
            f"{backend.info.forward} forward pass, {backend.info.weights} weights",
            file=sys.stderr,
        )
    return 0


# -- list / show ---------------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from llmtui.engine import models

    settings = _settings(args)
    entries = models.list_models(settings.model_dirs)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    rows = [("NAME", "ARCHITECTURE", "SIZE", "SOURCE")]
    rows += [(escape_controls(e.spec), e.architecture, _human_size(e.size_bytes), e.where) for e in entries]
    _table(rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from llmtui.engine import models

    info = models.describe(args.model)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2, ensure_ascii=False))
        return 0
    params = f"{info.parameters / 1e6:.1f}M" if info.parameters else "unknown"
    print(f"  model           {escape_controls(info.name)}")
    print(f"  path            {escape_controls(info.path)}")
    print(f"  architecture    {info.architecture} ({info.model_type})")
    print(f"  parameters      {params}")
    print(f"  context length  {info.context_length or 'unknown'}")
    print(f"  vocabulary      {info.vocab_size}")
    print(f"  weights         {_human_size(info.size_bytes)} · {info.fingerprint}")
    print(f"  forward pass    {'plain' if info.forward == 'plain' else 'transformers: ' + info.forward}")
    print("  special tokens")
    for name, token in info.special_tokens.items():
        print(f"    {name:<14}{escape_controls(token)} ({info.special_token_ids[name]})")
    print("  chat template")
    template = info.chat_template or "(none: llmtui uses its plain format)"
    for line in escape_controls(template).splitlines():
        print(f"    {line}")
    return 0


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


# -- tokenize ------------------------------------------------------------------------------------------------


def cmd_tokenize(args: argparse.Namespace) -> int:
    from llmtui.core.tokens import TokenizerView
    from llmtui.engine import models

    text = _read_text(args.text, "text")
    if not text:
        raise InvalidValue("the text is empty")
    settings = _settings(args)
    specs = [args.model or settings.model, *([args.compare] if args.compare else [])]
    results = []
    for spec in specs:
        view = TokenizerView(models.load_tokenizer(spec), spec)
        if args.ids:
            try:
                ids = [int(x) for x in text.replace(",", " ").split()]
            except ValueError:
                raise InvalidValue("--ids takes whole numbers separated by spaces or commas") from None
            results.append(view.from_ids(ids))
        else:
            results.append(view.tokenize(text))
    if args.json:
        payload = [r.to_dict() for r in results]
        print(json.dumps(payload if args.compare else payload[0], ensure_ascii=False))
        return 0
    for result in results:
        print(f"{escape_controls(result.view.name)} ({result.view.family}, vocabulary {result.view.size})")
        rows = [("INDEX", "ID", "PIECE", "TEXT", "START", "END", "SPECIAL")]
        rows += [
            (
                str(t.index),
                str(t.token_id),
                escape_controls(t.piece),
                t.display,
                str(t.start),
                str(t.end),
                "yes" if t.special else "",
            )
            for t in result
        ]
        _table(rows)
        if args.ids:
            print(f"text: {escape_controls(result.text)}")
        print(
            f"{result.count} tokens · {result.chars} chars · {result.bytes} bytes · "
            f"{result.chars_per_token:.2f} chars/token\n"
        )
    return 0


# -- chat ----------------------------------------------------------------------------------------------------


def cmd_chat(args: argparse.Namespace) -> int:
    from llmtui.store.settings import load_settings
    from llmtui.tui.app import LlmtuiApp

    # Problems in settings.toml are shown inside the app, where they are not scrolled away.
    settings, problems = load_settings(args.config)
    app = LlmtuiApp(
        settings=settings,
        notices=[str(p) for p in problems],
        options=_model_options(args, settings, args.model),
        config_path=args.config,
    )
    app.run()
    return app.return_code or 0


# -- history -------------------------------------------------------------------------------------------------


def cmd_history(args: argparse.Namespace) -> int:
    from llmtui.store import conversations as store_mod

    store = store_mod.ConversationStore()
    action = args.action
    if action == "list":
        summaries, problems = store.list(args.search or "", limit=args.limit)
        for problem in problems:
            print(f"llmtui: warning: {problem}", file=sys.stderr)
        if args.json:
            print(json.dumps([s.to_dict() for s in summaries], ensure_ascii=False, indent=1))
            return 0
        import time as _time

        rows = [("ID", "UPDATED", "TURNS", "TITLE")]
        rows += [
            (
                s.id,
                _time.strftime("%Y-%m-%d %H:%M", _time.localtime(s.updated)),
                str(s.turns),
                escape_controls(s.title),
            )
            for s in summaries
        ]
        _table(rows)
        return 0
    if action == "import":
        source = args.target or "-"
        raw = _read_text(source, "file") if source == "-" else _read_file(source)
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            where = "stdin" if source == "-" else source
            raise InvalidValue(f"{where} is not JSON (line {exc.lineno}: {exc.msg})") from None
        conversation = store_mod.from_openai(data)
        result = store.save(conversation)
        print(result.id)
        return 0
    if not args.target:
        raise InvalidValue(f"usage: llmtui history {action} ID")
    if action == "rm":
        store.delete(args.target)
        print(f"moved {args.target} to the trash")
        return 0
    conversation = store.load(args.target)
    if action == "show":
        if args.json:
            print(json.dumps(conversation.to_dict(), ensure_ascii=False, indent=1))
        else:
            _out(store_mod.to_markdown(conversation))
        return 0
    if action == "export":
        fmt = args.format
        text = (
            store_mod.to_markdown(conversation)
            if fmt == "markdown"
            else json.dumps(
                store_mod.to_openai(conversation) if fmt == "openai" else conversation.to_dict(),
                ensure_ascii=False,
                indent=1,
            )
        )
        if args.output:
            from pathlib import Path

            from llmtui.store.files import atomic_write

            atomic_write(Path(args.output), text.encode("utf-8"))
        else:
            _out(text if text.endswith("\n") else text + "\n")
        return 0
    if action == "replay":
        return _replay(args, conversation)
    raise InvalidValue(f"unknown history action {action}")


def _read_file(path: str) -> str:
    from pathlib import Path

    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidValue(f"cannot read {path}: {exc}") from None


def _replay(args: argparse.Namespace, conversation: Any) -> int:
    from llmtui.core.replay import playback, rerun

    if not args.rerun:
        for turn in conversation.turns:
            if turn.role == "user":
                _out(f"\n> {turn.content}\n\n")
            elif turn.version.events:
                for event in playback(turn.version.events, args.speed):
                    _out(event.text)
                _out("\n")
            else:
                _out(turn.content + "\n")
        return 0
    from llmtui.backends.local import LocalBackend

    settings = _settings(args)
    backend = LocalBackend.load(_model_options(args, settings, args.model or conversation.model))
    params = backend.default_params(**{**settings.sampling.to_overrides(), "temperature": 0.0})
    for divergence in rerun(backend, conversation, params):
        print(divergence.describe(backend.view.display))
    return 0


def _add_history_commands(sub: Any) -> None:
    history = sub.add_parser("history", help="saved conversations: list, show, export, import, rm, replay")
    history.add_argument("action", choices=("list", "show", "export", "import", "rm", "replay"))
    history.add_argument("target", nargs="?", help="conversation id (import: a file, or - for stdin)")
    history.add_argument("--search", help="list: only conversations whose title or messages contain this")
    history.add_argument("--limit", type=int, help="list: at most this many")
    history.add_argument("--json", action="store_true")
    history.add_argument("--format", choices=("markdown", "openai", "json"), default="markdown", help="export format")
    history.add_argument("-o", "--output", help="export: write to this file")
    history.add_argument("--speed", type=float, default=1.0, help="replay: times the recorded speed (0: at once)")
    history.add_argument("--rerun", action="store_true", help="replay: re-run with the current model, show departures")
    history.add_argument("--model", help="replay --rerun: the model to use (default: the conversation's)")
    _add_model_options(history)
    history.set_defaults(func=cmd_history)


# -- config --------------------------------------------------------------------------------------------------


def cmd_config(args: argparse.Namespace) -> int:
    from llmtui.store.settings import load_settings, parse_value, save_settings, settings_path

    path = settings_path(args.config)
    if args.action == "path":
        print(path)
        return 0
    settings, problems = load_settings(path)
    for problem in problems:
        print(f"llmtui: warning: {problem}", file=sys.stderr)
    if args.action == "show":
        import tomli_w

        print(tomli_w.dumps(settings.to_toml_dict()), end="")
        return 0
    if not args.key or args.value is None:
        raise InvalidValue("usage: llmtui config set KEY VALUE")
    settings = settings.with_value(args.key, parse_value(args.value))
    save_settings(settings, path)
    print(f"{args.key} = {settings.get(args.key)!r}")
    return 0


def _add_config_commands(sub: Any) -> None:
    config = sub.add_parser("config", help="settings: path, show, set KEY VALUE")
    config.add_argument("action", choices=("path", "show", "set"))
    config.add_argument("key", nargs="?", help="dotted key, e.g. sampling.temperature")
    config.add_argument("value", nargs="?", help='a TOML value (0.2, true, "text") or plain text')
    config.set_defaults(func=cmd_config)


# -- the parser ----------------------------------------------------------------------------------------------


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), help="weights dtype (auto)")
    p.add_argument(
        "--forward",
        choices=("auto", "plain", "transformers"),
        help="decode with llmtui's plain forward pass (Llama family) or transformers' (auto: plain where it runs)",
    )
    p.add_argument(
        "--quantize", choices=("none", "int8"), help="int8: faster CPU decoding, probabilities move slightly (none)"
    )
    p.add_argument("--trust-remote-code", action="store_true", help="run a model's own Python code (off by default)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llmtui", description="A terminal chat workstation for local language models.")
    parser.add_argument("--config", help="settings file to use instead of the platform's settings.toml")
    parser.add_argument("--version", action="version", version=f"llmtui {__import__('llmtui').__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    chat = sub.add_parser("chat", help="start the chat workstation (the default command)")
    chat.add_argument("model", nargs="?", help="model spec: default, a directory, a .gguf file or a hub id")
    _add_model_options(chat)
    chat.set_defaults(func=cmd_chat)

    run = sub.add_parser("run", help="answer one prompt without the TUI, streaming to stdout")
    run.add_argument("model", help="model spec: default, a directory, a .gguf file or a hub id")
    run.add_argument("prompt", help="the prompt, or - to read it from stdin")
    run.add_argument("--system", help="system prompt")
    run.add_argument("--temperature", type=float, help="0 means greedy")
    run.add_argument("--top-k", type=int, help="0 means off")
    run.add_argument("--top-p", type=float, help="1 means off")
    run.add_argument("--repetition-penalty", type=float)
    run.add_argument("--max-new-tokens", type=int)
    run.add_argument("--seed", type=int)
    run.add_argument("--stop", action="append", help="stop string (repeatable)")
    run.add_argument("--top-candidates", type=int, help="candidates recorded per step (default 10)")
    run.add_argument("--json", action="store_true", help="one JSON object per token, then one with stats")
    run.add_argument("-v", "--verbose", action="store_true", help="print stats to stderr")
    _add_model_options(run)
    run.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", help="list the models llmtui can find")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="architecture, size, context, vocabulary, special tokens, chat template")
    show.add_argument("model")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)

    tok = sub.add_parser("tokenize", help="show how a tokenizer cuts text (never loads weights)")
    tok.add_argument("text", help="the text, or - to read it from stdin")
    tok.add_argument("--model", help="model or tokenizer directory (default: the settings' model)")
    tok.add_argument("--ids", action="store_true", help="decode token ids instead of tokenizing text")
    tok.add_argument("--compare", metavar="MODEL2", help="tokenize with a second tokenizer too")
    tok.add_argument("--json", action="store_true")
    tok.set_defaults(func=cmd_tokenize)

    _add_config_commands(sub)
    _add_history_commands(sub)
    # Bare `llmtui` is `llmtui chat`.
    parser.set_defaults(
        func=cmd_chat, model=None, device=None, dtype=None, forward=None, quantize=None, trust_remote_code=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `llmtui` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LlmtuiError as exc:
        print(f"llmtui: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`| head`); nothing left to say
        return 0
