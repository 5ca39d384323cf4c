"""core/template.py renders a model's chat template from its files exactly as transformers'
`apply_chat_template` does (text and ids), without importing transformers or torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from llmtui.core.errors import InvalidValue
from llmtui.core.template import ChatTemplate
from tests import builders

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [
        {"role": "system", "content": "Be <b>brief</b> & 好"},
        {"role": "user", "content": "你好, world"},
        {"role": "assistant", "content": "Hello 🙂"},
        {"role": "user", "content": "  spaces \n\tand tabs  "},
    ],
    [{"role": "user", "content": "<|im_end|> written by a user"}, {"role": "assistant", "content": None}],
]

# A template that uses what real ones use: bos_token, raise_exception, namespace, loopcontrols, tojson (no HTML
# escaping), strftime_now, the generation tag, and blocks on their own lines (trim_blocks, lstrip_blocks).
RICH = """{{ bos_token }}
{%- set ns = namespace(system='') %}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}
        {%- set ns.system = message['content'] %}
        {%- continue %}
    {%- endif %}
    {%- if message['role'] not in ['user', 'assistant'] %}
        {{- raise_exception('roles must be user or assistant, not ' + message['role']) }}
    {%- endif %}
    {% if loop.index0 == 1 and ns.system %}[SYS] {{ ns.system | tojson }} {{ strftime_now('%Y') | length }}
    {% endif %}
    {% if message['role'] == 'user' %}
[INST] {{ message['content'] }} [/INST]
    {% else %}
{% generation %} {{ message['content'] }}{{ eos_token }}{% endgeneration %}
    {% endif %}
    {% if loop.index > 6 %}{% break %}{% endif %}
{%- endfor %}
{%- if add_generation_prompt %} <a>{% endif %}"""


def _reference(path, messages, generation_prompt=True):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=False
    )
    return text, list(ids)


def _fast(path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path / "tokenizer.json"))


@pytest.fixture(scope="module")
def rich_dir(tmp_path_factory):
    from transformers import PreTrainedTokenizerFast

    tok = builders.with_template(builders.sentencepiece_bpe(), "<s> $A", "<s> $A <s> $B", ["<s>"])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    fast.chat_template = RICH
    path = tmp_path_factory.mktemp("rich") / "tokenizer"
    fast.save_pretrained(path)
    return path


@pytest.mark.model
def test_the_default_model_renders_as_transformers_renders_it(default_model_dir):
    path = default_model_dir
    template = ChatTemplate.from_dir(path)
    assert template is not None and template.special_tokens["bos_token"] == "<|im_start|>"
    for messages in CONVERSATIONS[:2]:
        for generation_prompt in (True, False):
            text, ids = _reference(path, messages, generation_prompt)
            assert template.render(messages, add_generation_prompt=generation_prompt) == text
            assert template.ids(_fast(path), messages, add_generation_prompt=generation_prompt) == ids
    # A message without content (dropped, as transformers drops None) fails its template there and here.
    with pytest.raises(Exception, match="has no attribute 'content'"):
        _reference(path, CONVERSATIONS[2])
    with pytest.raises(InvalidValue, match="has no attribute 'content'"):
        template.render(CONVERSATIONS[2])


def test_a_template_with_every_helper_renders_as_transformers_renders_it(rich_dir):
    template = ChatTemplate.from_dir(rich_dir)
    assert (rich_dir / "chat_template.jinja").is_file()
    for messages in CONVERSATIONS:
        for generation_prompt in (True, False):
            text, ids = _reference(rich_dir, messages, generation_prompt)
            assert template.render(messages, add_generation_prompt=generation_prompt) == text
            assert template.ids(_fast(rich_dir), messages, add_generation_prompt=generation_prompt) == ids
    assert '"Be <b>brief</b> & 好"' in template.render(CONVERSATIONS[1])  # tojson, not HTML-escaped
    with pytest.raises(InvalidValue, match="refused the conversation: roles must be user or assistant, not tool"):
        template.render([{"role": "tool", "content": "x"}])


def test_a_template_in_tokenizer_config_and_named_templates(rich_dir, tmp_path):
    import shutil

    for form in ("string", "named"):
        path = tmp_path / form
        shutil.copytree(rich_dir, path)
        (path / "chat_template.jinja").unlink()
        config = json.loads((path / "tokenizer_config.json").read_text())
        named = [{"name": "default", "template": RICH}, {"name": "tool_use", "template": "tools"}]
        config["chat_template"] = RICH if form == "string" else named
        (path / "tokenizer_config.json").write_text(json.dumps(config))
        text, _ = _reference(path, CONVERSATIONS[1])
        assert ChatTemplate.from_dir(path).render(CONVERSATIONS[1]) == text
    (tmp_path / "none").mkdir()
    assert ChatTemplate.from_dir(tmp_path / "none") is None


def test_the_sandbox_holds():
    escape = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(InvalidValue, match="refused the conversation"):
        ChatTemplate(escape).render(CONVERSATIONS[0])
    with pytest.raises(InvalidValue, match="refused the conversation"):
        ChatTemplate("{% set ns = namespace(_x=1) %}").render(CONVERSATIONS[0])
    with pytest.raises(InvalidValue):  # immutable: a template cannot change what it was given
        ChatTemplate("{{ messages.append(1) }}").render(CONVERSATIONS[0])


def test_rendering_imports_neither_transformers_nor_torch(rich_dir):
    code = (
        "import sys; from pathlib import Path; from llmtui.core.template import ChatTemplate; "
        f"t = ChatTemplate.from_dir(Path({str(rich_dir)!r})); t.render([{{'role': 'user', 'content': 'Hi'}}]); "
        "print([m for m in ('torch', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
