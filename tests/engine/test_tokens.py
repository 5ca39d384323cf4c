from __future__ import annotations

import builders
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtui.core import tokens
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


# Views are built in each test, not shared (the tokenizers under them are): a view's tables are filled as it
# is used, and each test must see what a fresh view does; and mutation testing maps each test to the code
# it runs (a view built once would be counted to the first test alone).
@pytest.fixture
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
    expected = hf[family](text, return_offsets_mapping=True)
    assert result.ids == expected["input_ids"]
    assert result.offsets == [tuple(span) for span in expected["offset_mapping"]]
    assert view.tokenize(text, share_gil=False).offsets == result.offsets  # the command line's one call
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


@pytest.mark.parametrize("family", ["byte-level BPE", "SentencePiece", "WordPiece"])
def test_view_knows_its_family_and_whole_vocabulary(views, hf, family):
    """The family decides how pieces become bytes; the size counts added tokens, as len() does."""
    view = views[family]
    assert view.family == family
    assert view.size == len(hf[family])
    assert view.name == family
    last = view.size - 1  # an added token: beyond the model's own vocabulary
    assert view.from_ids([last]).ids == [last]
    assert view.search(f"{last}") == ([last], 1)


def test_counts(views):
    result = views["byte-level BPE"].tokenize("你好 world")
    assert result.chars == 8 and result.bytes == 12
    assert result.chars_per_token == pytest.approx(8 / result.count)
    d = result.to_dict()
    assert set(d) == {"tokenizer", "count", "chars", "bytes", "tokens"}
    assert (d["tokenizer"], d["count"], d["chars"], d["bytes"]) == ("byte-level BPE", result.count, 8, 12)
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


def test_byte_level_table_is_gpt2s():
    """Every byte-level piece's true bytes come from this table: it must invert GPT-2's bytes_to_unicode
    (as transformers writes it) for all 256 bytes. Built afresh here: the module's copy is made at import."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    reference = {char: byte for byte, char in bytes_to_unicode().items()}
    assert tokens._byte_decoder() == reference
    assert reference == tokens.BYTE_DECODER


@pytest.fixture
def tiny_bpe():
    """A byte-level BPE with a vocabulary small enough to count its cuts by hand: the 256 bytes, "aa",
    "ab", "##" (WordPiece's continuation mark, here two bytes like any other), and added tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=lambda c: tokens.BYTE_DECODER[c])
    vocab = {c: i for i, c in enumerate(alphabet)} | {"aa": 256, "ab": 257, "##": 258}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("a", "a"), ("a", "b"), ("#", "#")]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<x>", special=True)])  # id 259
    tok.add_tokens([AddedToken("<Ġx>", special=False)])  # id 260: added, not special, and not bytes
    return TokenizerView(tok, "tiny")


MARK, SPECIAL, ADDED = 258, 259, 260  # "##", and the added tokens
DRAGON = list("龍".encode())  # three byte tokens: ids 0 to 255 are the bytes


def test_groups_join_the_tokens_of_one_character(tiny_bpe):
    """Each token's group is the first token of its character; special tokens stand alone, and a stray
    byte joins what the decoder gives out with it."""
    a, b = ord("a"), ord("b")
    ids = [a, *DRAGON, b, SPECIAL, *DRAGON]
    assert tiny_bpe.groups(ids) == [0, 1, 1, 1, 4, 5, 6, 6, 6]
    assert [t.group for t in tiny_bpe.from_ids(ids)] == [0, 1, 1, 1, 4, 5, 6, 6, 6]
    assert tiny_bpe.groups([DRAGON[0], a, b]) == [0, 0, 2]  # a lead byte alone: "\ufffda" comes out at a


def test_from_ids_offsets_point_into_the_decoded_text(tiny_bpe):
    result = tiny_bpe.from_ids([ord("a"), *DRAGON, ord("b"), SPECIAL])
    assert result.text == "a龍b<x>"
    assert result.offsets == [(0, 1), (1, 2), (1, 2), (1, 2), (2, 3), (3, 6)]
    assert [t.index for t in result] == [0, 1, 2, 3, 4, 5]
    assert result[-1].token_id == SPECIAL and result[-1].index == 5 and result[-4].token_id == DRAGON[1]
    unfinished = tiny_bpe.from_ids([ord("a"), DRAGON[0]])  # a character cut off: its token covers nothing
    assert unfinished.text == "a" and unfinished.offsets == [(0, 1), (1, 1)]
    stray = tiny_bpe.from_ids([0x80, ord("a")])  # not UTF-8: replaced, as a decoder does
    assert stray.text == "\ufffda" and stray.offsets == [(0, 1), (1, 2)]
    assert tiny_bpe.from_ids([0]).text == "\x00"
    last = tiny_bpe.size - 1
    with pytest.raises(InvalidValue, match=f"^id {last + 1} is out of range: the vocabulary has ids 0 to {last}$"):
        tiny_bpe.from_ids([last + 1])


def test_token_at_finds_the_token_of_every_character(tiny_bpe):
    result = tiny_bpe.tokenize("aab 龍<x>b")
    expected = [None] * (len(result.text) + 2)
    for token in reversed(result):
        for char in range(token.start, token.end):
            expected[char] = token.index
    assert [result.token_at(char) for char in range(-1, len(result.text) + 1)] == [None, *expected[:-1]]


def test_added_tokens_are_their_own_text(tiny_bpe):
    """An added token's bytes are its text, even where the family's rule would read it otherwise (Ġ is a
    space to byte-level BPE); both kinds are listed, the special one marked."""
    assert tiny_bpe.piece_bytes(ADDED) == "<Ġx>".encode()
    assert tiny_bpe.display(ADDED) == "<Ġx>"
    assert tiny_bpe.special_tokens() == [(SPECIAL, "<x>"), (ADDED, "<Ġx>")]
    assert [t.special for t in tiny_bpe.tokenize("a<x><Ġx>")] == [False, True, False]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=6).map(lambda b: bytes(ord("ab#"[x % 3]) for x in b)), count=st.integers(0, 7))
def test_ids_of_bytes_is_the_only_cut_there_is(tiny_bpe, data, count):
    """Against every cut of the bytes into ``count`` ordinary tokens, counted by brute force."""
    table = {tiny_bpe.piece_bytes(i): i for i in range(SPECIAL)}  # the ordinary tokens

    def cuts(rest: bytes, k: int) -> list[list[int]]:
        if not rest or not k:
            return [[]] if not rest and not k else []
        return [
            [table[rest[:j]], *tail]
            for j in range(1, len(rest) + 1)
            if rest[:j] in table
            for tail in cuts(rest[j:], k - 1)
        ]

    found = cuts(data, count) if data and count else []
    assert tiny_bpe.ids_of_bytes(data, count) == (found[0] if len(found) == 1 else None)


def test_byte_level_pieces_keep_wordpieces_mark(tiny_bpe):
    assert tiny_bpe.piece_bytes(MARK) == b"##" and tiny_bpe.display(MARK) == "##"


def test_vocabulary_search_stops_at_the_last_id(tiny_bpe):
    size = tiny_bpe.size
    assert tiny_bpe.search(f"{size - 3}-{size + 10}") == ([size - 3, size - 2, size - 1], 3)
    assert tiny_bpe.search(f"{size - 1}") == ([size - 1], 1)
    assert tiny_bpe.search(f"{size}") == ([], 0)
    literal, total = tiny_bpe.search("#")
    assert literal == [ord("#"), MARK] and total == 2
    assert tiny_bpe.search(".")[0] == [ord(".")]  # a plain search: "." is a dot, not a pattern
    assert len(tiny_bpe.search(".", regex=True)[0]) == min(1000, size)
    assert tiny_bpe.search("#", limit=1) == ([ord("#")], 2)


def test_wordpiece_continuation_pieces_are_their_text_without_the_mark(views):
    view = views["WordPiece"]
    continuations = [i for i, piece in enumerate(view.pieces) if piece.startswith("##") and len(piece) > 2]
    assert continuations  # the tiny vocabulary has them
    for i in continuations:
        assert view.piece_bytes(i) == view.pieces[i][2:].encode()
        assert view.display(i) == view.pieces[i][2:]


def test_other_tokenizers_are_read_as_their_pieces():
    """A tokenizer of no family llmtui knows (a word-level one): its pieces are their own text, a "##"
    (WordPiece's mark) and a "▁" (SentencePiece's) in its vocabulary included."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "hello": 1, "world": 2, "##x": 3, "▁y": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    view = TokenizerView(tok, "word-level")
    assert view.family == "other"
    pieces = [view.piece_bytes(i) for i in view.tokenize("hello world ##x ▁y").ids]
    assert pieces == [b"hello", b"world", b"##x", "▁y".encode()]


def _bare(model: str, decoder: str | None):
    """A tokenizer with one sign of its family alone: ``model`` names its model, ``decoder`` its decoder."""
    from tokenizers import Tokenizer, decoders, models

    vocab = {"[UNK]": 0, "a": 1, "b": 2}
    built = {
        "BPE": lambda: models.BPE(vocab, [], unk_token="[UNK]"),
        "BPE with byte fallback": lambda: models.BPE(vocab, [], unk_token="[UNK]", byte_fallback=True),
        "WordPiece": lambda: models.WordPiece(vocab, unk_token="[UNK]"),
        "Unigram": lambda: models.Unigram([(piece, 0.0) for piece in vocab], 0, False),
        "WordLevel": lambda: models.WordLevel(vocab, unk_token="[UNK]"),
    }
    tok = Tokenizer(built[model]())
    if decoder is not None:
        tok.decoder = {
            "ByteLevel": decoders.ByteLevel,
            "WordPiece": decoders.WordPiece,
            "Metaspace with its own mark": lambda: decoders.Metaspace(replacement="_"),
            "ByteFallback": decoders.ByteFallback,
            "Replace of ▁": lambda: decoders.Replace("▁", " "),
        }[decoder]()
    return tok


@pytest.mark.parametrize(
    ("model", "decoder", "family"),
    [
        ("BPE", "ByteLevel", "byte-level BPE"),
        ("WordPiece", None, "WordPiece"),
        ("BPE", "WordPiece", "WordPiece"),
        ("BPE", "Metaspace with its own mark", "SentencePiece"),
        ("BPE", "ByteFallback", "SentencePiece"),
        ("BPE", "Replace of ▁", "SentencePiece"),
        ("Unigram", None, "SentencePiece"),
        ("BPE with byte fallback", None, "SentencePiece"),
        ("BPE", None, "other"),
        ("WordLevel", None, "other"),
    ],
)
def test_each_sign_of_a_family_alone_names_it(model, decoder, family):
    """The tokenizers the other tests build show every sign of their family at once; tokenizers in the wild
    show some (a WordPiece model saved without its decoder, T5's Unigram, a SentencePiece BPE whose decoder
    is only a Replace of ▁): each sign alone must name the family, and none names one that is not there."""
    assert TokenizerView(_bare(model, decoder), "bare").family == family


def test_ids_of_bytes_finds_the_one_cut(tiny_bpe):
    """A character a server streamed as its last token only: its tokens are known when exactly one cut of
    its bytes into that many tokens exists (added tokens are never part of a character)."""
    a, b, aa, ab = ord("a"), ord("b"), 256, 257  # ids 0 to 255 are the bytes, in order
    assert tiny_bpe.ids_of_bytes(b"ab", 1) == [ab]
    assert tiny_bpe.ids_of_bytes(b"ab", 2) == [a, b]
    assert tiny_bpe.ids_of_bytes(b"aab", 2) is None  # aa+b or a+ab
    assert tiny_bpe.ids_of_bytes(b"aab", 3) == [a, a, b]
    assert tiny_bpe.ids_of_bytes(b"baa", 2) == [b, aa]
    dragon = "龍".encode()
    assert tiny_bpe.ids_of_bytes(dragon, 3) == list(dragon)
    assert tiny_bpe.ids_of_bytes(dragon, 2) is None  # no token of two of its bytes
    assert tiny_bpe.ids_of_bytes(dragon, 4) is None
    assert tiny_bpe.ids_of_bytes(b"<x>", 1) is None  # the added token's text is not its bytes
    assert tiny_bpe.ids_of_bytes(b"<x>", 3) == list(b"<x>")
    assert tiny_bpe.ids_of_bytes(b"ab", 0) is None
    assert tiny_bpe.ids_of_bytes(b"", 1) is None


def test_show_bytes_escapes_controls():
    assert show_bytes(b"\x1b]0;x\x07") == "\\x1b]0;x\\x07"
    assert show_bytes(b"a \xe4") == "a·‹E4›"
    assert show_bytes(b"\x80\xff") == "‹80›‹FF›"  # the two ends of the bytes shown as ‹XX›


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
def saved_tokenizers(tmp_path_factory):
    """Every kind of tokenizer, saved as files, and read from them three ways: by transformers'
    AutoTokenizer, as llmtui reads tokenizer.json, and as the engine loads its own tokenizer."""
    from transformers import AutoTokenizer

    from llmtui.engine.specs import load_tokenizer, load_transformers_tokenizer

    paths = builders.saved_tokenizers(tmp_path_factory.mktemp("tokenizers"))
    return {
        kind: (
            AutoTokenizer.from_pretrained(path),
            load_tokenizer(str(path)),
            load_transformers_tokenizer(path, kind, trust_remote_code=False),
        )
        for kind, path in paths.items()
    }


@pytest.fixture
def saved(saved_tokenizers):
    """Per kind: what AutoTokenizer reads from the files (the ids the model receives), llmtui's view of
    tokenizer.json as `llmtui tokenize` and the workstation read it, and its view of the engine's own
    tokenizer, as the server uses it (views built per test, as above)."""
    return {
        kind: (auto, TokenizerView(from_file, kind), TokenizerView(engines, kind))
        for kind, (auto, from_file, engines) in saved_tokenizers.items()
    }


KINDS = ["byte-level BPE", "SentencePiece, BOS added", "WordPiece, [CLS]/[SEP]", "padding and truncation"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("text", [*TEXTS, "the quick brown fox jumps over the lazy dog " * 4])
def test_ids_from_the_files_are_auto_tokenizers(saved, kind, text):
    """With and without special tokens, llmtui's ids are those AutoTokenizer gives from the same files
    (another object, loaded another way); padding and truncation in the file never change them."""
    auto, from_file, engines = saved[kind]
    for special in (True, False):
        expected = auto(text, add_special_tokens=special, return_offsets_mapping=True)
        for view in (from_file, engines):
            for share_gil in (True, False):
                result = view.tokenize(text, add_special_tokens=special, share_gil=share_gil)
                assert result.ids == expected["input_ids"], (view is engines, special)
                # Each token's span too; a special token the tokenizer adds covers no text, (0, 0) as there.
                assert result.offsets == [tuple(span) for span in expected["offset_mapping"]]


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
