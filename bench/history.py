"""The conversation history: listing and full-text search over many saved conversations."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.common import Figure, best_of_both, timed


def run(args: argparse.Namespace) -> list[Figure]:
    """Listing and searching many saved conversations, against reading (and searching) every file."""
    from llmtui.core.conversation import Conversation, Turn, Version
    from llmtui.store.conversations import ConversationStore

    figures: list[Figure] = []
    count = 500 if args.quick else 10_000
    repeat = 3
    query = "number 4242"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "conversations"
        store = ConversationStore(root)
        for i in range(count):
            c = Conversation(id=f"c{i:05d}", title=f"conversation {i}", updated=float(i))
            c.turns.append(Turn("user", [Version(f"message number {i} about dragons and code " * 5)]))
            c.turns.append(Turn("assistant", [Version("a reply " * 50)]))
            (store.root / f"{c.id}.json").write_text(json.dumps(c.to_dict()))

        def read_every_file() -> None:
            for path in store.root.glob("*.json"):
                json.loads(path.read_bytes())

        def search_every_file() -> None:
            # What the index saves: parse every file and look for the words in its title and messages.
            wanted = query.lower()
            for path in store.root.glob("*.json"):
                data = json.loads(path.read_bytes())
                texts = [data.get("title") or "", data.get("system") or ""]
                texts += [v.get("content", "") for t in data.get("turns", []) for v in t.get("versions", [])]
                any(wanted in text.lower() for text in texts)

        def first_listing() -> None:
            # A store with no index yet: its first listing builds it from every file.
            nonlocal store
            store.close()
            for suffix in ("", "-wal", "-shm"):
                (root.parent / f"index.sqlite{suffix}").unlink(missing_ok=True)
            store = ConversationStore(root)
            store.list()

        # Indexes not built, for either: the first listing against reading every file once.
        built, read = best_of_both(timed(first_listing), timed(read_every_file), repeat, warm=False)
        figures.append(
            Figure(
                f"history: first listing of {count} (builds its index)",
                built,
                "s",
                "reading every file",
                read,
                higher_is_better=False,
            )
        )
        # Built: the store's index is up to date (as from the second listing on); the files are in the
        # page cache for the baseline, as for the store's own checks of them.
        listed, read = best_of_both(timed(store.list), timed(read_every_file), repeat)
        figures.append(
            Figure(
                f"history: list {count} conversations",
                listed,
                "s",
                "reading every file",
                read,
                higher_is_better=False,
                extra={"first_listing_builds_index_s": built},
            )
        )
        found, searched = best_of_both(timed(lambda: store.list(query)), timed(search_every_file), repeat)
        figures.append(
            Figure(
                f"history: full-text search over {count}",
                found,
                "s",
                "reading and searching every file",
                searched,
                higher_is_better=False,
            )
        )
        store.close()
    return figures
