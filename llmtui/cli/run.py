"""`llmtui run MODEL PROMPT`: one answer streamed to stdout, as text or as one JSON object per token."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from llmtui.cli.options import (
    MODEL_SPEC_HELP,
    add_model_options,
    add_remote_options,
    open_backend,
    out,
    read_text,
    settings,
)
from llmtui.core.errors import InvalidValue, LlmtuiError
from llmtui.core.sampling import SAMPLING_FIELDS


def add_parser(sub: Any) -> None:
    """Register `run` on the verbs' subparsers."""
    run = sub.add_parser("run", help="answer one prompt without the TUI, streaming to stdout")
    run.add_argument("model", help=MODEL_SPEC_HELP + "; with --url, the server's model id")
    run.add_argument("prompt", help="the prompt, or - to read it from stdin")
    run.add_argument("--system", help="system prompt")
    for f in SAMPLING_FIELDS:  # one flag per SamplingParams field: --top-k for top_k
        flag = "--" + f.name.replace("_", "-")
        if f.many:
            run.add_argument(flag, type=f.kind, action="append", help=f"{f.about} (repeatable)")
        else:
            run.add_argument(flag, type=f.kind, help=f"{f.about} ({f.rule})" if f.rule else f.about)
    run.add_argument("--json", action="store_true", help="one JSON object per token, then one with stats")
    run.add_argument("-v", "--verbose", action="store_true", help="print stats to stderr")
    add_model_options(run)
    add_remote_options(run)
    run.set_defaults(func=cmd_run)


def _sampling_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling flags given, by field name (the rest are left to the settings and the model)."""
    given = {f: getattr(args, f.name) for f in SAMPLING_FIELDS if getattr(args, f.name) is not None}
    return {f.name: tuple(v) if f.many else v for f, v in given.items()}


def cmd_run(args: argparse.Namespace) -> int:
    """Answer one prompt: the settings' sampling with the flags on top, streamed to stdout."""
    from llmtui.core.sampling import SamplingParams

    prompt_text = read_text(args.prompt, "prompt")
    if not prompt_text.strip():
        raise InvalidValue("the prompt is empty")
    chosen = settings(args)
    overrides = {**chosen.sampling.to_overrides(), **_sampling_overrides(args)}
    SamplingParams(**overrides).validate()  # fail on a bad value before paying for the model load
    backend = open_backend(args, chosen)
    params = backend.default_params(**overrides)
    system = args.system if args.system is not None else chosen.system_prompt
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
                out(event.text)
    except KeyboardInterrupt:
        generation.stop()
    except LlmtuiError:
        # The partial reply stays on stdout, ended by its stats (stop_reason "error") in JSON; the reason
        # goes on its own line to stderr.
        if args.json and generation.stats is not None:
            print(json.dumps(generation.stats.to_dict()), flush=True)
        elif generation.events and not args.json:
            out("\n")
        raise
    finally:
        backend.close()
    stats = generation.stats
    if args.json and any(e.prob is None for e in generation.events):
        print("llmtui: note: the server sent no log probabilities: the steps carry none", file=sys.stderr)
    if args.json and stats is not None:
        print(json.dumps(stats.to_dict()), flush=True)
    elif not args.json:
        out("\n")
    if args.verbose and stats is not None:
        engine = f"{backend.info.forward} forward pass, {backend.info.weights} weights"
        if backend.server:
            engine = f"served by {backend.server}"
        print(
            f"prompt tokens {stats.prompt_tokens} · new tokens {stats.new_tokens} · ttft {stats.ttft_s:.3f} s · "
            f"{stats.tokens_per_second:.1f} tokens/s · stop: {stats.stop_reason} · "
            f"{engine}",
            file=sys.stderr,
        )
    return 0
