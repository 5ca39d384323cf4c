"""`llmtui run MODEL PROMPT`: one answer streamed to stdout, as text or as one JSON object per token."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from llmtui.cli.options import MODEL_SPEC_HELP, add_model_options, model_options, out, read_text, settings
from llmtui.core.errors import InvalidValue

_SAMPLING = ("temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens", "seed", "top_candidates")


def add_parser(sub: Any) -> None:
    """Register `run` on the verbs' subparsers."""
    run = sub.add_parser("run", help="answer one prompt without the TUI, streaming to stdout")
    run.add_argument("model", help=MODEL_SPEC_HELP)
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
    add_model_options(run)
    run.set_defaults(func=cmd_run)


def _sampling_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {n: getattr(args, n) for n in _SAMPLING if getattr(args, n) is not None}
    if args.stop:
        overrides["stop"] = tuple(args.stop)
    return overrides


def cmd_run(args: argparse.Namespace) -> int:
    """Answer one prompt: the settings' sampling with the flags on top, streamed to stdout."""
    from llmtui.core.sampling import SamplingParams

    prompt_text = read_text(args.prompt, "prompt")
    if not prompt_text.strip():
        raise InvalidValue("the prompt is empty")
    chosen = settings(args)
    overrides = {**chosen.sampling.to_overrides(), **_sampling_overrides(args)}
    SamplingParams(**overrides).validate()  # fail on a bad value before paying for the model load
    options = model_options(args, chosen, args.model)

    from llmtui.backends.local import LocalBackend

    backend = LocalBackend.load(options)
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
    stats = generation.stats
    if args.json and stats is not None:
        print(json.dumps(stats.to_dict()), flush=True)
    elif not args.json:
        out("\n")
    if args.verbose and stats is not None:
        print(
            f"prompt tokens {stats.prompt_tokens} · new tokens {stats.new_tokens} · ttft {stats.ttft_s:.3f} s · "
            f"{stats.tokens_per_second:.1f} tokens/s · stop: {stats.stop_reason} · "
            f"{backend.info.forward} forward pass, {backend.info.weights} weights",
            file=sys.stderr,
        )
    return 0
