"""A server's own tokenizer, through its `/tokenize`: for `llmtui tokenize --url`, and for the inspector when
the model's tokenizer is not on this machine. vLLM's shape (and `llmtui serve`'s) is tried first, then
llama.cpp's; the view says whose tokenizer it shows.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass

from llmtui.backends.http import HttpBackend
from llmtui.core.errors import GenerationError, InvalidValue
from llmtui.core.tokens import BYTE_DECODER, Tokenization, TokenizerView


@dataclass(frozen=True)
class ServerTokens:
    """A text as a server's tokenizer cuts it: ids, and each token's piece where the server gives it."""

    ids: tuple[int, ...]
    pieces: tuple[str | None, ...]
    whose: str  # "the tokenizer of MODEL at HOST"


def server_tokenize(backend: HttpBackend, model: str, text: str, *, add_special_tokens: bool = True) -> ServerTokens:
    """Cut ``text`` with the server's own tokenizer: vLLM's (and llmtui serve's) `/tokenize` shape first,
    then llama.cpp's; InvalidValue when the server has neither."""
    whose = f"the tokenizer of {model} at {backend.endpoint.host}"
    vllm = {"model": model, "prompt": text, "add_special_tokens": add_special_tokens, "return_token_strs": True}
    try:
        answer = backend.request("POST", "/tokenize", vllm)
    except (InvalidValue, GenerationError):
        answer = None
    # vLLM's answer has a count; llama.cpp answers a request without "content" with no tokens at all.
    if isinstance(answer, dict) and isinstance(answer.get("tokens"), list) and "count" in answer:
        ids = tuple(int(i) for i in answer["tokens"] if isinstance(i, int))
        strs = answer.get("token_strs")
        pieces = tuple(str(p) for p in strs) if isinstance(strs, list) and len(strs) == len(ids) else (None,) * len(ids)
        return ServerTokens(ids, pieces, whose)
    llama = {"content": text, "add_special": add_special_tokens, "with_pieces": True}
    try:
        answer = backend.request("POST", "/tokenize", llama)
    except (InvalidValue, GenerationError):
        raise InvalidValue(f"{backend.endpoint.host} has no /tokenize llmtui can use (vLLM's or llama.cpp's)") from None
    tokens = answer.get("tokens") if isinstance(answer, dict) else None
    if not isinstance(tokens, list):
        raise InvalidValue(f"{backend.endpoint.host}'s /tokenize answered without tokens")
    ids_out: list[int] = []
    pieces_out: list[str | None] = []
    for t in tokens:
        if isinstance(t, dict):  # with_pieces: {"id", "piece"}; a piece that is not UTF-8 comes as bytes
            ids_out.append(int(t["id"]))
            piece = t.get("piece")
            pieces_out.append(bytes(piece).decode("utf-8", errors="replace") if isinstance(piece, list) else piece)
        else:
            ids_out.append(int(t))
            pieces_out.append(None)
    return ServerTokens(tuple(ids_out), tuple(pieces_out), whose)


class _Pieces(dict[int, str]):
    """The pieces of the tokens the server has shown so far; "" for one it has not."""

    def __missing__(self, token_id: int) -> str:
        return ""


class ServerTokenizerView(TokenizerView):
    """A server's tokenizer, seen through its `/tokenize` (vLLM's token strings, llama.cpp's pieces): what
    the inspector shows when the model's tokenizer is not on this machine. It knows the pieces of the tokens
    it has seen; searching the vocabulary and decoding ids need the tokenizer here."""

    def __init__(self, backend: HttpBackend, model: str) -> None:
        self.server = backend
        self.model = model
        self.name = f"the tokenizer of {model} at {backend.endpoint.host}"
        self.family = self.name  # what the inspector's summary says of the tokenizer it shows
        self.size = 0
        self.special_ids = frozenset()
        self.added_ids = frozenset()
        self.pieces = _Pieces()  # type: ignore[assignment]
        self._bytes: dict[int, bytes] = {}
        self._display: dict[int, str] = {}
        self._whole: dict[int, bool] = {}

    def _piece_bytes(self, piece: str, token_id: int) -> bytes:
        if piece and all(c in BYTE_DECODER for c in piece):  # vLLM's token strings are raw byte-level pieces
            return bytes(BYTE_DECODER[c] for c in piece)
        return piece.replace("▁", " ").encode("utf-8", errors="surrogatepass")

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> Tokenization:
        found = server_tokenize(self.server, self.model, text, add_special_tokens=add_special_tokens)
        for token, piece in zip(found.ids, found.pieces, strict=True):
            if piece is not None and token not in self.pieces:
                self.pieces[token] = piece
        offsets: list[tuple[int, int]] = []
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pos, pending = 0, []
        for i, token in enumerate(found.ids):  # each token's span in the text, a split character shared
            chunk = decoder.decode(self.piece_bytes(token))
            pending.append(i)
            offsets.append((pos, pos))
            if chunk:
                for j in pending:
                    offsets[j] = (pos, min(len(text), pos + len(chunk)))
                pos += len(chunk)
                pending = []
        return Tokenization(self, text, list(found.ids), offsets)

    def from_ids(self, ids: Sequence[int]) -> Tokenization:
        raise InvalidValue(f"decoding ids needs the model's tokenizer on this machine; this is {self.name}")

    def search(self, query: str, *, regex: bool = False, limit: int = 1000) -> tuple[list[int], int]:
        raise InvalidValue(f"searching the vocabulary needs the model's tokenizer on this machine; this is {self.name}")
