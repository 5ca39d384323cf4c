"""Conversation, turn, version: the chat as data, with nothing lost.

A conversation is the active path through a tree. Each turn has one or more versions (regenerated
replies, branches, edited user messages); switching a turn to another version stashes the turns that
followed the old one inside it, so every earlier path stays reachable. Nothing here knows of Textual.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from llmtui.core.events import ReplyStats, TokenEvent

FORMAT_VERSION = 1
ROLES = ("user", "assistant")


@dataclass
class Version:
    """One version of a turn: a user message as written, or one reply with every step recorded."""

    content: str
    events: list[TokenEvent] = field(default_factory=list)
    stats: ReplyStats | None = None
    partial: bool = False  # stopped, interrupted, or still being written
    error: str | None = None
    model: str | None = None
    branched_from: tuple[int, int] | None = None  # (version, step) this reply was branched from
    created: float = field(default_factory=time.time)
    rest: list[Turn] | None = None  # the turns that followed this version while another one is shown

    @property
    def token_ids(self) -> list[int]:
        return [e.token_id for e in self.events]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"content": self.content, "created": self.created}
        if self.events:
            d["events"] = [e.to_dict() for e in self.events]
        if self.stats:
            d["stats"] = self.stats.to_dict()
        if self.partial:
            d["partial"] = True
        if self.error:
            d["error"] = self.error
        if self.model:
            d["model"] = self.model
        if self.branched_from:
            d["branched_from"] = list(self.branched_from)
        if self.rest is not None:
            d["rest"] = [t.to_dict() for t in self.rest]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Version:
        return cls(
            content=str(d["content"]),
            events=[TokenEvent.from_dict(e) for e in d.get("events", ())],
            stats=ReplyStats.from_dict(d["stats"]) if d.get("stats") else None,
            partial=bool(d.get("partial", False)),
            error=d.get("error"),
            model=d.get("model"),
            branched_from=tuple(d["branched_from"]) if d.get("branched_from") else None,  # type: ignore[arg-type]
            created=float(d.get("created", 0.0)),
            rest=[Turn.from_dict(t) for t in d["rest"]] if d.get("rest") is not None else None,
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

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "current": self.current, "versions": [v.to_dict() for v in self.versions]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Turn:
        role = d["role"]
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        versions = [Version.from_dict(v) for v in d["versions"]]
        if not versions:
            raise ValueError("a turn without versions")
        current = int(d.get("current", len(versions) - 1))
        if not 0 <= current < len(versions):
            raise ValueError(f"turn points at version {current} of {len(versions)}")
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

    def start_reply(self, model: str, at: int | None = None, **version: Any) -> int:
        """Begin a reply: a new turn at the end, or (``at``) a new version of an existing assistant turn."""
        fresh = Version("", partial=True, model=model, **version)
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

    # -- serialising ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "id": self.id,
            "title": self.title,
            "created": self.created,
            "updated": self.updated,
            "revision": self.revision,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "sampling": self.sampling,
            "system": self.system,
            "turns": [t.to_dict() for t in self.turns],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conversation:
        """Build from a saved file's object; ValueError/KeyError/TypeError on a malformed one."""
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        fmt = d.get("format")
        if fmt != FORMAT_VERSION:
            raise ValueError(f"unknown format version {fmt!r} (this llmtui reads {FORMAT_VERSION})")
        return cls(
            id=str(d["id"]),
            title=str(d.get("title", "")),
            system=str(d.get("system", "")),
            turns=[Turn.from_dict(t) for t in d.get("turns", [])],
            model=str(d.get("model", "")),
            fingerprint=str(d.get("fingerprint", "")),
            sampling=dict(d.get("sampling", {})),
            created=float(d.get("created", 0.0)),
            updated=float(d.get("updated", 0.0)),
            revision=int(d.get("revision", 0)),
        )
