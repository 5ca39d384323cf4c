"""What every suite shares: a figure of the table, and timing helpers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """One line of the table: what we measured, the baseline it is compared with, and the ratio."""

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    higher_is_better: bool = True
    target: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


def best(fn: Callable[[], float], repeat: int) -> float:
    """The best of several timings: noise on a shared machine only ever adds time."""
    return min(fn() for _ in range(repeat))


@functools.cache
def load(spec: str, device: str, dtype: str, forward: str = "auto", quantize: str = "none") -> Any:
    """A loaded model, once per run: the decode and time-to-first-token suites share it."""
    from llmtui.engine import models

    return models.load(spec, device=device, dtype=dtype, forward=forward, quantize=quantize)


def sync(device: Any) -> None:
    """Wait for the device's queued work, so that a timer stops when the work has been done."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()
