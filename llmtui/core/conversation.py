"""Conversation, turn, version: the chat as data, with nothing lost.

A conversation is the active path through a tree. Each turn has one or more versions (regenerated
replies, branches, edited user messages); switching a turn to another version stashes the turns that
followed the old one inside it, so every earlier path stays reachable. Nothing here knows of Textual.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmtui.core import checked
from llmtui.core.events import ReplyStats, TokenEvent

# 2: replies may come from a server at a URL (Version.server), whose steps may lack a token id or a
# probability (null). A conversation with no such reply is still written as 1, which older llmtui reads.
FORMAT_VERSION = 2
FORMATS = (1, 2)
ROLES = ("user", "assistant")
# Times are seconds since the epoch, up to the last second of year 9999: the range a date can be shown in.
LATEST_TIME = 253402300799.0


def check_id(conversation_id: str) -> str:
    """A conversation id, or ValueError: it names a file in the conversations directory, so it must not
    be empty, hold a path separator, or start with a dot (the store's own hidden files)."""
    if not conversation_id or "/" in conversation_id or "\\0" in conversation_id or conversation_id.startswith("."):
        raise ValueError(f"not a conversation id: {conversation_id!r}")
    return conversation_id


def _time(d: Any, key: str) -> float:
    value = checked.number(d, key, 0.0)
    if not 0 <= value <= LATEST_TIME:
        raise ValueError(f"{key} must be a time from 1970 to 9999 (seconds since 1970), not {value:g}")
    return value


def _branch_point(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    pair = checked.array({"branched_from": value}, "branched_from")
    if len(pair) != 2:
        raise ValueError("branched_from must be [version, step]")
    return checked.whole({"version": pair[0]}, "version"), checked.whole({"step": pair[1]}, "step")


@dataclass
class Version:
    """One version of a turn: a user message as written, or one reply with every step recorded."""

    content: str
    events: list[TokenEvent] = field(default_factory=list)
    stats: ReplyStats | None = None
    partial: bool = False  # stopped, interrupted, or still being written
    error: str | None = None
    model: str | None = None
    server: str | None = None  # the URL of the server that wrote this reply; None: an engine on this machine
    branched_from: tuple[int, int] | None = None  # (version, step) this reply was branched from
    created: float = field(default_factory=time.time)
    rest: list[Turn] | None = None  # the turns that followed this version while another one is shown

    @property
    def token_ids(self) -> list[int]:
        return [e.token_id for e in self.events]

    def to_dict(self, step: Callable[[TokenEvent], Any] = TokenEvent.to_dict) -> dict[str, Any]:
        """The version as plain data; ``step`` writes each event (the store keeps the ones it wrote before)."""
        d: dict[str, Any] = {"content": self.content, "created": self.created}
        if self.events:
            d["events"] = [step(e) for e in self.events]
        if self.stats:
            d["stats"] = self.stats.to_dict()
        if self.partial:
            d["partial"] = True
        if self.error:
            d["error"] = self.error
        if self.model:
            d["model"] = self.model
        if self.server:
            d["server"] = self.server
        if self.branched_from:
            d["branched_from"] = list(self.branched_from)
        if self.rest is not None:
            d["rest"] = [t.to_dict(step) for t in self.rest]
        return d

    @classmethod
    def from_dict(cls, d: Any, *, events: bool = True) -> Version:
        """Read back one version (without its token events unless ``events``); ValueError names the first
        field of the wrong type or out of range."""
        d = checked.obj(d, "a version")
        stats = d.get("stats")
        steps = checked.array(d, "events", ())
        return cls(
            content=checked.text(d, "content"),
            events=[TokenEvent.from_dict(e) for e in steps] if events else [],
            stats=ReplyStats.from_dict(stats) if stats is not None else None,
            partial=checked.flag(d, "partial", False),
            error=checked.optional_text(d, "error"),
            model=checked.optional_text(d, "model"),
            server=checked.optional_text(d, "server"),
            branched_from=_branch_point(d.get("branched_from")),
            created=_time(d, "created"),
            rest=[Turn.from_dict(t, events=events) for t in checked.array(d, "rest")]
            if d.get("rest") is not None
            else None,
        )


@dataclass
class Turn:
    """One message of the conversation, with all its versions."""

    role: str  # "user" | "assistant"
    versions: list[Version]
    current: int = 0

    @property
    def version(self) -> Version:
        return self.versions[self.current]

    @property
    def content(self) -> str:
        return self.version.content

    def to_dict(self, step: Callable[[TokenEvent], Any] = TokenEvent.to_dict) -> dict[str, Any]:
        """The turn as plain data (``step``: see Version.to_dict)."""
        return {"role": self.role, "current": self.current, "versions": [v.to_dict(step) for v in self.versions]}

    @classmethod
    def from_dict(cls, d: Any, *, events: bool = True) -> Turn:
        """Read back one turn with its versions (see Version.from_dict); ValueError says what is wrong."""
        d = checked.obj(d, "a turn")
        role = checked.text(d, "role")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        versions = [Version.from_dict(v, events=events) for v in checked.array(d, "versions")]
        if not versions:
            raise ValueError("a turn without versions")
        current = checked.whole(d, "current", len(versions) - 1, hi=len(versions) - 1)
        return cls(role, versions, current)


def _new_id() -> str:
    # Sortable by creation time, unique across processes: time prefix plus randomness.
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


@dataclass
class Conversation:
    """The whole chat: its system prompt, its turns (the active path), and how it was made."""

    id: str = field(default_factory=_new_id)
    title: str = ""
    system: str = ""
    turns: list[Turn] = field(default_factory=list)
    model: str = ""
    fingerprint: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    revision: int = 0  # bumped on every save; guards against two writers
    # The digest of the file this conversation was last read from or written to, set by the store: a save
    # that would write the same bytes again writes nothing. Not part of the conversation's data.
    saved: bytes | None = field(default=None, repr=False, compare=False)

    # -- reading ----------------------------------------------------------------------------------------

    def messages(self, upto: int | None = None) -> list[dict[str, str]]:
        """The chat messages of turns[:upto] (all by default), the system prompt first."""
        out = [{"role": "system", "content": self.system}] if self.system else []
        out.extend({"role": t.role, "content": t.content} for t in self.turns[:upto])
        return out

    def replies(self) -> list[int]:
        """Indices of the assistant turns."""
        return [i for i, t in enumerate(self.turns) if t.role == "assistant"]

    # -- changing ---------------------------------------------------------------------------------------

    def add_user(self, text: str) -> int:
        """Append a user message; return its turn index. The title comes from the first one."""
        self.turns.append(Turn("user", [Version(text)]))
        if not self.title:
            self.title = " ".join(text.split())[:60] or "untitled"
        self.touch()
        return len(self.turns) - 1

    def start_reply(self, model: str, server: str | None = None, at: int | None = None, **version: Any) -> int:
        """Begin a reply by ``model`` (on ``server``, a URL; None: this machine): a new turn at the end, or
        (``at``) a new version of an existing assistant turn."""
        fresh = Version("", partial=True, model=model, server=server, **version)
        if at is None:
            self.turns.append(Turn("assistant", [fresh]))
            at = len(self.turns) - 1
        else:
            self.add_version(at, fresh)
        self.touch()
        return at

    def add_version(self, index: int, version: Version) -> None:
        """Add a version to a turn and show it; what followed the old version is kept inside it."""
        turn = self.turns[index]
        turn.versions.append(version)
        self.switch(index, len(turn.versions) - 1)

    def edit_user(self, index: int, text: str) -> None:
        """A new version of a user message; the turns after the old version stay reachable."""
        if self.turns[index].role != "user":
            raise ValueError("only user messages can be edited")
        self.add_version(index, Version(text))
        if index == 0 or self.title == self.turns[index].versions[0].content[:60]:
            self.title = " ".join(text.split())[:60] or self.title

    def switch(self, index: int, version: int) -> None:
        """Show another version of a turn, swapping the rest of the conversation with it."""
        turn = self.turns[index]
        if version == turn.current:
            return
        if not 0 <= version < len(turn.versions):
            raise IndexError(f"turn {index} has {len(turn.versions)} versions")
        turn.version.rest = self.turns[index + 1 :]
        del self.turns[index + 1 :]
        turn.current = version
        self.turns.extend(turn.version.rest or [])
        turn.version.rest = None
        self.touch()

    def touch(self) -> None:
        self.updated = time.time()

    def has_remote_replies(self) -> bool:
        """Whether any reply, on any path, came from a server at a URL (what format 1 cannot hold)."""

        def remote(turns: list[Turn]) -> bool:
            return any(v.server or (v.rest is not None and remote(v.rest)) for t in turns for v in t.versions)

        return remote(self.turns)

    # -- serialising ------------------------------------------------------------------------------------

    def to_dict(self, step: Callable[[TokenEvent], Any] = TokenEvent.to_dict) -> dict[str, Any]:
        """The conversation as plain data, as its file holds it (``step``: see Version.to_dict)."""
        return {
            "format": FORMAT_VERSION if self.has_remote_replies() else 1,
            "id": self.id,
            "title": self.title,
            "created": self.created,
            "updated": self.updated,
            "revision": self.revision,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "sampling": self.sampling,
            "system": self.system,
            "turns": [t.to_dict(step) for t in self.turns],
        }

    @classmethod
    def from_dict(cls, d: Any, *, events: bool = True) -> Conversation:
        """Build from a saved file's object, every field checked for its type and range; ValueError names
        the first that is wrong (RecursionError if versions are nested deeper than the interpreter allows).
        Without ``events`` the replies' token events are left out unread: the history's index needs only
        the text, and they are most of a long conversation's file."""
        d = checked.obj(d, "a conversation")
        fmt = d.get("format")
        if fmt not in FORMATS or isinstance(fmt, bool):
            raise ValueError(f"unknown format version {fmt!r} (this llmtui reads {' and '.join(map(str, FORMATS))})")
        return cls(
            id=check_id(checked.text(d, "id")),
            title=checked.text(d, "title", ""),
            system=checked.text(d, "system", ""),
            turns=[Turn.from_dict(t, events=events) for t in checked.array(d, "turns", ())],
            model=checked.text(d, "model", ""),
            fingerprint=checked.text(d, "fingerprint", ""),
            sampling=dict(checked.obj(d.get("sampling", {}), "sampling")),
            created=_time(d, "created"),
            updated=_time(d, "updated"),
            revision=checked.whole(d, "revision", 0),
        )
