"""Neighbours by cosine through the int8 index are exactly those of the full product: where its bound
cannot vouch for the int8 candidates, it must fall back."""

from __future__ import annotations

import pytest
import torch

from llmtui.engine.neighbours import NeighbourIndex


def exact(table: torch.Tensor, token_id: int, k: int) -> list[int]:
    unit = torch.nn.functional.normalize(table, dim=-1)
    cosines = unit @ unit[token_id]
    cosines[token_id] = -2
    return torch.topk(cosines, k).indices.tolist()


@pytest.fixture(scope="module")
def table() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    # Rows that share a direction, as embedding rows do, at different strengths: cosines are crowded.
    common = torch.randn(8, 96, generator=generator)
    mix = torch.randn(6_000, 8, generator=generator)
    return mix @ common + 0.5 * torch.randn(6_000, 96, generator=generator)


def test_the_int8_index_gives_the_exact_neighbours(table):
    index = NeighbourIndex.build(table, coded=True, candidates=512)
    assert index.codes is not None and index.codes.dtype == torch.int8
    vouched = 0
    for token_id in range(0, 6_000, 300):
        found = index.nearest(token_id, 10)
        assert [i for i, _ in found] == exact(table, token_id, 10)
        vouched += index.certified(token_id, 10) is not None
    assert vouched >= 15  # the fast path is the one taken


def test_where_the_bound_cannot_vouch_the_full_product_answers(table):
    # Twelve candidates for ten neighbours: the int8 order alone would often be wrong here.
    index = NeighbourIndex.build(table, coded=True, candidates=12)
    refused = 0
    for token_id in range(0, 6_000, 300):
        assert [i for i, _ in index.nearest(token_id, 10)] == exact(table, token_id, 10)
        refused += index.certified(token_id, 10) is None
    assert refused > 0


def test_a_small_table_is_searched_whole():
    index = NeighbourIndex.build(torch.randn(500, 16))
    assert index.codes is None
    assert index.certified(3, 5) is None
    assert len(index.nearest(3, 5)) == 5
