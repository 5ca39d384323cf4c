"""The model lens's results: what the embeddings say, and what each layer would have said.

Computed by engine/lens.py from the model's hidden states (local models only); printed by `llmtui embed` and
`llmtui lens`. Each has one serialiser, its ``to_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmtui.core import checked
from llmtui.core.events import Candidate

POOLS = ("mean", "last")  # how a text's token vectors become one vector


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Texts' vectors at one layer and the cosine similarity of every pair."""

    model: str
    layer: int  # 0: the input embeddings; n: after the n-th block (the last is after the final norm)
    pool: str  # one of POOLS
    dim: int
    tokens: tuple[int, ...]  # tokens pooled for each text (the word's tokens, with ``word``)
    similarity: tuple[tuple[float, ...], ...]  # similarity[i][j]: cosine of text i's vector and text j's
    word: str | None = None  # the word whose contextual vector each text gave, if one was asked for

    def to_dict(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "layer": self.layer,
            "pool": self.pool,
            "dim": self.dim,
            "tokens": list(self.tokens),
            "similarity": [list(row) for row in self.similarity],
        }
        if self.word is not None:
            out["word"] = self.word
        return out


@dataclass(frozen=True, slots=True)
class Neighbour:
    """A token near another in embedding space."""

    token_id: int
    piece: str
    cosine: float

    def to_dict(self) -> dict[str, Any]:
        return {"token_id": self.token_id, "piece": self.piece, "cosine": self.cosine}

    @classmethod
    def from_dict(cls, d: Any) -> Neighbour:
        d = checked.obj(d, "a neighbour")
        return cls(checked.whole(d, "token_id"), checked.text(d, "piece"), checked.number(d, "cosine"))


@dataclass(frozen=True, slots=True)
class LensLayer:
    """The next-token distribution one layer's hidden state gives, read through the final norm and the head."""

    layer: int
    candidates: tuple[Candidate, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "candidates": [c.to_dict() for c in self.candidates]}

    @classmethod
    def from_dict(cls, d: Any) -> LensLayer:
        d = checked.obj(d, "a layer")
        candidates = tuple(Candidate.from_dict(c) for c in checked.array(d, "candidates"))
        return cls(checked.whole(d, "layer"), candidates)


@dataclass(frozen=True, slots=True)
class LensStep:
    """The logit lens at one position: after token ``index``, what each layer would have said comes next."""

    index: int
    token_id: int
    piece: str
    layers: tuple[LensLayer, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "lens",
            "index": self.index,
            "token_id": self.token_id,
            "piece": self.piece,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, d: Any) -> LensStep:
        """Read back one position of the lens (from the wire); ValueError names a field that is wrong."""
        d = checked.obj(d, "a lens step")
        layers = tuple(LensLayer.from_dict(x) for x in checked.array(d, "layers"))
        return cls(checked.whole(d, "index"), checked.whole(d, "token_id"), checked.text(d, "piece"), layers)
