"""The model lens (engine/lens.py) against the model's own tensors, computed here by hand."""

from __future__ import annotations

import pytest
import torch

from llmtui.core.errors import InvalidValue
from llmtui.engine.lens import Lens

TEXT = "The river bank was muddy, and the bank by the river closed."


@pytest.fixture(scope="module")
def lens(tiny_loaded):
    return Lens(tiny_loaded)


def _states(loaded, ids):
    with torch.inference_mode():
        return loaded.model(torch.tensor([ids]), output_hidden_states=True)


def test_the_logit_lens_reads_every_layer_through_the_final_norm_and_the_head(lens, tiny_loaded):
    ids = lens.view.tokenize(TEXT).ids
    [step] = lens.lens(ids, [5], top=3)
    out = _states(tiny_loaded, ids)
    model = tiny_loaded.model
    vocab = len(lens.view.pieces)
    assert [layer.layer for layer in step.layers] == list(range(model.config.num_hidden_layers + 1))
    for layer in step.layers:
        hidden = out.hidden_states[layer.layer][0, 5]
        if layer.layer < model.config.num_hidden_layers:  # the last one already went through the norm
            hidden = model.model.norm(hidden)
        with torch.inference_mode():
            probs = torch.softmax(model.lm_head(hidden).float()[:vocab], dim=-1)
        top = torch.topk(probs, 3)
        assert [c.token_id for c in layer.candidates] == top.indices.tolist()
        assert [c.prob for c in layer.candidates] == pytest.approx(top.values.tolist(), rel=1e-5)
    # The last layer's answer is the model's own next-token distribution.
    own = torch.softmax(out.logits[0, 5].float()[:vocab], dim=-1)
    assert step.layers[-1].candidates[0].prob == pytest.approx(own.max().item(), rel=1e-5)
    with pytest.raises(InvalidValue, match="position"):
        lens.lens(ids, [len(ids)])


def test_embeddings_pool_a_layer_and_compare_every_pair(lens, tiny_loaded):
    texts = ["I sat on the river bank.", "I put money in the bank.", "Cats sleep."]
    result = lens.embed(texts, layer=1, pool="mean")
    vectors = []
    for text in texts:
        ids = lens.view.tokenize(text).ids
        vectors.append(_states(tiny_loaded, ids).hidden_states[1][0].mean(dim=0))
    unit = torch.nn.functional.normalize(torch.stack(vectors), dim=-1)
    for row, expected in zip(result.similarity, (unit @ unit.T).tolist(), strict=True):
        assert row == pytest.approx(expected, rel=1e-5)
    assert result.dim == 64 and result.layer == 1
    # --word: the mean of the word's own tokens in each text, nothing else.
    worded = lens.embed(texts[:2], word="bank")
    rows = []
    for text in texts[:2]:
        tokenization = lens.view.tokenize(text)
        start = text.index("bank")
        picked = [t.index for t in tokenization if t.start < start + 4 and t.end > start]
        rows.append(_states(tiny_loaded, tokenization.ids).hidden_states[-1][0][picked].mean(dim=0))
    assert worded.tokens == (len(picked), len(picked))
    expected = torch.nn.functional.cosine_similarity(rows[0], rows[1], dim=0).item()
    assert worded.similarity[0][1] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(InvalidValue, match="does not contain"):
        lens.embed(["Cats sleep."], word="bank")


def test_neighbours_are_the_nearest_rows_by_cosine(lens, tiny_loaded):
    weight = tiny_loaded.model.get_input_embeddings().weight[: len(lens.view.pieces)].float()
    unit = torch.nn.functional.normalize(weight, dim=-1)
    cosines = unit @ unit[42]
    cosines[42] = -2
    found = lens.neighbours(42, 5)
    assert [n.token_id for n in found] == torch.topk(cosines, 5).indices.tolist()
    assert lens.neighbours(42, 5, "output") is not None  # the tiny model's head is not tied
