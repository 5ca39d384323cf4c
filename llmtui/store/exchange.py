"""Conversations in other tools' shapes: a Markdown transcript and OpenAI's chat messages, out and in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from llmtui.core.conversation import Conversation, Turn, Version
from llmtui.core.errors import InvalidValue


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


def _text_parts(parts: list[Any], i: int) -> Iterator[str]:
    for part in parts:
        if not isinstance(part, dict):
            raise InvalidValue(f"message {i} has a content part that is not an object")
        if part.get("type", "text") != "text":
            continue  # an image or audio part: not text to keep
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidValue(f"message {i} has a text part whose text is not a string")
        yield text


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
        if not isinstance(role, str):
            raise InvalidValue(f"message {i} has a role that is not text")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(_text_parts(content, i))
        if not isinstance(content, str):
            raise InvalidValue(f"message {i} has content that is not text")
        if role == "system":
            conversation.system = f"{conversation.system}\n{content}".strip()
        elif role == "user":
            conversation.add_user(content)
        elif role == "assistant":
            conversation.turns.append(Turn("assistant", [Version(content)]))
        else:
            raise InvalidValue(f"message {i} has role {role[:40]!r}; expected system, user or assistant")
    return conversation
