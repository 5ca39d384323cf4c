from __future__ import annotations

import builders
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtui.core.errors import InvalidValue
from llmtui.core.tokens import TokenizerView, show_bytes


@pytest.fixture(scope="module")
def hf():
    """The transformers tokenizers whose ids the inspector must reproduce."""
    return {
        "byte-level BPE": builders.fast_tokenizer(builders.byte_level_bpe()),
        "SentencePiece": builders.fast_tokenizer(builders.sentencepiece_bpe()),
        "WordPiece": builders.fast_tokenizer(builders.wordpiece()),
    }


@pytest.fixture(scope="module")
def views(hf):
    return {family: TokenizerView(tokenizer, family) for family, tokenizer in hf.items()}


TEXTS = [
    "Hello world",
    "  leading and   inner  spaces\t\ttabs\n\nnewlines\r\n",
    "你好，世界。你是谁？",
    "Emoji 🙂👍🏽 and 🇫🇷 flags",
    "mixed 中文 and English, 日本語も",
    "",
    "\u00a0nbsp\u2028line-sep",
]

text_strategy = st.text(alphabet=st.characters(blacklist_categories=("Cs",), max_codepoint=0x1FAFF), max_size=60)


@pytest.mark.parametrize("family", ["byte-level BPE", "SentencePiece", "WordPiece"])
@pytest.mark.parametrize("text", TEXTS)
def test_ids_equal_the_tokenizers_own(views, hf, family, text):
    view = views[family]
    assert view.family == family
    result = view.tokenize(text)
    assert result.ids == hf[family](text)["input_ids"]
    assert [t.token_id for t in result] == result.ids


@pytest.mark.parametrize("family", ["byte-level BPE", "SentencePiece", "WordPiece"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=text_strategy)
def test_property_ids_and_offsets(views, hf, family, text):
    view = views[family]
    result = view.tokenize(text)
    assert result.ids == hf[family](text)["input_ids"]
    for token in result:
        assert 0 <= token.start <= token.end <= len(text)
        assert "\ufffd" not in token.display or "\ufffd" in text


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=text_strategy)
def test_property_byte_level_bytes_rebuild_the_text(views, text):
    """For byte-level BPE, the true bytes of the tokens are exactly the UTF-8 of the text."""
    result = views["byte-level BPE"].tokenize(text)
    assert b"".join(t.data for t in result) == text.encode("utf-8")


def test_offsets_map_tokens_back_to_their_characters(views):
    text = "Hello world, 你好"
    result = views["byte-level BPE"].tokenize(text)
    for token in result:
        covered = text[token.start : token.end]
        assert covered, token
        if token.group == token.index and (
            token.index + 1 >= len(result) or result[token.index + 1].group != token.index
        ):
            # A token that is a whole character group: its bytes are its text (minus ByteLevel's trimmed space).
            assert token.data.decode().strip() == covered.strip()
    assert result.token_at(text.index("你")) is not None
    at_w = result[result.token_at(text.index("w"))]
    assert at_w.start <= text.index("w") < at_w.end and "w" in at_w.display


def test_partial_utf8_tokens_show_bytes_and_are_grouped(views):
    view = views["byte-level BPE"]
    # A character the tiny vocabulary has never merged is cut into single bytes.
    text = "龍"
    result = view.tokenize(text)
    assert len(result) == 3
    assert [t.hex for t in result] == ["E9", "BE", "8D"]
    assert [t.display for t in result] == ["‹E9›", "‹BE›", "‹8D›"]
    assert {t.group for t in result} == {0}
    assert all((t.start, t.end) == (0, 1) for t in result)


def test_sentencepiece_byte_fallback(views):
    view = views["SentencePiece"]
    result = view.tokenize("龍")
    pieces = [t.piece for t in result]
    assert "<0xE9>" in pieces
    fallback = [t for t in result if t.piece.startswith("<0x")]
    assert b"".join(t.data for t in fallback) == "龍".encode()
    assert len({t.group for t in fallback}) == 1


def test_wordpiece_continuations(views):
    view = views["WordPiece"]
    result = view.tokenize("tokenizers")
    pieces = [t.piece for t in result if not t.special]
    assert any(p.startswith("##") for p in pieces) or pieces == ["tokenizers"]
    assert all(not t.display.startswith("##") for t in result if not t.special)


def test_whitespace_is_visible(views):
    result = views["byte-level BPE"].tokenize(" a\tb\nc")
    shown = "".join(t.display for t in result)
    assert "·" in shown and "→" in shown and "↵" in shown
    assert " " not in shown and "\n" not in shown


def test_special_tokens_are_marked_and_listed(views):
    view = views["byte-level BPE"]
    result = view.tokenize("<|im_start|>user\nhi<|im_end|>")
    special = [t for t in result if t.special]
    assert [t.piece for t in special] == ["<|im_start|>", "<|im_end|>"]
    assert (1, "<|im_start|>") in view.special_tokens()


def test_counts(views):
    result = views["byte-level BPE"].tokenize("你好 world")
    assert result.chars == 8 and result.bytes == 12
    assert result.chars_per_token == pytest.approx(8 / result.count)
    d = result.to_dict()
    assert set(d) == {"tokenizer", "count", "chars", "bytes", "tokens"}
    assert set(d["tokens"][0]) == {"index", "token_id", "piece", "display", "start", "end", "special"}


def test_ids_to_text(views):
    view = views["byte-level BPE"]
    ids = view.tokenize("Hello 龍 world").ids
    result = view.from_ids(ids)
    assert result.text == "Hello 龍 world"
    with pytest.raises(InvalidValue, match="out of range"):
        view.from_ids([view.size + 5])
    with pytest.raises(InvalidValue):
        view.from_ids([-1])


def test_vocabulary_search(views):
    view = views["byte-level BPE"]
    ids, total = view.search("wor")
    assert ids and total == len(ids) and all("wor" in view.displays[i] for i in ids)
    assert ids == sorted(ids)
    ids, total = view.search("^Ġ[A-Z]", regex=True)
    assert all(view.pieces[i].startswith("Ġ") for i in ids)
    assert view.search("10-14") == ([10, 11, 12, 13, 14], 5)
    assert view.search("7") == ([7], 1)
    with pytest.raises(InvalidValue, match="regular expression"):
        view.search("(", regex=True)


def test_show_bytes_escapes_controls():
    assert show_bytes(b"\x1b]0;x\x07") == "\\x1b]0;x\\x07"
    assert show_bytes(b"a \xe4") == "a·‹E4›"


@pytest.mark.model
@pytest.mark.parametrize("text", ["你是谁? 🙂", "What is the capital of France?", "  tabs\tand\nnewlines  "])
def test_default_tokenizer_file_matches_the_models_tokenizer(default_loaded, text):
    """`llmtui tokenize` reads tokenizer.json directly; it must agree with the tokenizer the model uses."""
    from llmtui.engine.specs import load_tokenizer

    view = TokenizerView(load_tokenizer("default"), "default")
    result = view.tokenize(text)
    assert result.ids == default_loaded.tokenizer(text)["input_ids"]
    assert result.ids == TokenizerView(default_loaded.tokenizer, "default").tokenize(text).ids
    assert b"".join(t.data for t in result) == text.encode()
    partial = [t for t in result if "‹" in t.display]
    assert bool(partial) == ("你" in text)  # SmolLM's vocabulary cuts 你 and 谁 into partial bytes
    assert all(result[t.group].group == t.group for t in partial)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Every kind of tokenizer, saved as files; and, per kind, what transformers' AutoTokenizer reads from
    them (the ids the model receives), llmtui's view of tokenizer.json as `llmtui tokenize` and the workstation
    read it, and its view of the engine's own tokenizer (loaded as the engine loads it), as the server uses it."""
    from transformers import AutoTokenizer

    from llmtui.engine.specs import load_tokenizer, load_transformers_tokenizer

    paths = builders.saved_tokenizers(tmp_path_factory.mktemp("tokenizers"))
    return {
        kind: (
            AutoTokenizer.from_pretrained(path),
            TokenizerView(load_tokenizer(str(path)), kind),
            TokenizerView(load_transformers_tokenizer(path, kind, trust_remote_code=False), kind),
        )
        for kind, path in paths.items()
    }


KINDS = ["byte-level BPE", "SentencePiece, BOS added", "WordPiece, [CLS]/[SEP]", "padding and truncation"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", [*TEXTS, "the quick brown fox jumps over the lazy dog " * 4])
def test_ids_from_the_files_are_auto_tokenizers(saved, kind, text):
    """With and without special tokens, llmtui's ids are those AutoTokenizer gives from the same files
    (another object, loaded another way); padding and truncation in the file never change them."""
    auto, from_file, engines = saved[kind]
    for special in (True, False):
        expected = auto(text, add_special_tokens=special)["input_ids"]
        for view in (from_file, engines):
            result = view.tokenize(text, add_special_tokens=special)
            assert result.ids == expected, (view is engines, special)
            assert len(result.offsets) == len(expected)


def test_the_tokenizers_add_their_own_special_tokens(saved):
    """What the comparison above stands on: the tokenizers add their BOS, [CLS] and [SEP] themselves, so
    that tokenizing without them gives other ids."""
    firsts = {}
    for kind in KINDS:
        auto = saved[kind][0]
        with_special, without = auto("hello world")["input_ids"], auto("hello world", add_special_tokens=False)
        firsts[kind] = [auto.convert_ids_to_tokens(i) for i in with_special if i in auto.all_special_ids]
        assert len(with_special) - len(without["input_ids"]) == len(firsts[kind])
    assert firsts == {
        "byte-level BPE": [],
        "SentencePiece, BOS added": ["<s>"],
        "WordPiece, [CLS]/[SEP]": ["[CLS]", "[SEP]"],
        "padding and truncation": ["[CLS]", "[SEP]"],
    }


@pytest.mark.parametrize(
    ("text", "data"),
    [("Hello world", b" Hello world"), ("  two  spaces", b"  two  spaces"), ("龍 x", b" \xe9\xbe\x8d x")],
)
def test_sentencepiece_true_bytes_have_spaces_where_the_marker_is(saved, text, data):
    """▁ stands for a space (the one SentencePiece prepends included) and <0xE9> for one byte."""
    _, view, _ = saved["SentencePiece, BOS added"]
    result = view.tokenize(text)
    assert [t.special for t in result][:1] == [True]  # the BOS
    assert b"".join(t.data for t in result if not t.special) == data
    assert all("▁" not in t.display for t in result)
