"""Conversation <-> one JSON file each, with a search index, import and export.

The JSON files are the truth: readable, editable, one per conversation. The SQLite index beside them is
a cache (listing and full-text search stay fast with 10,000 conversations); it is brought up to date from
the files' modification times and rebuilt from scratch if it is ever damaged.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.core.errors import InvalidValue, LlmtuiError
from llmtui.store.files import atomic_write, data_dir, private_dir

INDEX_SCHEMA = 2


class StoreError(LlmtuiError):
    """A conversation file cannot be read or written; the message names the file and why."""


@dataclass(frozen=True)
class Summary:
    """One line of the history list."""

    id: str
    title: str
    updated: float
    model: str
    turns: int
    preview: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SaveResult:
    """Where a save went. ``forked``: another llmtui saved this conversation meanwhile, so ours was kept
    as a new conversation instead of overwriting theirs."""

    id: str
    path: Path
    forked: bool = False


def _body(turns: list[Turn]) -> Iterator[str]:
    for turn in turns:
        for version in turn.versions:
            yield version.content
            if version.rest:
                yield from _body(version.rest)


class ConversationStore:
    """The conversations directory: save, load, list, search, rename, delete (with undo), duplicate."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = private_dir(root or data_dir() / "conversations")
        self._trash = self.root / ".trash"
        self._db: sqlite3.Connection | None = None

    def path(self, conversation_id: str) -> Path:
        if not conversation_id or "/" in conversation_id or conversation_id.startswith("."):
            raise StoreError(f"not a conversation id: {conversation_id!r}")
        return self.root / f"{conversation_id}.json"

    # -- files ------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, conversation_id: str) -> Iterator[None]:
        """An exclusive lock per conversation, across processes (two llmtui instances)."""
        lock_path = self.root / f".{conversation_id}.lock"
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def save(self, conversation: Conversation) -> SaveResult:
        """Write atomically. If another process saved a newer revision since we read it, ours is saved
        as a fork with a new id; neither side loses a turn."""
        with self._locked(conversation.id):
            on_disk = self._revision_on_disk(conversation.id)
            if on_disk is None or on_disk == conversation.revision:
                return self._write(conversation, forked=False)
        original = conversation.id
        conversation.id = Conversation().id  # unique: no other writer can hold it
        conversation.title = f"{conversation.title} (fork)"
        conversation.revision = 0
        conversation.sampling = {**conversation.sampling, "forked_from": original}
        return self._write(conversation, forked=True)

    def _write(self, conversation: Conversation, *, forked: bool) -> SaveResult:
        conversation.revision += 1
        path = self.path(conversation.id)
        data = json.dumps(conversation.to_dict(), ensure_ascii=False, indent=1).encode("utf-8")
        try:
            atomic_write(path, data)
        except OSError as exc:
            conversation.revision -= 1
            raise StoreError(f"cannot save {path}: {exc.strerror or exc}") from None
        return SaveResult(conversation.id, path, forked)

    def _revision_on_disk(self, conversation_id: str) -> int | None:
        try:
            return int(json.loads(self.path(conversation_id).read_bytes()).get("revision", 0))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, AttributeError):
            return None  # unreadable: saving over it is how the user repairs it

    def load(self, conversation_id: str) -> Conversation:
        """Read one conversation; StoreError names the file and the reason."""
        path = self.path(conversation_id)
        return self.read_file(path)

    @staticmethod
    def read_file(path: Path) -> Conversation:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"no conversation {path.stem} ({path} does not exist)") from None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            return Conversation.from_dict(json.loads(raw))
        except UnicodeDecodeError:
            raise StoreError(f"{path} is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise StoreError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{path} is not an llmtui conversation ({exc})") from None

    def delete(self, conversation_id: str) -> None:
        """Move a conversation to the trash (``restore`` brings it back)."""
        path = self.path(conversation_id)
        if not path.exists():
            raise StoreError(f"no conversation {conversation_id}")
        private_dir(self._trash)
        path.rename(self._trash / path.name)

    def restore(self, conversation_id: str) -> None:
        trashed = self._trash / f"{conversation_id}.json"
        if not trashed.exists():
            raise StoreError(f"{conversation_id} is not in the trash")
        trashed.rename(self.path(conversation_id))

    def rename(self, conversation_id: str, title: str) -> Conversation:
        if not title.strip():
            raise InvalidValue("a title cannot be empty")
        conversation = self.load(conversation_id)
        conversation.title = title.strip()
        self.save(conversation)
        return conversation

    def duplicate(self, conversation_id: str) -> Conversation:
        conversation = self.load(conversation_id)
        conversation.id = Conversation().id
        conversation.title = f"{conversation.title} (copy)"
        conversation.revision = 0
        self.save(conversation)
        return conversation

    # -- index ------------------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        path = self.root.parent / "index.sqlite"
        for attempt in range(2):
            try:
                db = sqlite3.connect(path, timeout=10, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version != INDEX_SCHEMA:
                    db.executescript(
                        """
                        DROP TABLE IF EXISTS summaries; DROP TABLE IF EXISTS fts;
                        CREATE TABLE summaries(id TEXT PRIMARY KEY, mtime_ns INTEGER, size INTEGER, title TEXT,
                            updated REAL, model TEXT, turns INTEGER, preview TEXT);
                        CREATE VIRTUAL TABLE fts USING fts5(id UNINDEXED, title, body, tokenize='trigram');
                        """
                    )
                    db.execute(f"PRAGMA user_version={INDEX_SCHEMA}")
                    db.commit()
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.chmod(f"{path}{suffix}", 0o600)
                self._db = db
                return db
            except sqlite3.DatabaseError:
                if attempt:
                    raise
                # The index is only a cache: a damaged one is thrown away and rebuilt from the files.
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def sync(self) -> list[str]:
        """Bring the index up to date with the files; return a message for each file that failed to parse."""
        db = self._connect()
        on_disk: dict[str, tuple[int, int]] = {}
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    st = entry.stat()
                    on_disk[entry.name[:-5]] = (st.st_mtime_ns, st.st_size)
        indexed = {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, mtime_ns, size FROM summaries")}
        problems: list[str] = []
        gone = [i for i in indexed if i not in on_disk]
        changed = [i for i, stamp in on_disk.items() if indexed.get(i) != stamp]
        with db:
            for conversation_id in gone:
                db.execute("DELETE FROM summaries WHERE id=?", (conversation_id,))
                db.execute("DELETE FROM fts WHERE id=?", (conversation_id,))
            for conversation_id in changed:
                db.execute("DELETE FROM summaries WHERE id=?", (conversation_id,))
                db.execute("DELETE FROM fts WHERE id=?", (conversation_id,))
                try:
                    conversation = self.load(conversation_id)
                except StoreError as exc:
                    problems.append(str(exc))
                    continue
                first = next((t.content for t in conversation.turns), "")
                db.execute(
                    "INSERT INTO summaries VALUES (?,?,?,?,?,?,?,?)",
                    (
                        conversation_id,
                        *on_disk[conversation_id],
                        conversation.title,
                        conversation.updated,
                        conversation.model,
                        len(conversation.turns),
                        " ".join(first.split())[:120],
                    ),
                )
                body = "\n".join([conversation.system, *_body(conversation.turns)])
                db.execute("INSERT INTO fts VALUES (?,?,?)", (conversation_id, conversation.title, body))
        return problems

    def list(self, query: str = "", limit: int | None = None) -> tuple[list[Summary], list[str]]:
        """Conversations newest first, optionally only those whose title or messages contain ``query``;
        with the problems met (files that failed to parse, left where they are)."""
        problems = self.sync()
        db = self._connect()
        columns = "s.id, s.title, s.updated, s.model, s.turns, s.preview"
        sql_limit = f" LIMIT {int(limit)}" if limit else ""
        query = query.strip()
        if not query:
            rows = db.execute(f"SELECT {columns} FROM summaries s ORDER BY s.updated DESC{sql_limit}")
        elif len(query) >= 3:
            phrase = '"' + query.replace('"', '""') + '"'
            rows = db.execute(
                f"SELECT {columns} FROM fts JOIN summaries s ON s.id = fts.id WHERE fts MATCH ? "
                f"ORDER BY s.updated DESC{sql_limit}",
                (phrase,),
            )
        else:  # trigrams need three characters; shorter queries scan
            like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = db.execute(
                f"SELECT {columns} FROM fts JOIN summaries s ON s.id = fts.id "
                f"WHERE fts.title LIKE ? ESCAPE '\\' OR fts.body LIKE ? ESCAPE '\\' ORDER BY s.updated DESC{sql_limit}",
                (like, like),
            )
        return [Summary(*row) for row in rows], problems

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


# -- import and export ---------------------------------------------------------------------------------


def to_markdown(conversation: Conversation) -> str:
    """A readable Markdown transcript of the active path."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(conversation.created))
    lines = [
        f"# {conversation.title or 'Untitled'}",
        "",
        f"*{conversation.model or 'unknown model'} · {when}*",
        "",
    ]
    if conversation.system:
        lines += ["## System", "", conversation.system, ""]
    for turn in conversation.turns:
        lines += [f"## {turn.role.capitalize()}", "", turn.content, ""]
    return "\n".join(lines)


def to_openai(conversation: Conversation) -> dict[str, Any]:
    """The active path in the OpenAI chat-messages shape: ``{"messages": [{"role", "content"}, ...]}``."""
    return {"messages": conversation.messages()}


def from_openai(data: Any) -> Conversation:
    """A conversation from ``{"messages": [...]}`` or a bare list of messages; InvalidValue if malformed."""
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list) or not messages:
        raise InvalidValue('expected {"messages": [...]} or a list of messages')
    conversation = Conversation()
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise InvalidValue(f"message {i} is not an object with a role")
        role, content = message["role"], message.get("content", "")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise InvalidValue(f"message {i} has content that is not text")
        if role == "system":
            conversation.system = f"{conversation.system}\n{content}".strip()
        elif role == "user":
            conversation.add_user(content)
        elif role == "assistant":
            conversation.turns.append(Turn("assistant", [Version(content)]))
        else:
            raise InvalidValue(f"message {i} has role {role!r}; expected system, user or assistant")
    return conversation
