"""What every suite shares: a figure of the table with its target, and timing helpers."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"  # each run's JSON; the runs the README quotes are kept in git


@dataclass(frozen=True)
class Target:
    """What a figure should reach. The table's ✓ or ✗ is `met`, a comparison in code; a target without a
    test is a note (opt-in, reported) and gets no mark."""

    text: str
    test: Callable[[Figure], bool] | None = None

    def met(self, figure: Figure) -> bool | None:
        """Whether the figure reaches this target; None for a note."""
        return None if self.test is None else bool(self.test(figure))


def ratio_at_least(limit: float, text: str = "") -> Target:
    """The figure's ratio to its baseline is at least ``limit``."""
    return Target(text or f"≥ {limit:g}", lambda f: f.ratio >= limit)


def below(limit: float, unit: str, text: str = "") -> Target:
    """The figure's own value is under ``limit`` (in its unit)."""
    return Target(text or f"< {limit:g} {unit}", lambda f: f.value < limit)


def note(text: str) -> Target:
    """Words in the target column, and no mark."""
    return Target(text)


@dataclass
class Figure:
    """One line of the table: what we measured, the baseline it is compared with, and the ratio."""

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    higher_is_better: bool = True
    target: Target | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """The value over the baseline (NaN without a baseline)."""
        return self.value / self.baseline if self.baseline else float("nan")

    @property
    def met(self) -> bool | None:
        """Whether the figure reaches its target; None without a target or for a note."""
        return None if self.target is None else self.target.met(self)

    def to_dict(self) -> dict[str, Any]:
        """The figure in the results JSON."""
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline_name": self.baseline_name,
            "baseline": self.baseline,
            "higher_is_better": self.higher_is_better,
            "target": self.target.text if self.target else "",
            "extra": self.extra,
            "ratio": self.ratio if self.baseline_name else None,
            "met": self.met,
        }


def cells(runs: Sequence[dict[str, Any]]) -> tuple[str, str, str, str, str]:
    """A figure's row of the table (name, value, baseline, ratio, target with its mark) from its results
    (`Figure.to_dict`) in one or more runs. Of several, the row shows the run with the median value (the
    lower middle one), the ranges of the values and of the ratios, and in how many runs the target was met."""
    ordered = sorted(runs, key=lambda r: r["value"])
    shown = ordered[(len(ordered) - 1) // 2]
    unit, several = shown["unit"], len(runs) > 1
    value = f"{shown['value']:.3g} {unit}".rstrip()
    if several:
        value += f" ({ordered[0]['value']:.3g} to {ordered[-1]['value']:.3g} in {len(runs)} runs)"
    baseline = ratio = ""
    if shown["baseline_name"]:  # a figure without a baseline is a fact, not a ratio
        baseline = f"{shown['baseline_name']}: {shown['baseline']:.3g} {unit}".rstrip()
        ratio = f"{shown['ratio']:.2f} {'↑' if shown['higher_is_better'] else '↓'}"
        if several:
            ratios = sorted(r["ratio"] for r in runs)
            ratio += f" ({ratios[0]:.2f} to {ratios[-1]:.2f})"
    target = shown["target"]
    met = [r["met"] for r in runs if r["met"] is not None]
    if target and met:
        target += " ✓" if all(met) else " ✗" if not any(met) else f" ✓ in {sum(met)} of {len(met)} runs"
    return shown["name"], value, baseline, ratio, target


def best_of_both(
    ours: Callable[[], float], baseline: Callable[[], float], repeat: int, *, warm: bool = True
) -> tuple[float, float]:
    """The best of ``repeat`` timings of each, after one untimed run of each when ``warm`` (the same warm
    state for both), interleaved in alternating order so that drift in the machine's speed hits both alike."""
    if warm:
        ours()
        baseline()
    a: list[float] = []
    b: list[float] = []
    for i in range(repeat):
        if i % 2:
            b.append(baseline())
            a.append(ours())
        else:
            a.append(ours())
            b.append(baseline())
    return min(a), min(b)


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """A function that runs ``fn`` and returns the seconds it took."""

    def run() -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return run


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of values, nearest-rank below."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


@functools.cache
def load(spec: str, device: str, dtype: str, forward: str = "auto", quantize: str = "none") -> Any:
    """A loaded model, once per run: the decode and time-to-first-token suites share it."""
    from llmtui.engine.loader import load as load_model

    return load_model(spec, device=device, dtype=dtype, forward=forward, quantize=quantize)


def sync(device: Any) -> None:
    """Wait for the device's queued work, so that a timer stops when the work has been done."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def read_bytes(model: Any) -> int:
    """The bytes of weights one decode step reads: every parameter once (tied ones once), less the input
    embedding when it is not the output head (a step gathers one row of it)."""
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() * p.element_size() for p in unique.values())
    if embedding is not head:
        total -= embedding.numel() * embedding.element_size()
    return total


def bandwidths(device: Any, size: int, repeat: int) -> dict[str, float]:
    """Memory bandwidth in bytes/s on ``device`` over a buffer of ``size`` bytes, the best of ``repeat``
    timings of each (noise only ever slows): "read", a sum, which only reads, as a decode step reads its
    weights; and "copy", which reads and writes (both counted)."""
    import torch

    source = torch.ones(size // 4, dtype=torch.float32, device=device)
    target = torch.zeros_like(source)  # touched once here, so the timing holds no page faults
    size = source.numel() * 4

    def copy() -> float:
        sync(device)
        start = time.perf_counter()
        target.copy_(source)
        sync(device)
        return 2 * size / (time.perf_counter() - start)

    def read() -> float:
        sync(device)
        start = time.perf_counter()
        source.sum()
        sync(device)
        return size / (time.perf_counter() - start)

    return {"read": max(read() for _ in range(repeat)), "copy": max(copy() for _ in range(repeat))}


class FrameClock:
    """Every frame a Textual app composes, with the time it was done.

    A headless app composes each frame and skips writing it; the clock renders each one to the text a
    terminal would be sent, so that a frame costs here what it costs in a terminal.
    """

    def __init__(self, app: Any, clock: Callable[[], float] = time.perf_counter) -> None:
        self.times: list[float] = []
        self._waiting: list[tuple[Callable[[Any], bool], Any]] = []
        display = app._display

        def clocked(screen: Any, update: Any) -> None:
            display(screen, update)
            if update is None or app._batch_count:  # what Textual's own _display skips
                return
            render = getattr(update, "render_segments", None)
            if render is not None and app.is_headless:
                render(app.console)
            now = clock()
            self.times.append(now)
            for waiting in list(self._waiting):
                test, future = waiting
                if future.done():
                    self._waiting.remove(waiting)
                elif test(update):
                    future.set_result(now)
                    self._waiting.remove(waiting)

        app._display = clocked  # Screen calls app._display(screen, update) for every frame

    def next_frame(self, test: Callable[[Any], bool] = lambda update: True) -> Any:
        """A future for the time of the next frame whose update passes ``test``. Ask before the action
        whose frame it should be, so that the frame cannot come first."""
        import asyncio

        future = asyncio.get_running_loop().create_future()
        self._waiting.append((test, future))
        return future


def paints(update: Any, region: Any) -> bool:
    """Whether a frame's update paints any cell of ``region`` (a Textual Region, in screen cells)."""
    spans = getattr(update, "spans", None)
    if spans is None:  # a whole-layout update
        return bool(update.region.overlaps(region))
    return any(region.y <= y < region.bottom and x1 < region.right and x2 > region.x for y, x1, x2 in spans)


class CpuClock:
    """This process's CPU time over wall time, sampled through a window, in cores: 1.0 is one core busy.

    Also the calling thread's own share (in an app, call it from the event loop: the UI's own work).
    """

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (wall, process CPU, this thread's CPU)

    def sample(self) -> None:
        """Note the clocks now."""
        self.samples.append((time.perf_counter(), time.process_time(), time.thread_time()))

    def totals(self) -> tuple[float, float, float]:
        """(wall, process CPU, thread CPU) seconds from the first sample to the last."""
        (w0, p0, t0), (w1, p1, t1) = self.samples[0], self.samples[-1]
        return w1 - w0, p1 - p0, t1 - t0

    def peak(self) -> float:
        """The highest process share between two consecutive samples."""
        pairs = zip(self.samples, self.samples[1:], strict=False)
        return max(((b[1] - a[1]) / (b[0] - a[0]) for a, b in pairs if b[0] > a[0]), default=0.0)


def cores(windows: Sequence[Sequence[float]]) -> tuple[float, float]:
    """(process, thread) CPU seconds per wall second over these (wall, process, thread) windows together."""
    wall = sum(w[0] for w in windows)
    if wall <= 0:
        return 0.0, 0.0
    return sum(w[1] for w in windows) / wall, sum(w[2] for w in windows) / wall
