"""Nearest rows by cosine in an embedding table, exact, reading a quarter of its bytes per query.

A query is one matrix-vector product over the whole table, so its time is the table's size over the memory
bandwidth: 2.2 GB in float32 for a 152,000 x 3,584 vocabulary (Qwen2-7B's), over 100 ms on a CPU. The index
keeps the unit-length rows as int8 codes with a scale per row (a quarter of the bytes), scores every row
from those, and then takes the exact cosine of only the best `candidates` rows from the table itself. The
answer is exact, not approximate: every coarse score is within a bound of the true cosine (the rounding of
the codes, of the query and of the result), so when the k-th exact cosine beats the best coarse score
left out by more than that bound, no row left out can belong; when it does not, the query falls back to
the full product. On a GPU the full product is already fast, and the table is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# How many rows are re-scored exactly. The certificate needs the k-th nearest to stand clear of the
# candidates' tail by the coarse scores' error bound (about 0.015 at 3,584 dimensions): 2,048 rows of a
# 150,000-row table reach well down the tail, and gathering them costs a few milliseconds.
CANDIDATES = 2_048
# Below this many numbers (the default model's 49,152 x 576 is 28 million) the full product takes a few
# milliseconds, and codes would save nothing.
SMALL = 64_000_000
# bfloat16 keeps 8 significant bits: rounding to nearest errs by at most 2**-9 of the value.
_BF16_ROUNDING = 2.0**-9
# The float32 sums of a dot product of unit vectors err by far less than this, at any width a model has.
_SUM_ROUNDING = 1e-3


@dataclass
class NeighbourIndex:
    """The rows of one table, searchable by cosine (see the module's docstring)."""

    rows: Any  # [rows, dim] float32: the model's own table where it is float32 (no copy)
    norms: Any  # [rows] their lengths
    codes: Any | None  # [rows, dim] int8 codes of the unit rows, or None where the full product is used
    scales: Any | None  # [rows] bfloat16: unit row i is about codes[i] * scales[i]
    code_error: float  # the largest |unit row - codes * scale| (L2): that part of a coarse score's error
    candidates: int = CANDIDATES

    @classmethod
    def build(cls, weight: Any, *, coded: bool | None = None, candidates: int = CANDIDATES) -> NeighbourIndex:
        """The index of ``weight``'s rows (any dtype, any device); ``coded`` forces int8 codes on or off
        (by default: on a CPU, for a table of SMALL numbers or more)."""
        import torch

        with torch.inference_mode():
            rows = weight.float()
            norms = rows.norm(dim=1).clamp_min(1e-12)
            if coded is None:
                coded = rows.device.type == "cpu" and rows.numel() >= SMALL
            if not coded or rows.shape[0] <= candidates:
                return cls(rows, norms, None, None, 0.0, candidates)
            codes = torch.empty(rows.shape, dtype=torch.int8)
            scales = torch.empty(rows.shape[0], dtype=torch.bfloat16)
            error = 0.0
            for start in range(0, rows.shape[0], 8_192):  # in blocks: no second table's worth of floats
                block = slice(start, start + 8_192)
                unit = rows[block] * norms[block].reciprocal()[:, None]
                low, high = torch.aminmax(unit, dim=1)
                scales[block] = torch.maximum(high, -low).clamp_min(1e-12) / 127
                scale = scales[block].float()[:, None]
                coded = torch.round(unit / scale)
                codes[block] = coded
                error = max(error, float(unit.sub_(coded.mul_(scale)).norm(dim=1).max()))
        return cls(rows, norms, codes, scales, error, candidates)

    def nearest(self, token_id: int, k: int) -> list[tuple[int, float]]:
        """(id, cosine) of the ``k`` rows nearest row ``token_id``, itself left out, best first."""
        import torch

        found = self.certified(token_id, k)
        if found is not None:
            return found
        with torch.inference_mode():
            query = self.rows[token_id] / self.norms[token_id]
            cosines = self.rows @ query / self.norms
            cosines[token_id] = -2.0  # below any cosine
            top = torch.topk(cosines, min(k, self.rows.shape[0] - 1))
        return list(zip(top.indices.tolist(), top.values.tolist(), strict=True))

    def certified(self, token_id: int, k: int) -> list[tuple[int, float]] | None:
        """The exact answer from the int8 scores, or None without codes or when the bound cannot vouch
        for it (then `nearest` takes the full product)."""
        import torch

        if self.codes is None:
            return None
        with torch.inference_mode():
            query = self.rows[token_id] / self.norms[token_id]
            low = query.to(torch.bfloat16)
            coarse = torch._weight_int8pack_mm(low[None], self.codes, self.scales)[0].float()
            coarse[token_id] = -4.0  # below any score
            best = torch.topk(coarse, self.candidates)
            exact = self.rows[best.indices] @ query / self.norms[best.indices]
            exact[best.indices == token_id] = -2.0
            top = torch.topk(exact, min(k, self.rows.shape[0] - 1))
        # A row left out scores at most `beyond` coarsely, so its cosine is at most `beyond` plus the
        # error: of its codes (code_error, the query being of unit length), of the query in bfloat16 (the
        # dequantised row's length, at most 1 + code_error, times the query's rounding), of the result
        # rounded to bfloat16, and of the sums.
        beyond = float(best.values[-1])
        query_error = float((low.float() - query).norm())
        bound = self.code_error + (1 + self.code_error) * query_error + abs(beyond) * _BF16_ROUNDING + _SUM_ROUNDING
        if float(top.values[-1]) <= beyond + bound:
            return None
        ids = best.indices[top.indices]
        return list(zip(ids.tolist(), top.values.tolist(), strict=True))
