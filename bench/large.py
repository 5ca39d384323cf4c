"""Large inputs: the history listing a 50 MB conversation, and `llmtui tokenize` of 5 MB of text, each
against the least any tool must do with the same input (parsing the file; cutting the text)."""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Figure, Target, best_of_both

ROOT = Path(__file__).parent.parent
WITHIN = Target("≤ 1.5", lambda f: f.ratio <= 1.5)


def run(args: argparse.Namespace) -> list[Figure]:
    """Both figures, on inputs built here."""
    with tempfile.TemporaryDirectory(prefix="llmtui-bench-") as tmp:
        return [history(Path(tmp), args), tokenize(Path(tmp), args)]


def history(tmp: Path, args: argparse.Namespace) -> Figure:
    """The first `history list` over one large conversation (replies with every step recorded, as the
    workstation saves them), which builds its index entry, against json.loads of the file."""
    import json

    from llmtui.core.conversation import Conversation, Turn, Version
    from llmtui.core.events import Candidate, TokenEvent
    from llmtui.store.conversations import ConversationStore

    megabytes = 2 if args.quick else 50
    root = tmp / "conversations"
    store = ConversationStore(root)
    conversation = Conversation(id="large", title="a large conversation")
    candidates = tuple(Candidate(100 + m, f"piece{m}", 0.05) for m in range(10))
    steps = [TokenEvent(j, 100 + j, " word", 0.5, 0.5, 0, 1.0, candidates, 0.01 * j) for j in range(200)]
    for i in range(megabytes * 1_000_000 // 137_000):  # a question and its reply of 200 steps: 137 KB
        conversation.turns.append(Turn("user", [Version(f"Question {i} about things " * 10)]))
        conversation.turns.append(Turn("assistant", [Version(" word" * 200, events=list(steps))]))
    store.save(conversation)
    path = store.path(conversation.id)
    store.close()
    index = root.parent / "index.sqlite"

    def listing() -> float:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{index}{suffix}").unlink(missing_ok=True)
        fresh = ConversationStore(root)
        start = time.perf_counter()
        fresh.list()
        took = time.perf_counter() - start
        fresh.close()
        return took

    def parse() -> float:
        start = time.perf_counter()
        json.loads(path.read_bytes())
        return time.perf_counter() - start

    ours, bare = best_of_both(listing, parse, 1 if args.quick else 3)
    size = path.stat().st_size / 1e6
    return Figure(
        f"history: first listing of a {size:.0f} MB conversation",
        ours,
        "s",
        "json.loads of the file",
        bare,
        higher_is_better=False,
        target=WITHIN,
    )


def tokenize(tmp: Path, args: argparse.Namespace) -> Figure:
    """`llmtui tokenize -` of a large text to a pipe against a process that loads the same tokenizer and
    only encodes the text: the same start, the same load."""
    megabytes = 0.2 if args.quick else 5
    words = (ROOT / "README.md").read_text(encoding="utf-8").split()
    rng = random.Random(0)
    lines, size = [], 0
    while size < megabytes * 1_000_000:
        lines.append(" ".join(rng.choice(words) for _ in range(12)) + "\n")
        size += len(lines[-1])
    text = tmp / "text.txt"
    text.write_text("".join(lines), encoding="utf-8")
    encode_only = (
        "import sys; from llmtui.engine.specs import load_tokenizer; "
        "load_tokenizer(sys.argv[1]).encode(sys.stdin.read())"
    )

    def child(*command: str) -> float:
        with text.open("rb") as stdin, tempfile.TemporaryFile() as errors:
            start = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, *command], stdin=stdin, stdout=subprocess.PIPE, stderr=errors, cwd=ROOT
            )
            assert process.stdout is not None
            while process.stdout.read(1 << 20):  # a reader that keeps up, as `| less` or `| grep` does
                pass
            status = process.wait()
            took = time.perf_counter() - start
            if status:
                errors.seek(0)
                raise RuntimeError(f"{' '.join(command[:3])} failed: {errors.read().decode()[-500:]}")
        return took

    ours, bare = best_of_both(
        lambda: child("-m", "llmtui", "tokenize", "--model", args.model, "-"),
        lambda: child("-c", encode_only, args.model),
        1 if args.quick else 3,
    )
    return Figure(
        f"tokenize {size / 1e6:.1f} MB of text to a pipe",
        ours,
        "s",
        "encode alone (same process start, same tokenizer)",
        bare,
        higher_is_better=False,
        target=WITHIN,
    )
