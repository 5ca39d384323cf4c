"""Tokenizer inspection: ids, pieces, true bytes, offsets, special tokens, vocabulary search.

Works on any transformers tokenizer; only the tokenizer is needed, never the weights. Pieces are
turned back into the bytes they stand for, per tokenizer family:
- byte-level BPE (GPT-2, Llama 3, Qwen, SmolLM): every byte is mapped to a printable character (Ġ = space);
- SentencePiece: ▁ is a space, and byte-fallback pieces such as <0xE4> are single bytes;
- WordPiece: ## marks a piece that continues a word.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from llmtui.core.errors import InvalidValue
from llmtui.core.text import escape_controls, visible

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_ID_RANGE = re.compile(r"^\s*(\d+)\s*(?:-|\.\.)\s*(\d+)\s*$")


def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode: printable character -> the byte it stands for."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


BYTE_DECODER = _byte_decoder()


def _is_whole_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def show_bytes(data: bytes) -> str:
    """Bytes for humans: valid UTF-8 as visible text, stray bytes of a partial character as ‹E4›."""
    text = data.decode("utf-8", errors="surrogateescape")
    return "".join(f"‹{ord(c) - 0xDC00:02X}›" if "\udc80" <= c <= "\udcff" else visible(c) for c in text)


@dataclass(frozen=True, slots=True)
class Token:
    """One token of a text, as the inspector shows it."""

    index: int
    token_id: int
    piece: str  # the raw vocabulary piece
    display: str  # for humans: whitespace visible, partial characters as ‹E4 BD›
    start: int  # character offsets into the source text ([start, end))
    end: int
    special: bool
    data: bytes  # the bytes this token stands for (the piece's text for special tokens)
    group: int  # tokens that together complete one character share the index of the first

    @property
    def hex(self) -> str:
        return self.data.hex(" ").upper()

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "token_id": self.token_id,
            "piece": self.piece,
            "display": self.display,
            "start": self.start,
            "end": self.end,
            "special": self.special,
        }


class Tokenization(Sequence[Token]):
    """A text cut into tokens. Token objects are built on access, so 1 MB of text stays cheap."""

    def __init__(self, view: TokenizerView, text: str, ids: list[int], offsets: list[tuple[int, int]]) -> None:
        self.view = view
        self.text = text
        self.ids = ids
        self.offsets = offsets

    @cached_property
    def groups(self) -> list[int]:
        """For each token, the index of the first token of its character (see TokenizerView.groups)."""
        return self.view.groups(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Token:  # type: ignore[override]
        if i < 0:
            i += len(self.ids)
        token_id = self.ids[i]
        start, end = self.offsets[i]
        return Token(
            index=i,
            token_id=token_id,
            piece=self.view.pieces[token_id],
            display=self.view.display(token_id),
            start=start,
            end=end,
            special=token_id in self.view.special_ids,
            data=self.view.piece_bytes(token_id),
            group=self.groups[i],
        )

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def chars(self) -> int:
        return len(self.text)

    @cached_property
    def bytes(self) -> int:
        return len(self.text.encode("utf-8", errors="surrogatepass"))

    @property
    def chars_per_token(self) -> float:
        return self.chars / self.count if self.count else 0.0

    def token_at(self, char: int) -> int | None:
        """The index of the token that covers a character offset (binary search over offsets)."""
        lo, hi = 0, len(self.offsets)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.offsets[mid][1] <= char:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.offsets) and self.offsets[lo][0] <= char < self.offsets[lo][1]:
            return lo
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tokenizer": self.view.name,
            "count": self.count,
            "chars": self.chars,
            "bytes": self.bytes,
            "tokens": [t.to_dict() for t in self],
        }


def _family(backend: Any) -> str:
    """How a tokenizer writes bytes in its pieces, from its decoder and the kind of its model.

    The decoder's own JSON (a few hundred bytes), not the model's repr, which holds the start of the
    vocabulary: a word-level vocabulary with a ▁ in it is no SentencePiece."""
    decoder = backend.decoder.__getstate__().decode() if backend.decoder is not None else ""
    model = type(backend.model).__name__
    if "ByteLevel" in decoder:
        return "byte-level BPE"
    if model == "WordPiece" or "WordPiece" in decoder:
        return "WordPiece"
    sentencepiece = "Metaspace" in decoder or "ByteFallback" in decoder or "▁" in decoder
    if sentencepiece or model == "Unigram" or getattr(backend.model, "byte_fallback", False):
        return "SentencePiece"
    return "other"


class TokenizerView:
    """A tokenizer seen by the inspector: pieces, true bytes, special tokens, search. Tables built once.

    It works on the ``tokenizers.Tokenizer`` that a fast transformers tokenizer wraps, so the ids are the
    ones ``tokenizer(text)["input_ids"]`` gives, and the CLI can use it without importing transformers.
    """

    def __init__(self, tokenizer: Any, name: str) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)  # a transformers tokenizer, or its backend
        # A tokenizer.json may carry padding and truncation (sentence-transformers models ship them), which
        # `encode` would apply; `tokenizer(text)` sets both per call and by default uses neither. Ids, counts
        # and offsets must be the text's own, so they are off here (transformers sets them again per call).
        backend.no_padding()
        backend.no_truncation()
        self.backend = backend
        self.name = name
        self.size = backend.get_vocab_size(with_added_tokens=True)
        self.family = _family(backend)
        added = backend.get_added_tokens_decoder()
        self.special_ids = frozenset(i for i, t in added.items() if t.special)
        self.added_ids = frozenset(added)
        self._bytes: dict[int, bytes] = {}
        self._display: dict[int, str] = {}
        self._whole: dict[int, bool] = {}  # token id -> its bytes are complete UTF-8 characters

    @cached_property
    def pieces(self) -> list[str]:
        return [self.backend.id_to_token(i) or "" for i in range(self.size)]

    def piece_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for in text (for special and added tokens, their own text)."""
        data = self._bytes.get(token_id)
        if data is None:
            data = self._bytes[token_id] = self._piece_bytes(self.pieces[token_id], token_id)
        return data

    def _piece_bytes(self, piece: str, token_id: int) -> bytes:
        # Pieces come from the tokenizers library (Rust strings): always valid Unicode, so encode() cannot fail.
        if token_id in self.added_ids:
            return piece.encode()
        if self.family == "byte-level BPE" and all(c in BYTE_DECODER for c in piece):
            return bytes(BYTE_DECODER[c] for c in piece)
        if self.family == "SentencePiece":
            m = _BYTE_FALLBACK.match(piece)
            if m:
                return bytes([int(m.group(1), 16)])
            return piece.replace("▁", " ").encode()
        if self.family == "WordPiece" and piece.startswith("##"):
            return piece[2:].encode()
        return piece.encode()

    def display(self, token_id: int) -> str:
        """A token for humans: special tokens as they are, others from their true bytes."""
        shown = self._display.get(token_id)
        if shown is None:
            if token_id in self.special_ids:
                shown = escape_controls(self.pieces[token_id])
            else:
                shown = show_bytes(self.piece_bytes(token_id))
            self._display[token_id] = shown
        return shown

    def groups(self, ids: Sequence[int]) -> list[int]:
        """For each token, the index of the first token of the character group it belongs to."""
        out: list[int] = []
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        whole = self._whole
        start = 0
        for i, token_id in enumerate(ids):
            if token_id in self.special_ids:
                decoder.reset()
                out.append(i)
                start = i + 1
                continue
            if start == i:  # nothing pending: a token that is whole characters needs no decoder
                is_whole = whole.get(token_id)
                if is_whole is None:
                    is_whole = whole[token_id] = _is_whole_utf8(self.piece_bytes(token_id))
                if is_whole:
                    out.append(i)
                    start = i + 1
                    continue
            decoder.decode(self.piece_bytes(token_id))
            out.append(start)
            if not decoder.getstate()[0]:  # no bytes left waiting: the character is complete
                start = i + 1
        return out

    def tokenize(self, text: str, *, add_special_tokens: bool = True, share_gil: bool = True) -> Tokenization:
        """Cut text exactly as the model receives it (``tokenizer(text)["input_ids"]``), with offsets.
        ``share_gil`` False where no other thread waits (a command line): the spans in one call, faster."""
        # The UI tokenizes on a worker thread, so nothing here may hold the GIL for long. tokenizers' `encode`
        # holds it throughout (a 1 MB text held the UI's event loop for a second) and `encode_batch` lets go
        # of it: a batch of one, the same pipeline and ids. `enc.offsets` builds every span in one call that
        # holds it too (0.1 s for 1 MB); one token at a time, other threads run in between. Both give a
        # special token added around the text (0, 0).
        (enc,) = self.backend.encode_batch([text], add_special_tokens=add_special_tokens)
        if not share_gil:
            return Tokenization(self, text, enc.ids, enc.offsets)
        span = enc.token_to_chars
        offsets = [span(i) or (0, 0) for i in range(len(enc))]
        return Tokenization(self, text, enc.ids, offsets)

    def from_ids(self, ids: Sequence[int]) -> Tokenization:
        """Ids to pieces and text; offsets point into the decoded text."""
        for token_id in ids:
            if not 0 <= token_id < self.size:
                raise InvalidValue(f"id {token_id} is out of range: the vocabulary has ids 0 to {self.size - 1}")
        pieces_text: list[str] = []
        offsets: list[tuple[int, int]] = []
        pos = 0
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending: list[int] = []
        for i, token_id in enumerate(ids):
            chunk = decoder.decode(self.piece_bytes(token_id))
            pending.append(i)
            offsets.append((pos, pos))
            if chunk:
                for j in pending:  # tokens of one character share its span
                    offsets[j] = (pos, pos + len(chunk))
                pieces_text.append(chunk)
                pos += len(chunk)
                pending = []
        return Tokenization(self, "".join(pieces_text), list(ids), offsets)

    @cached_property
    def _by_bytes(self) -> dict[bytes, int]:
        """Each ordinary token's bytes -> its id (byte-level BPE gives every byte string one token)."""
        table: dict[bytes, int] = {}
        for i in range(self.size):
            if i not in self.added_ids:
                table.setdefault(self.piece_bytes(i), i)
        return table

    def ids_of_bytes(self, data: bytes, count: int) -> list[int] | None:
        """The ``count`` tokens whose bytes make ``data``, when exactly one such cut exists; else None.

        For a server that reports the tokens of a character split over several only as the last one
        (llama.cpp's), with the whole character's bytes: the ids before it are known when one cut alone fits.
        """
        if count <= 0 or not data:
            return None
        table = self._by_bytes
        longest = max(map(len, table), default=0)
        # ways[i][k]: the number of cuts of data[i:] into k tokens (capped at 2: more than one is enough).
        n = len(data)
        ways = [[0] * (count + 1) for _ in range(n + 1)]
        ways[n][0] = 1
        for i in range(n - 1, -1, -1):
            for j in range(i + 1, min(n, i + longest) + 1):
                if data[i:j] in table:
                    for k in range(1, count + 1):
                        ways[i][k] = min(2, ways[i][k] + ways[j][k - 1])
        if ways[0][count] != 1:
            return None
        ids, i, k = [], 0, count
        while k:
            j = next(j for j in range(i + 1, n + 1) if data[i:j] in table and ways[j][k - 1] == 1)
            ids.append(table[data[i:j]])
            i, k = j, k - 1
        return ids

    def special_tokens(self) -> list[tuple[int, str]]:
        """Every special or added token with its id, sorted by id."""
        return [(i, self.pieces[i]) for i in sorted(self.special_ids | self.added_ids)]

    def search(self, query: str, *, regex: bool = False, limit: int = 1000) -> tuple[list[int], int]:
        """Vocabulary ids whose piece or display form matches; an id range such as ``100-200`` or a
        single id also works. Returns (up to ``limit`` ids, sorted, and the total number of matches)."""
        m = _ID_RANGE.match(query)
        if m:
            lo, hi = sorted((int(m.group(1)), int(m.group(2))))
            hits = range(lo, min(hi, self.size - 1) + 1)
            return list(hits[:limit]), len(hits)
        if query.strip().isdigit():
            token_id = int(query)
            return ([token_id], 1) if token_id < self.size else ([], 0)
        if regex:
            try:
                pattern = re.compile(query)
            except re.error as exc:
                raise InvalidValue(f"not a valid regular expression: {exc}") from None
            piece_hits = [i for i, p in enumerate(self.pieces) if pattern.search(p)]
            shown_hits = [i for i, s in enumerate(self.displays) if pattern.search(s)]
        else:
            piece_hits = [i for i, p in enumerate(self.pieces) if query in p]
            shown_hits = [i for i, s in enumerate(self.displays) if query in s]
        hits_all = sorted(set(piece_hits).union(shown_hits))
        return hits_all[:limit], len(hits_all)

    @cached_property
    def displays(self) -> list[str]:
        """Display form of every id (built on the first search). Spaces stay spaces for searching."""
        return [self.display(i).replace("·", " ") for i in range(self.size)]
