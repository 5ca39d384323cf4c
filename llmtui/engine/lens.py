"""The model lens over a loaded model's hidden states: embeddings, neighbours in the vocabulary, logit lens.

Local models only: these read the network's insides, which no server returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmtui.core.errors import ContextOverflow, InvalidValue, UnsupportedModel
from llmtui.core.events import Candidate
from llmtui.core.lens import POOLS, Embeddings, LensLayer, LensStep, Neighbour
from llmtui.core.tokens import TokenizerView
from llmtui.engine.loader import LoadedModel
from llmtui.engine.neighbours import NeighbourIndex

# Where architectures keep the norm applied after the last block (Llama, Mistral, Qwen: norm; GPT-2: ln_f).
_FINAL_NORMS = ("norm", "ln_f", "final_layer_norm", "final_layernorm")


class Lens:
    """The lens over one loaded model."""

    def __init__(self, loaded: LoadedModel, view: TokenizerView | None = None) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.view = view or TokenizerView(loaded.tokenizer, loaded.info.name)
        self.layers = int(self.model.config.num_hidden_layers)
        self._indexes: dict[str, NeighbourIndex | None] = {}  # "input" / "output" -> its rows, searchable

    def hidden_states(self, ids: Sequence[int]) -> Any:
        """[layers + 1, tokens, dim]: the input embeddings, then the output of every block."""
        import torch

        context = self.loaded.info.context_length
        if context and len(ids) > context:
            raise ContextOverflow(f"{len(ids)} tokens do not fit the model's context of {context}")
        with torch.inference_mode():
            out = self.model(torch.tensor([list(ids)], device=self.loaded.device), output_hidden_states=True)
        return torch.stack([h[0] for h in out.hidden_states]).float()

    def _layer(self, layer: int | None) -> int:
        chosen = self.layers if layer is None else layer
        if not 0 <= chosen <= self.layers:
            raise InvalidValue(f"layer must be 0 to {self.layers} (0: the input embeddings), not {layer}")
        return chosen

    def embed(
        self, texts: Sequence[str], *, layer: int | None = None, pool: str = "mean", word: str | None = None
    ) -> Embeddings:
        """Each text's pooled vector at ``layer`` (or, with ``word``, the mean of that word's tokens in it),
        and the cosine similarity of every pair."""
        import torch

        if pool not in POOLS:
            raise InvalidValue(f"pool must be one of {', '.join(POOLS)}, not {pool!r}")
        if not texts:
            raise InvalidValue("give at least one text")
        chosen = self._layer(layer)
        vectors, counts = [], []
        for n, text in enumerate(texts, start=1):
            tokenization = self.view.tokenize(text)
            if not tokenization.ids:
                raise InvalidValue(f"text {n} is empty")
            states = self.hidden_states(tokenization.ids)[chosen]  # [tokens, dim]
            if word is not None:
                rows = _word_tokens(tokenization, text, word)
                if not rows:
                    raise InvalidValue(f"text {n} does not contain the word {word!r}")
                vectors.append(states[rows].mean(dim=0))
                counts.append(len(rows))
            else:
                vectors.append(states.mean(dim=0) if pool == "mean" else states[-1])
                counts.append(len(tokenization.ids))
        unit = torch.nn.functional.normalize(torch.stack(vectors), dim=-1)
        similarity = (unit @ unit.T).tolist()
        return Embeddings(
            model=self.loaded.info.name,
            layer=chosen,
            pool=pool,
            dim=int(unit.shape[-1]),
            tokens=tuple(counts),
            similarity=tuple(tuple(row) for row in similarity),
            word=word,
        )

    def index(self, which: str) -> NeighbourIndex | None:
        """The rows of the input embeddings ("input") or of the output head ("output"; None when it is
        tied to the input's), indexed for neighbours on first use."""
        if which not in self._indexes:
            inputs = self.model.get_input_embeddings().weight
            head = self.model.get_output_embeddings()
            weight = inputs if which == "input" else (head.weight if head is not None else None)
            tied = getattr(self.model.config, "tie_word_embeddings", False)
            if weight is None or (which == "output" and (tied or weight.data_ptr() == inputs.data_ptr())):
                self._indexes[which] = None
            else:
                self._indexes[which] = NeighbourIndex.build(weight.detach()[: len(self.view.pieces)])
        return self._indexes[which]

    def neighbours(self, token_id: int, k: int = 10, which: str = "input") -> list[Neighbour] | None:
        """The ``k`` tokens nearest ``token_id`` by cosine of their ``which`` embedding rows (itself left
        out); None when the output head is tied to the input embeddings."""
        index = self.index(which)
        if index is None:
            return None
        if not 0 <= token_id < index.rows.shape[0]:
            raise InvalidValue(f"id {token_id} is out of range: the vocabulary has ids 0 to {index.rows.shape[0] - 1}")
        return [Neighbour(i, self.view.display(i), c) for i, c in index.nearest(token_id, k)]

    def lens(self, ids: Sequence[int], positions: Sequence[int], top: int = 5) -> list[LensStep]:
        """For each position: the next-token distribution every layer's hidden state gives, read through
        the final norm and the output head (the last layer's is the model's own answer)."""
        import torch

        for p in positions:
            if not 0 <= p < len(ids):
                raise InvalidValue(f"position {p} is outside the text's {len(ids)} tokens (0 to {len(ids) - 1})")
        norm = next(
            (getattr(self.model.base_model, n) for n in _FINAL_NORMS if hasattr(self.model.base_model, n)), None
        )
        head = self.model.get_output_embeddings()
        if norm is None or head is None:
            raise UnsupportedModel(
                f"the logit lens does not know where {type(self.model).__name__} keeps its final norm"
            )
        states = self.hidden_states(ids)  # [layers + 1, tokens, dim]
        pieces = self.view.pieces
        steps = []
        with torch.inference_mode():
            for p in positions:
                # The last entry already has the final norm applied (transformers' convention); the others do not.
                hidden = states[:, p].to(head.weight.dtype)
                normed = torch.cat([norm(hidden[:-1]), hidden[-1:]])
                probs = torch.softmax(head(normed).float()[:, : len(pieces)], dim=-1)
                values, indices = torch.topk(probs, top, dim=-1)
                layers = tuple(
                    LensLayer(n, tuple(Candidate(i, pieces[i], v) for v, i in zip(vs, ix, strict=True)))
                    for n, (vs, ix) in enumerate(zip(values.tolist(), indices.tolist(), strict=True))
                )
                steps.append(LensStep(p, int(ids[p]), self.view.display(int(ids[p])), layers))
        return steps


def _word_tokens(tokenization: Any, text: str, word: str) -> list[int]:
    """The indices of the tokens that cover the first whole occurrence of ``word`` in ``text``."""
    import re

    found = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text)
    if found is None:
        return []
    start, end = found.span()
    return [t.index for t in tokenization if t.end > start and t.start < end and not t.special]
