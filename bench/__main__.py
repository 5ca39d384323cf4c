"""llmtui's benchmark suite: `python -m bench` (or `make bench`).

Every figure is a ratio against a baseline measured in the same run, because these machines are noisy:
a ratio holds where an absolute time does not. Prints a table and writes JSON to bench/results/.
`--quick` only checks that every benchmark still runs (CI does this); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import platform
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


@dataclass
class Figure:
    """One line of the table: what we measured, the baseline it is compared with, and the ratio."""

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    higher_is_better: bool = True
    target: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


def _best(fn: Callable[[], float], repeat: int) -> float:
    """The best of several timings: noise on a shared machine only ever adds time."""
    return min(fn() for _ in range(repeat))


# -- 1-3: the engine ---------------------------------------------------------------------------------------


def bench_engine(args: argparse.Namespace, figures: list[Figure]) -> None:
    import torch

    from llmtui.core.sampling import SamplingParams
    from llmtui.engine import loader as models
    from llmtui.engine.generation import Engine

    # The baseline runs on weights exactly as transformers loads them; the plain forward pass re-lays its own.
    options = {"device": args.device, "dtype": args.dtype}
    reference = models.load(args.model, forward="transformers", **options)
    loaded = models.load(args.model, **options)
    model = reference.model
    engines = {"transformers": Engine(reference)}
    if loaded.forward.name == "plain":
        engines["plain"] = Engine(loaded)
        if loaded.device.type == "cpu":
            engines["int8"] = Engine(models.load(args.model, quantize="int8", **options))
    engine = engines.get("plain", engines["transformers"])
    n = 8 if args.quick else 64
    prompt = engine.render([{"role": "user", "content": "Tell me a long story about a dragon who learns to code."}])
    ids = torch.tensor([prompt.ids], device=loaded.device)

    def sync() -> None:
        if loaded.device.type == "cuda":
            torch.cuda.synchronize()

    def bare() -> float:
        sync()
        start = time.perf_counter()
        out = model.generate(
            ids, do_sample=False, max_new_tokens=n, min_new_tokens=n, top_k=None, top_p=None, temperature=None
        )
        sync()
        return (out.shape[1] - ids.shape[1]) / (time.perf_counter() - start)

    # The engine stops at EOS; a stop string that never occurs does not change that, so compare rates.
    def ours(which: Engine) -> float:
        generation = which.generate(prompt, SamplingParams(max_new_tokens=n, top_candidates=10))
        start = time.perf_counter()
        count = sum(1 for _ in generation)
        sync()
        return count / (time.perf_counter() - start)

    with torch.inference_mode():
        bare(), [ours(e) for e in engines.values()]  # warm-up
        repeat = 1 if args.quick else 3
        rates_bare: list[float] = []
        rates: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(repeat):  # interleaved, so drift in the machine's speed hits all alike
            rates_bare.append(bare())
            for name, e in engines.items():
                rates[name].append(ours(e))
        continuation = model.generate(ids, do_sample=False, max_new_tokens=n, min_new_tokens=n)[0, ids.shape[1] :]
        reference_probs = _teacher_forced(engines["transformers"], prompt.ids, continuation)
    labels = {
        "transformers": ("engine decode, transformers forward", "≥0.95 (streaming overhead)"),
        "plain": ("engine decode, plain forward (exact)", "≥1.5 on CPU, ≥1.3 on GPU"),
        "int8": ("engine decode, plain forward, int8 weights", "opt-in"),
    }
    for name, e in engines.items():
        label, target = labels[name]
        probs = reference_probs if name == "transformers" else _teacher_forced(e, prompt.ids, continuation)
        agree = sum(int(p.argmax() == r.argmax()) for p, r in zip(probs, reference_probs, strict=True))
        drift = max(float((p - r).abs().max()) for p, r in zip(probs, reference_probs, strict=True))
        extra = {"greedy_agreement": agree / len(probs), "max_abs_dp": drift}
        rate = max(rates[name])
        figures.append(
            Figure(label, rate, "tok/s", "bare model.generate (greedy)", max(rates_bare), True, target, extra)
        )
        if name != "transformers":
            figures.append(
                Figure(
                    f"  {name}: greedy tokens as transformers', teacher-forced over {len(probs)} steps",
                    agree / len(probs),
                    "",
                    "",
                    0.0,
                    target=f"largest |Δp| {drift:.2g}",
                    extra=extra,
                )
            )
    best = max(rates.get("plain", rates["transformers"]))

    # The memory-bandwidth bound: every decode step reads every weight once.
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    size = (64 if args.quick else 512) << 20
    source = torch.ones(size // 4, dtype=torch.float32, device=loaded.device)
    target = torch.zeros_like(source)  # touched once here, so the timing holds no page faults

    def copy_bandwidth() -> float:
        sync()
        start = time.perf_counter()
        target.copy_(source)
        sync()
        return 2 * size / (time.perf_counter() - start)  # read + write

    bandwidth = _best(copy_bandwidth, 3 if args.quick else 7)
    bound = bandwidth / weight_bytes
    figures.append(
        Figure(
            f"engine decode ({engine.forward.name}) vs memory-bandwidth bound",
            best,
            "tok/s",
            "bandwidth / weight bytes",
            bound,
            extra={"bandwidth_GBps": bandwidth / 1e9, "weight_MB": weight_bytes / 1e6},
        )
    )

    # Time to first token for prompts of several lengths, against one bare forward pass over the prompt.
    lengths = (100,) if args.quick else (100, 1000, 4000)
    filler = "The quick brown fox jumps over the lazy dog. "
    for length in lengths:
        words = (filler * (length // 4 + 1)).split()
        text = " ".join(words)
        token_ids = loaded.tokenizer(text, add_special_tokens=False)["input_ids"][: length - 20]
        text = loaded.tokenizer.decode(token_ids)
        p = engine.render([{"role": "user", "content": text}])
        pids = torch.tensor([p.ids], device=loaded.device)

        def ttft(p=p) -> float:
            generation = engine.generate(p, SamplingParams(max_new_tokens=1))
            list(generation)
            return generation.stats.ttft_s

        def prefill(pids=pids) -> float:
            sync()
            start = time.perf_counter()
            with torch.inference_mode():
                model(input_ids=pids, logits_to_keep=1)
            sync()
            return time.perf_counter() - start

        figures.append(
            Figure(
                f"time to first token, {len(p.ids)}-token prompt",
                _best(ttft, 2),
                "s",
                "one bare forward pass",
                _best(prefill, 2),
                higher_is_better=False,
            )
        )


def _teacher_forced(engine: Any, prompt: tuple[int, ...], continuation: Any) -> list[Any]:
    """The raw next-token distribution at every step of a fixed continuation, through this engine's pass."""
    forward = engine.forward.begin(len(prompt) + len(continuation) + 1)
    logits = forward.prefill(prompt)
    probs = []
    for token in continuation:
        probs.append(logits.float().softmax(-1).cpu())
        logits = forward.step(token)
    return probs


# -- 4: the app --------------------------------------------------------------------------------------------

FIRST_PAINT = """
import sys, time
start = float(sys.argv[1])
from textual.app import App

stamps = {}
display = App._display


def first_frame(self, screen, renderable):
    # The first composed frame of the main screen (headless mode composes it, then skips the write).
    if renderable is not None and "paint" not in stamps:
        stamps["paint"] = time.time() - start
    return display(self, screen, renderable)


App._display = first_frame
if sys.argv[2] == "llmtui":
    from llmtui.tui.app import LlmtuiApp
    app = LlmtuiApp(model=sys.argv[3])
else:
    from textual.widgets import Static
    class Bare(App):
        def compose(self):
            yield Static("hello " * 400)
    app = Bare()
async def pilot(p):
    if sys.argv[2] == "llmtui":
        while p.app.backend is None and p.app.status.state != "error":
            await p.pause(0.02)
        stamps["ready"] = time.time() - start
    await p.pause(0.1)
    p.app.exit()
app.run(headless=True, auto_pilot=pilot)
print(stamps)
"""


def _run_first_paint(kind: str, model: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", FIRST_PAINT, repr(time.time()), kind, model],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def bench_app(args: argparse.Namespace, figures: list[Figure]) -> None:
    repeat = 1 if args.quick else 3
    ours = [_run_first_paint("llmtui", args.model) for _ in range(repeat)]
    bare = [_run_first_paint("bare", args.model) for _ in range(repeat)]
    figures.append(
        Figure(
            "start to first paint",
            min(o["paint"] for o in ours),
            "s",
            "a bare Textual app",
            min(b["paint"] for b in bare),
            higher_is_better=False,
            target="< 1 s",
        )
    )
    figures.append(
        Figure(
            "start to model ready (cached)",
            min(o["ready"] for o in ours),
            "s",
            "first paint",
            min(o["paint"] for o in ours),
            higher_is_better=False,
        )
    )
    latency, idle = asyncio.run(_keypress_latency(args))
    figures.append(
        Figure(
            "keypress to screen while streaming, p50",
            statistics.median(latency) * 1000,
            "ms",
            "same, idle",
            statistics.median(idle) * 1000,
            higher_is_better=False,
        )
    )
    p95 = sorted(latency)[int(0.95 * (len(latency) - 1))]
    figures.append(
        Figure(
            "keypress to screen while streaming, p95",
            p95 * 1000,
            "ms",
            "same, idle (p95)",
            sorted(idle)[int(0.95 * (len(idle) - 1))] * 1000,
            higher_is_better=False,
            target="< 50 ms",
        )
    )
    small, large = asyncio.run(_render_cost(args))
    figures.append(
        Figure(
            "render one token at token 10,000",
            large * 1000,
            "ms",
            "at token 100",
            small * 1000,
            higher_is_better=False,
            target="flat (≈1)",
        )
    )
    stream_app, stream_engine = asyncio.run(_stream_in_app(args))
    figures.append(Figure("decode rate inside the app", stream_app, "tok/s", "engine alone, same run", stream_engine))


async def _keypress_latency(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    from textual import events

    from llmtui.core.choices import ModelOptions
    from llmtui.core.sampling import SamplingParams
    from llmtui.tui.app import LlmtuiApp

    app = LlmtuiApp(options=ModelOptions(args.model, device=args.device, dtype=args.dtype))
    presses = 5 if args.quick else 40
    async with app.run_test(size=(160, 48)) as pilot:
        while app.backend is None:
            await pilot.pause(0.05)
        composer = app.query_one("#composer")

        async def press_times() -> list[float]:
            # Pilot.press waits for the app to be idle, which it never is while streaming; post the key
            # as the terminal driver does and time it until the composer has it, plus one frame to paint.
            times = []
            for _ in range(presses):
                before = composer.text
                start = time.perf_counter()
                app.post_message(events.Key("x", "x"))
                while composer.text == before:
                    await asyncio.sleep(0.0005)
                times.append(time.perf_counter() - start + 1 / 60)
                await asyncio.sleep(0.02)
            composer.text = ""
            return times

        idle = await press_times()
        app.params = SamplingParams(max_new_tokens=4000, stop=())
        composer.text = "Tell me a very long story."
        composer.action_submit()
        while app.generation is None:
            await pilot.pause(0.01)
        while not app.generation.events:
            await pilot.pause(0.01)
        composer.focus()
        streaming = await press_times()
        app.generation and app.generation.stop()
        while app.generation is not None:
            await pilot.pause(0.05)
    return streaming, idle


async def _render_cost(args: argparse.Namespace) -> tuple[float, float]:
    """The cost of one more token in the token stream when it already holds 100 or 10,000."""
    from textual.app import App, ComposeResult

    from llmtui.core.events import Candidate, TokenEvent
    from llmtui.tui.widgets.token_stream import TokenChips

    def event(i: int) -> TokenEvent:
        return TokenEvent(i, i % 500, f" w{i % 97}", random.random(), 1.0, 0, 1.0, (Candidate(1, "a", 0.5),), 0.0)

    class Stream(App):
        def compose(self) -> ComposeResult:
            yield TokenChips()

    results = []
    for existing in (100, 10_000):
        app = Stream()
        async with app.run_test(size=(120, 40)) as pilot:
            chips = app.query_one(TokenChips)
            chips.show([event(i) for i in range(existing)])
            await pilot.pause()
            times = []
            for i in range(20 if args.quick else 200):
                start = time.perf_counter()
                chips.append([event(existing + i)])
                await pilot.pause()
                times.append(time.perf_counter() - start)
            results.append(statistics.median(times))
    return results[0], results[1]


async def _stream_in_app(args: argparse.Namespace) -> tuple[float, float]:
    from llmtui.core.choices import ModelOptions
    from llmtui.core.sampling import SamplingParams
    from llmtui.tui.app import LlmtuiApp

    n = 8 if args.quick else 64
    app = LlmtuiApp(options=ModelOptions(args.model, device=args.device, dtype=args.dtype))
    async with app.run_test(size=(200, 50)) as pilot:
        while app.backend is None:
            await pilot.pause(0.05)
        params = SamplingParams(max_new_tokens=n)
        text = "Tell me a long story about a dragon who learns to code."
        prompt = app.backend.render([{"role": "user", "content": text}])
        alone = await asyncio.to_thread(lambda: _rate(app.backend.generate(prompt, params)))
        app.params = params
        composer = app.query_one("#composer")
        composer.text = text
        composer.action_submit()
        while app.generation is None:
            await pilot.pause(0.01)
        while app.generation is not None:
            await pilot.pause(0.05)
        stats = app.conversation.turns[-1].version.stats
    return stats.tokens_per_second, alone


def _rate(generation: Any) -> float:
    list(generation)
    return generation.stats.tokens_per_second


# -- 5: the inspector --------------------------------------------------------------------------------------


def bench_inspector(args: argparse.Namespace, figures: list[Figure]) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    from llmtui.core.tokens import TokenizerView
    from llmtui.engine import specs as llm_models

    backend = llm_models.load_tokenizer(args.model)
    view = TokenizerView(backend, args.model)
    size = 100_000 if args.quick else 1_000_000
    sample = "Tokenizers cut text into pieces. 分词器把文本切成小块。 Emoji 🙂 too.\n"
    text = (sample * (size // len(sample.encode()) + 1)).encode()[:size].decode(errors="ignore")
    first_screen, encode_only = asyncio.run(_inspector_first_screen(view, text))
    figures.append(
        Figure(
            f"inspector: {len(text.encode()) / 1e6:.1f} MB of text to its first screen",
            first_screen,
            "s",
            "tokenizer.encode alone",
            encode_only,
            higher_is_better=False,
        )
    )

    # A 150,000-token vocabulary, as large as Qwen's.
    rng = random.Random(0)
    pieces = {"".join(rng.choices(string.ascii_letters + "ĠĊ", k=rng.randint(2, 9))) for _ in range(160_000)}
    vocab = {p: i for i, p in enumerate(sorted(pieces)[:150_000])}
    big = Tokenizer(models.WordLevel(vocab, unk_token=next(iter(vocab))))
    big.pre_tokenizer = pre_tokenizers.Whitespace()
    big_view = TokenizerView(big, "150k")
    big_view.search("warm")  # builds the display table once, as the app does on the first search
    queries = ["abc", "Ġth", "zz", "Qx"]

    def ours() -> float:
        start = time.perf_counter()
        for q in queries:
            big_view.search(q)
        return (time.perf_counter() - start) / len(queries)

    def naive() -> float:
        start = time.perf_counter()
        for q in queries:
            [i for i in range(big_view.size) if q in (big.id_to_token(i) or "")]
        return (time.perf_counter() - start) / len(queries)

    figures.append(
        Figure(
            "vocabulary search, 150,000 tokens",
            _best(ours, 3) * 1000,
            "ms",
            "scan via tokenizer.id_to_token",
            _best(naive, 1) * 1000,
            higher_is_better=False,
        )
    )


async def _inspector_first_screen(view: Any, text: str) -> tuple[float, float]:
    from textual.app import App, ComposeResult

    from llmtui.tui.widgets.inspector import Inspector

    class One(App):
        def compose(self) -> ComposeResult:
            yield Inspector()

    app = One()
    async with app.run_test(size=(160, 48)) as pilot:
        inspector = app.query_one(Inspector)
        inspector.view = view
        start = time.perf_counter()
        inspector.show_text(text, title="1 MB")
        while inspector.tokenization is None:
            await pilot.pause(0.01)
        await pilot.pause()
        first_screen = time.perf_counter() - start
    start = time.perf_counter()
    view.backend.encode(text)
    return first_screen, time.perf_counter() - start


# -- 6: history --------------------------------------------------------------------------------------------


def bench_history(args: argparse.Namespace, figures: list[Figure]) -> None:
    from llmtui.core.conversation import Conversation, Turn, Version
    from llmtui.store.conversations import ConversationStore

    count = 500 if args.quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        store = ConversationStore(Path(tmp) / "conversations")
        for i in range(count):
            c = Conversation(id=f"c{i:05d}", title=f"conversation {i}", updated=float(i))
            c.turns.append(Turn("user", [Version(f"message number {i} about dragons and code " * 5)]))
            c.turns.append(Turn("assistant", [Version("a reply " * 50)]))
            (store.root / f"{c.id}.json").write_text(json.dumps(c.to_dict()))
        start = time.perf_counter()
        store.list()
        first = time.perf_counter() - start

        def listing() -> float:
            start = time.perf_counter()
            store.list()
            return time.perf_counter() - start

        def search() -> float:
            start = time.perf_counter()
            store.list("number 4242")
            return time.perf_counter() - start

        def naive() -> float:
            start = time.perf_counter()
            for path in store.root.glob("*.json"):
                json.loads(path.read_bytes())
            return time.perf_counter() - start

        baseline = _best(naive, 2)
        figures.append(
            Figure(
                f"history: list {count} conversations",
                _best(listing, 3),
                "s",
                "reading every file",
                baseline,
                higher_is_better=False,
                extra={"first_listing_builds_index_s": first},
            )
        )
        figures.append(
            Figure(
                f"history: full-text search over {count}",
                _best(search, 3),
                "s",
                "reading every file",
                baseline,
                higher_is_better=False,
            )
        )
        store.close()


# -- the runner --------------------------------------------------------------------------------------------

SUITES = {"engine": bench_engine, "app": bench_app, "inspector": bench_inspector, "history": bench_history}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--model", default="default", help="model spec (default: the bundled SmolLM2-135M)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--quick", action="store_true", help="only check that every benchmark runs")
    parser.add_argument("--only", choices=sorted(SUITES), action="append", help="run only these suites")
    parser.add_argument("--json", help="write results here (default: bench/results/<time>.json)")
    args = parser.parse_args(argv)
    os.environ.setdefault("LLMTUI_DATA_DIR", tempfile.mkdtemp(prefix="llmtui-bench-"))
    os.environ.setdefault("LLMTUI_CONFIG_DIR", tempfile.mkdtemp(prefix="llmtui-bench-"))
    figures: list[Figure] = []
    for name in args.only or list(SUITES):
        started = time.perf_counter()
        SUITES[name](args, figures)
        print(f"[{name}: {time.perf_counter() - started:.0f} s]", file=sys.stderr)
    machine = _machine(args)
    print(f"\nllmtui benchmarks · {machine['device']} · model {args.model}{' · QUICK' if args.quick else ''}")
    rows = [("figure", "value", "baseline", "ratio", "target")]
    for f in figures:
        better = "↑" if f.higher_is_better else "↓"
        compared = bool(f.baseline_name)  # a figure without a baseline is a fact, not a ratio
        rows.append(
            (
                f.name,
                f"{f.value:.3g} {f.unit}".rstrip(),
                f"{f.baseline:.3g} {f.unit} ({f.baseline_name})" if compared else "",
                f"{f.ratio:.2f} {better}" if compared else "",
                f.target,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    out = Path(args.json) if args.json else RESULTS / time.strftime("%Y%m%d-%H%M%S.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "quick": args.quick,
                "model": args.model,
                "figures": [{**f.__dict__, "ratio": f.ratio if f.baseline_name else None} for f in figures],
            },
            indent=1,
            ensure_ascii=False,
        )
    )
    print(f"\nwritten to {out}")
    return 0


def _machine(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    device = f"CPU {platform.processor() or platform.machine()} × {os.cpu_count()} cores"
    if torch.cuda.is_available() and args.device != "cpu":
        device = torch.cuda.get_device_name(0)
    return {
        "device": device,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


if __name__ == "__main__":
    raise SystemExit(main())
