"""A model's chat template, rendered from its files as transformers' `apply_chat_template` renders it, without
importing transformers or torch (the workstation's UI process imports neither).

It is how a client of a server whose `/tokenize` takes no chat messages (llama.cpp's) still knows the exact
prompt ids of a conversation, when the model's tokenizer files are on this machine: the template is rendered
here, the text cut by the model's own tokenizer.json, and continuing or branching a reply sends those ids.

What is mirrored of transformers (utils/chat_template_utils.py, 5.x): the template from
`chat_template.jinja` (which takes priority), else `tokenizer_config.json`'s ``chat_template`` (a string, or
named templates of which "default" is used); an ImmutableSandboxedEnvironment with ``trim_blocks`` and
``lstrip_blocks`` and the loopcontrols extension; its ``raise_exception``, ``strftime_now``, ``tojson`` (no
HTML escaping), ``dict`` and ``namespace`` (no underscore names); the named special tokens (``bos_token``,
``eos_token``, ``unk_token``, ``sep_token``, ``pad_token``, ``cls_token``, ``mask_token``) as variables;
messages with None values dropped; ``add_generation_prompt``. The text is then tokenized without special
tokens, as `apply_chat_template(tokenize=True)` does. Not mirrored, since llmtui uses none of them: tools,
documents, the ``generation`` tag's assistant mask (the tag renders its body), ``continue_final_message``
and control-token sanitising.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from llmtui.core.errors import InvalidValue, ModelLoadError, first_line

# The named special tokens transformers passes to every template (PreTrainedTokenizerBase's attributes).
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
TEMPLATE_FILE = "chat_template.jinja"
CONFIG_FILE = "tokenizer_config.json"
LEGACY_SPECIAL_FILE = "special_tokens_map.json"


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template and the special tokens it may name: render messages to the model's prompt text."""

    source: str
    special_tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dir(cls, path: Path) -> ChatTemplate | None:
        """The chat template in a model's (or a tokenizer's) directory; None when it has none.

        ModelLoadError when its files cannot be read."""
        try:
            config = _json(path / CONFIG_FILE)
            legacy = _json(path / LEGACY_SPECIAL_FILE)
            source: Any = None
            if (path / TEMPLATE_FILE).is_file():  # transformers' own precedence: the .jinja file first
                source = (path / TEMPLATE_FILE).read_text(encoding="utf-8")
            else:
                source = config.get("chat_template")
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"the chat template in {path} cannot be read: {first_line(exc)}") from None
        if isinstance(source, list):  # named templates: [{"name": ..., "template": ...}]
            named = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}
            source = named.get("default")
        if not isinstance(source, str) or not source:
            return None
        tokens: dict[str, str] = {}
        for name in SPECIAL_TOKEN_NAMES:
            value = _token_text(config.get(name))
            if value is None:
                value = _token_text(legacy.get(name))
            if value is not None:
                tokens[name] = value
        return cls(source, tokens)

    @cached_property
    def _compiled(self) -> Any:
        return compile_template(self.source)

    def render(self, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool = True) -> str:
        """The prompt text for ``messages``, as ``apply_chat_template(tokenize=False)`` gives it; a template
        that raises (``raise_exception``, a role it refuses) is InvalidValue with its message."""
        import jinja2

        chat = [{k: v for k, v in dict(m).items() if v is not None} for m in messages]
        try:
            return self._compiled.render(
                messages=chat,
                tools=None,
                documents=None,
                add_generation_prompt=add_generation_prompt,
                **self.special_tokens,
            )
        except jinja2.TemplateError as exc:
            raise InvalidValue(f"the model's chat template refused the conversation: {first_line(exc)}") from None

    def ids(
        self, tokenizer: Any, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool = True
    ) -> list[int]:
        """The prompt's token ids: the rendered text cut by ``tokenizer`` (a ``tokenizers.Tokenizer``) without
        special tokens, as ``apply_chat_template(tokenize=True)`` cuts it (the template writes its own)."""
        text = self.render(messages, add_generation_prompt=add_generation_prompt)
        return list(tokenizer.encode(text, add_special_tokens=False).ids)


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: its text, or an AddedToken's ``content``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def compile_template(source: str) -> Any:
    """A chat template compiled in the sandbox transformers renders templates in, with its helpers; a
    template that does not parse is ModelLoadError."""
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    import jinja2.utils
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # Templates come from the hub and are untrusted: transformers refuses jinja2 before 3.1.6 (sandbox escapes).
    if tuple(int(p) for p in jinja2.__version__.split(".")[:3] if p.isdigit()) < (3, 1, 6):
        raise ModelLoadError(f"rendering a chat template needs jinja2 3.1.6 or later (this is {jinja2.__version__})")

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False):
        # jinja2's own tojson escapes HTML characters; templates expect plain JSON.
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format: str) -> str:
        return datetime.now().strftime(format)

    class TemplateDict:
        # dict() without attribute access to the type itself (a sandbox escape route).
        def __call__(self, *args: Any, **kwargs: Any) -> dict:
            return dict(*args, **kwargs)

        def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        # A namespace that stores no underscore names (CPython internals).
        def __init__(*args: Any, **kwargs: Any) -> None:
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            TemplateNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"a chat template cannot store {name!r} on a namespace")

    class Generation(jinja2.ext.Extension):
        # `{% generation %}...{% endgeneration %}` marks the assistant's text (transformers' assistant mask):
        # the body renders as it is.
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    try:
        return env.from_string(source)
    except jinja2.TemplateError as exc:
        raise ModelLoadError(f"the model's chat template does not parse: {first_line(exc)}") from None
