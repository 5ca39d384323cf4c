"""Conversation <-> one JSON file each, with a search index (import and export: `store.exchange`).

The JSON files are the truth: readable, editable, one per conversation. The SQLite index beside them is
a cache (listing and full-text search stay fast with 10,000 conversations); it is brought up to date from
the files' modification times and rebuilt from scratch if it is ever damaged.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmtui.core.conversation import Conversation, Turn, check_id
from llmtui.core.errors import InvalidValue
from llmtui.core.events import TokenEvent
from llmtui.store.files import (
    FILE_MODE,
    StoreError,
    atomic_write,
    data_dir,
    parse_json,
    private_dir,
    read_regular,
    reason,
    writable,
)

__all__ = ["ConversationStore", "SaveResult", "StoreError", "Summary"]

INDEX_SCHEMA = 3  # a cache: an index of another schema is built again from the files
INDEX_FILE = "index.sqlite"


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
    as a new conversation instead of overwriting theirs. ``written``: False when nothing had changed since
    the file was read or written, so it was left untouched."""

    id: str
    path: Path
    forked: bool = False
    written: bool = True


# Without indentation json runs in C; with it, in Python, twenty times slower (6 s for a 50 MB conversation,
# a second for ten replies). So the file is laid out here, as json.dumps(indent=1) would, except that each
# step of a reply (its "events") is one line encoded in C, and kept: a step never changes, so a save while
# a reply streams (every few seconds) encodes only the steps that arrived since the last one.
_ONE_LINE = json.JSONEncoder(ensure_ascii=False)


def _layout(value: Any, depth: int, out: list[str]) -> None:
    """``value`` as json.dumps(indent=1) lays it out, with a list of "events" (already encoded) one per line."""
    if isinstance(value, dict) and value:
        pad = "\n" + " " * (depth + 1)
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(("," if i else "") + pad + _ONE_LINE.encode(key) + ": ")
            if key == "events" and isinstance(item, list) and item and isinstance(item[0], _Line):
                out.append("[" + ",".join(pad + " " + line.text for line in item) + pad + "]")
            else:
                _layout(item, depth + 1, out)
        out.append("\n" + " " * depth + "}")
    elif isinstance(value, list) and value:
        pad = "\n" + " " * (depth + 1)
        out.append("[")
        for i, item in enumerate(value):
            out.append(("," if i else "") + pad)
            _layout(item, depth + 1, out)
        out.append("\n" + " " * depth + "]")
    else:
        out.append(_ONE_LINE.encode(value))


@dataclass(frozen=True, slots=True)
class _Line:
    """One step of a reply, encoded: the event is held so that its id is not reused while the line is kept."""

    event: TokenEvent
    text: str


class _Encoder:
    """A conversation's file, byte for byte: the one serialiser of the store. It keeps the lines of the
    steps it encoded last time (those of the conversation it saves, as long as they are in it)."""

    def __init__(self) -> None:
        self._lines: dict[int, _Line] = {}

    def __call__(self, conversation: Conversation) -> bytes:
        kept, self._lines = self._lines, {}

        def step(event: TokenEvent) -> _Line:
            line = kept.get(id(event))
            if line is None or line.event is not event:
                line = _Line(event, _ONE_LINE.encode(event.to_dict()))
            self._lines[id(event)] = line
            return line

        out: list[str] = []
        _layout(conversation.to_dict(step), 0, out)
        return "".join(out).encode("utf-8")


# The first lines of a file _Encoder wrote: each value before the revision is on one line (JSON strings
# hold no raw newline), so this matches the top-level revision and nothing else.
_HEAD = re.compile(
    rb'\{\n "format": [12],\n "id": "[^\n]*",\n "title": "[^\n]*",\n "created": [^\n]*,\n "updated": [^\n]*,\n'
    rb' "revision": (\d+),\n'
)
HEAD_BYTES = 64 << 10


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _with_revision(data: bytes, old: int, new: int) -> bytes:
    """``data`` (from ``_Encoder``) with its revision changed, without encoding it again. The top-level keys
    are the only ones at one space of indentation, and every one before "revision" holds a value of one
    line, so the first such line is the top-level revision."""
    line = b'\n "revision": %d,\n'
    changed = data.replace(line % old, line % new, 1)
    assert changed != data, "the encoding lost its revision line"
    return changed


def _body(turns: list[Turn]) -> Iterator[str]:
    for turn in turns:
        for version in turn.versions:
            yield version.content
            if version.rest:
                yield from _body(version.rest)


class ConversationStore:
    """The conversations directory: save, load, list, search, rename, delete (with undo), duplicate.

    Constructing one never fails: a directory that cannot be had makes every operation raise StoreError
    with the reason, and a directory the user made read-only opens the history read-only (reads work,
    writes raise StoreError saying so; its mode is never changed).
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or data_dir() / "conversations"
        self._trash = self.root / ".trash"
        self._db: sqlite3.Connection | None = None
        self._index_created = False  # this store created the index file (so may remove it again)
        self._index_in_memory = False
        self._index_notice: str | None = None
        self._encode = _Encoder()
        self.unavailable: str | None = None  # why nothing can be read
        self.read_only: str | None = None  # why nothing can be written
        self._probe()

    def _probe(self) -> None:
        """Find out what the directory allows now. Done before every operation: a store that failed (a
        disk not mounted yet, a mode the user changed) works again as soon as the directory does."""
        self.unavailable = self.read_only = None
        try:
            # The data dir (the conversations' parent) is llmtui's own: what is created there is private.
            private_dir(self.root, self.root.parent)
        except StoreError as exc:
            self.unavailable = str(exc)
            return
        if not os.access(self.root, os.R_OK | os.X_OK):
            self.unavailable = f"cannot read {self.root}: permission denied"
        elif not writable(self.root):
            self.read_only = f"{self.root} is read-only, so the history is open read-only and nothing is saved"

    @property
    def notices(self) -> list[str]:
        """One line for each way the history works less than fully (read-only, no search index)."""
        return [n for n in (self.read_only, self._index_notice) if n]

    def _check_readable(self) -> None:
        self._probe()
        if self.unavailable:
            raise StoreError(self.unavailable)

    def _check_writable(self) -> None:
        self._check_readable()
        if self.read_only:
            raise StoreError(self.read_only)

    def path(self, conversation_id: str) -> Path:
        """The file of a conversation (whether or not it exists); StoreError for a malformed id."""
        try:
            return self.root / f"{check_id(conversation_id)}.json"
        except ValueError as exc:
            raise StoreError(str(exc)) from None

    # -- files ------------------------------------------------------------------------------------------

    def _lock_path(self, conversation_id: str) -> Path:
        return self.root / f".{self.path(conversation_id).stem}.lock"

    @contextlib.contextmanager
    def _locked(self, conversation_id: str) -> Iterator[None]:
        """An exclusive lock per conversation, across processes (two llmtui instances)."""
        lock_path = self._lock_path(conversation_id)
        while True:
            try:
                fd = os.open(lock_path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, FILE_MODE)
            except OSError as exc:
                raise StoreError(f"cannot lock {lock_path}: {reason(exc)}") from None
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            # `delete` removed this lock file while we waited for it: the lock that counts is a new file.
            os.close(fd)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def save(self, conversation: Conversation) -> SaveResult:
        """Write atomically. If another process saved a newer revision since we read it, ours is saved
        as a fork with a new id; neither side loses a turn. A conversation that is byte for byte what this
        store last read or wrote is not written at all (its file, mtime included, stays untouched; no
        revision is taken, so a second instance that only looked never forks)."""
        data = self._encode(conversation)
        if conversation.saved == _digest(data):
            return SaveResult(conversation.id, self.path(conversation.id), written=False)
        self._check_writable()
        with self._locked(conversation.id):
            on_disk = self._revision_on_disk(conversation.id)
            if on_disk is None or on_disk == conversation.revision:
                return self._write(conversation, data, forked=False)
        original = conversation.id
        conversation.id = Conversation().id  # unique: no other writer can hold it
        conversation.title = f"{conversation.title} (fork)"
        conversation.revision = 0
        conversation.sampling = {**conversation.sampling, "forked_from": original}
        return self._write(conversation, self._encode(conversation), forked=True)

    def _write(self, conversation: Conversation, data: bytes, *, forked: bool) -> SaveResult:
        """Write ``data`` (``conversation`` encoded at its current revision) as the next revision."""
        revision = conversation.revision + 1
        data = _with_revision(data, conversation.revision, revision)
        path = self.path(conversation.id)
        atomic_write(path, data)
        conversation.revision = revision
        conversation.saved = _digest(data)
        return SaveResult(conversation.id, path, forked)

    def _revision_on_disk(self, conversation_id: str) -> int | None:
        path = self.path(conversation_id)
        try:
            # A file in llmtui's layout says its revision in its first lines: a save (every few seconds
            # while a reply streams) need not parse the whole of a long conversation to find it.
            found = _HEAD.match(read_regular(path, head=HEAD_BYTES))
            if found:
                return int(found[1])
            data = parse_json(read_regular(path), str(path))
        except (FileNotFoundError, StoreError):
            return None  # absent or unreadable: saving over it is how the user repairs it
        revision = data.get("revision", 0) if isinstance(data, dict) else None
        return revision if isinstance(revision, int) and not isinstance(revision, bool) else None

    def load(self, conversation_id: str) -> Conversation:
        """Read one conversation; StoreError names the file and the reason."""
        self._check_readable()
        return self.read_file(self.path(conversation_id))

    @staticmethod
    def read_file(path: Path, *, events: bool = True) -> Conversation:
        """A conversation file, read only if it is a regular file of bounded size and every field checks
        out (the token events only with ``events``: see Conversation.from_dict); StoreError names the file
        and the first thing wrong with it, in one line."""
        try:
            raw = read_regular(path)
        except FileNotFoundError:
            raise StoreError(f"no conversation {path.stem} ({path} does not exist)") from None
        data = parse_json(raw, str(path))
        try:
            conversation = Conversation.from_dict(data, events=events)
        except ValueError as exc:
            raise StoreError(f"{path} is not an llmtui conversation ({exc})") from None
        except RecursionError:
            raise StoreError(f"{path} is nested too deeply to be read") from None
        # What was read, so that saving it unchanged writes nothing. A file llmtui wrote encodes back to
        # the same bytes; one edited by hand is written once, in llmtui's layout, on its first save.
        conversation.saved = _digest(raw)
        return conversation

    def delete(self, conversation_id: str) -> None:
        """Move a conversation to the trash (``restore`` brings it back); its lock file goes with it."""
        self._check_writable()
        path = self.path(conversation_id)
        if not path.exists():
            raise StoreError(f"no conversation {conversation_id}")
        private_dir(self._trash, self.root.parent)
        with self._locked(conversation_id):
            try:
                path.rename(self._trash / path.name)
            except FileNotFoundError:
                raise StoreError(f"no conversation {conversation_id}") from None
            except OSError as exc:
                raise StoreError(f"cannot move {path} to the trash: {reason(exc)}") from None
            finally:
                # Safe while held: a process waiting on this file sees it is gone and locks a new one.
                self._lock_path(conversation_id).unlink(missing_ok=True)

    def restore(self, conversation_id: str) -> None:
        """Bring a conversation back from the trash."""
        self._check_writable()
        trashed = self._trash / self.path(conversation_id).name
        if not trashed.exists():
            raise StoreError(f"{conversation_id} is not in the trash")
        try:
            trashed.rename(self.path(conversation_id))
        except OSError as exc:
            raise StoreError(f"cannot restore {conversation_id}: {reason(exc)}") from None

    def rename(self, conversation_id: str, title: str) -> Conversation:
        """Give a conversation a new title."""
        if not title.strip():
            raise InvalidValue("a title cannot be empty")
        conversation = self.load(conversation_id)
        conversation.title = title.strip()
        self.save(conversation)
        return conversation

    def duplicate(self, conversation_id: str) -> Conversation:
        """Save a copy of a conversation under a new id."""
        conversation = self.load(conversation_id)
        conversation.id = Conversation().id
        conversation.title = f"{conversation.title} (copy)"
        conversation.revision = 0
        self.save(conversation)
        return conversation

    # -- index ------------------------------------------------------------------------------------------

    @staticmethod
    def _init_index(db: sqlite3.Connection, *, wal: bool) -> None:
        if wal:
            db.execute("PRAGMA journal_mode=WAL")
        if db.execute("PRAGMA user_version").fetchone()[0] != INDEX_SCHEMA:
            db.executescript(
                """
                DROP TABLE IF EXISTS summaries; DROP TABLE IF EXISTS fts;
                CREATE TABLE summaries(id TEXT PRIMARY KEY, mtime_ns INTEGER, size INTEGER, title TEXT,
                    updated REAL, model TEXT, turns INTEGER, preview TEXT, row INTEGER UNIQUE NOT NULL);
                CREATE VIRTUAL TABLE fts USING fts5(id UNINDEXED, title, body, tokenize='trigram');
                """
            )
            db.execute(f"PRAGMA user_version={INDEX_SCHEMA}")
            db.commit()

    def _index_path(self) -> Path:
        return self.root.parent / INDEX_FILE

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        path = self._index_path()
        if not writable(path.parent):
            return self._in_memory()  # a read-only data dir: the list is built from the files each time
        for attempt in range(2):
            try:
                # Created here, 0600 from its first byte; SQLite gives its -wal and -shm files the same mode.
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, FILE_MODE)
                os.close(fd)
                self._index_created = True
            except FileExistsError:
                pass
            except OSError as exc:
                return self._fall_back(reason(exc))
            db = None
            try:
                db = sqlite3.connect(path, timeout=10, check_same_thread=False)
                self._init_index(db, wal=True)
                self._db = db
                return db
            except sqlite3.OperationalError as exc:  # a full disk, an I/O error, a lock held too long
                if db is not None:
                    db.close()
                return self._fall_back(str(exc))
            except sqlite3.DatabaseError:
                if db is not None:
                    db.close()
                if attempt:
                    return self._fall_back("it is damaged and cannot be rebuilt")
                # The index is only a cache: a damaged one is thrown away and rebuilt from the files.
                self._remove_index()
        raise AssertionError("unreachable")

    def _in_memory(self) -> sqlite3.Connection:
        db = sqlite3.connect(":memory:", check_same_thread=False)
        self._init_index(db, wal=False)
        self._db = db
        self._index_in_memory = True
        return db

    def _remove_index(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self._index_path()}{suffix}").unlink(missing_ok=True)

    def _fall_back(self, why: str) -> sqlite3.Connection:
        """Keep the index in memory instead: listing and search still work, from the files."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._index_created:  # ours and only a cache: nothing half-made is left behind
            self._remove_index()
            self._index_created = False
        self._index_notice = f"cannot write the search index {self._index_path()} ({why}); listing from the files"
        return self._in_memory()

    def sync(self) -> list[str]:
        """Bring the index up to date with the files; return a message for each file that failed to parse."""
        self._check_readable()
        db = self._connect()
        try:
            return self._sync(db)
        except sqlite3.OperationalError as exc:  # a full disk met while writing the index
            if self._index_in_memory:
                raise StoreError(f"the search index failed: {exc}") from None
            return self._sync(self._fall_back(str(exc)))

    def _files(self, problems: list[str]) -> dict[str, tuple[int, int]]:
        """The conversation files by id, with their modification time and size; anything that is not a
        regular file (a FIFO, a link to a device or to nothing) is reported and skipped."""
        on_disk: dict[str, tuple[int, int]] = {}
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    if not entry.name.endswith(".json") or entry.name.startswith("."):
                        continue
                    where = self.root / entry.name
                    try:
                        st = entry.stat()
                    except OSError as exc:
                        problems.append(f"cannot read {where}: {reason(exc)}; skipped")
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        problems.append(f"{where} is not a regular file; skipped")
                        continue
                    on_disk[entry.name[:-5]] = (st.st_mtime_ns, st.st_size)
        except OSError as exc:
            raise StoreError(f"cannot read {self.root}: {reason(exc)}") from None
        return on_disk

    def _sync(self, db: sqlite3.Connection) -> list[str]:
        problems: list[str] = []
        on_disk = self._files(problems)
        indexed = {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, mtime_ns, size FROM summaries")}
        gone = [i for i in indexed if i not in on_disk]
        changed = [i for i, st in on_disk.items() if indexed.get(i) != st]
        with db:
            # A conversation's text is found by its summary's row: FTS5 cannot look up an unindexed
            # column, so deleting by id would read the whole table once per conversation.
            for conversation_id in [*gone, *(i for i in changed if i in indexed)]:
                db.execute("DELETE FROM fts WHERE rowid = (SELECT row FROM summaries WHERE id=?)", (conversation_id,))
                db.execute("DELETE FROM summaries WHERE id=?", (conversation_id,))
            for conversation_id in changed:
                try:
                    conversation = self.read_file(self.path(conversation_id), events=False)
                except StoreError as exc:
                    problems.append(str(exc))
                    continue
                first = next((t.content for t in conversation.turns), "")
                body = "\n".join([conversation.system, *_body(conversation.turns)])
                row = db.execute(
                    "INSERT INTO fts VALUES (?,?,?)", (conversation_id, conversation.title, body)
                ).lastrowid
                db.execute(
                    "INSERT INTO summaries VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        conversation_id,
                        *on_disk[conversation_id],
                        conversation.title,
                        conversation.updated,
                        conversation.model,
                        len(conversation.turns),
                        " ".join(first.split())[:120],
                        row,
                    ),
                )
        return problems

    def list(self, query: str = "", limit: int | None = None) -> tuple[list[Summary], list[str]]:
        """Conversations newest first, optionally only those whose title or messages contain ``query``;
        with the problems met (the store's notices, then files that failed to parse, left where they are)."""
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
        return [Summary(*row) for row in rows], [*self.notices, *problems]

    def close(self) -> None:
        """Close the index."""
        if self._db is not None:
            self._db.close()
            self._db = None
            self._index_in_memory = False
