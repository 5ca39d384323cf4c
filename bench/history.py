"""The conversation history: listing and full-text search over many saved conversations."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.common import Figure, best


def run(args: argparse.Namespace) -> list[Figure]:
    """Listing and searching many saved conversations."""
    figures: list[Figure] = []
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

        baseline = best(naive, 2)
        figures.append(
            Figure(
                f"history: list {count} conversations",
                best(listing, 3),
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
                best(search, 3),
                "s",
                "reading every file",
                baseline,
                higher_is_better=False,
            )
        )
        store.close()
    return figures
