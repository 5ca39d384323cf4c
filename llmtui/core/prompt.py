"""A conversation's messages -> the exact token ids a model receives, trimmed to fit its context."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmtui.core.errors import ContextOverflow

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}

# Used when a tokenizer has no chat template; the backend reports that it fell back to it.
PLAIN_FORMAT_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
PLAIN_FORMAT_STOP = ("\nUser:",)

# messages -> (text, ids, templated): one application of a chat template (or the plain format).
Template = Callable[[Sequence[Message]], tuple[str, Sequence[int], bool]]


@dataclass(frozen=True)
class Prompt:
    """The exact token ids the model receives for a conversation, and how they were made."""

    text: str
    ids: tuple[int, ...]
    templated: bool  # False: the tokenizer had no chat template; the plain format was used
    dropped_turns: int  # oldest turns left out so the prompt fits the context
    context_length: int

    @property
    def stop(self) -> tuple[str, ...]:
        return () if self.templated else PLAIN_FORMAT_STOP

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "ids": list(self.ids),
            "templated": self.templated,
            "dropped_turns": self.dropped_turns,
            "context_length": self.context_length,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prompt:
        return cls(
            str(d["text"]),
            tuple(int(i) for i in d["ids"]),
            bool(d["templated"]),
            int(d["dropped_turns"]),
            int(d["context_length"]),
        )


def plain_format(messages: Sequence[Message]) -> str:
    """The prompt for a tokenizer without a chat template: `Role: text` paragraphs, then `Assistant:`."""
    lines = [f"{PLAIN_FORMAT_ROLES.get(m['role'], m['role'])}: {m['content']}" for m in messages]
    return "\n\n".join([*lines, "Assistant:"])


def fit(messages: Sequence[Message], reserve: int, context_length: int, template: Template) -> Prompt:
    """The prompt for a conversation, with the generation prompt added.

    When prompt plus ``reserve`` new tokens would overflow the context, the oldest turns (never the
    system prompt) are left out until it fits; ContextOverflow if even the newest turn alone does not.
    """
    messages = [m for m in messages if m.get("content") is not None]
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns = messages[len(system) :]
    reserve = min(reserve, context_length // 2)
    dropped = 0
    while True:
        text, ids, templated = template(system + turns)
        if len(ids) + reserve <= context_length:
            return Prompt(text, tuple(ids), templated, dropped, context_length)
        if len(turns) <= 1:
            raise ContextOverflow(
                f"the message is {len(ids)} tokens; with room for {reserve} new tokens it does not fit "
                f"the model's context of {context_length}"
            )
        # Drop the oldest turn, and keep the conversation starting with a user turn.
        turns = turns[1:]
        dropped += 1
        while len(turns) > 1 and turns[0]["role"] != "user":
            turns = turns[1:]
            dropped += 1
