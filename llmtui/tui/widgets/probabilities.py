"""The next-token probability sidebar: the top-k candidates of one step, and the reply at a glance."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import OptionList, Sparkline, Static
from textual.widgets.option_list import Option

from llmtui.core.events import TokenEvent
from llmtui.core.lens import LensStep
from llmtui.core.text import visible

BAR_WIDTH = 12


def bar(prob: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, prob)) * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")).ljust(width)


def step_figures(event: TokenEvent) -> str:
    """A step's probabilities in words, saying what the server did not send and what is only a bound."""
    if event.prob is None:
        return "no probability: the server sent no log probabilities\n"
    if event.sampled_prob is None:  # a server's logprob: raw or processed as the server is set, never both
        chosen = f"p {event.prob:.3f} (the server's logprob: raw or processed, as it is set) · sampled p unknown"
    else:
        chosen = f"raw p {event.prob:.3f} · sampled p {event.sampled_prob:.3f}"
    rank = str(event.rank) if event.rank is not None else f"unknown (not among the {len(event.candidates)} sent)"
    if event.entropy is None:
        entropy = "entropy unknown"
    elif event.entropy_bound:
        entropy = f"entropy ≥ {event.entropy:.2f} nats (from the top {len(event.candidates)})"
    else:
        entropy = f"entropy {event.entropy:.2f} nats"
    return f"{chosen}\nrank {rank} · {entropy}"


class CandidateList(OptionList):
    """The candidates; Enter on one branches the reply there."""


class ProbabilitySidebar(Vertical):
    """Shows one step: the chosen token, its raw and sampled probability, entropy and the top-k; with the
    logit lens (``l``), what each layer would have chosen there."""

    BINDINGS = [Binding("l", "lens", "Logit lens")]

    class LensWanted(Message):
        """The user asked for the logit lens at the step shown (the workstation asks the engine)."""

        def __init__(self, event: TokenEvent) -> None:
            super().__init__()
            self.event = event

    class Branch(Message):
        """The user picked another candidate at a step: cut the reply there and continue from it."""

        def __init__(self, step: int, token_id: int) -> None:
            super().__init__()
            self.step = step
            self.token_id = token_id

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.event: TokenEvent | None = None
        self.display_piece: Callable[[int], str] | None = None
        self.sparkline_of = "prob"

    def compose(self) -> ComposeResult:
        yield Static("No step selected. Generate a reply, then move the cursor over its tokens.", id="step-info")
        yield CandidateList(id="candidates")
        with VerticalScroll(id="lens"):
            yield Static("", id="lens-rows")
        yield Static("", id="spark-label")
        yield Sparkline([], id="sparkline")

    def _piece(self, token_id: int | None, fallback: str) -> str:
        return self.display_piece(token_id) if self.display_piece and token_id is not None else visible(fallback)

    def show_step(self, event: TokenEvent) -> None:
        """Show one step (called for the newest step while generating, or the step under the cursor)."""
        if event is self.event:
            return
        self.event = event
        self.query_one("#lens").display = False  # the lens was of another step
        info = Text()
        info.append(f"step {event.index}  ", style="bold")
        info.append(self._piece(event.token_id, event.text), style="reverse")
        info.append(f"  id {'unknown' if event.token_id is None else event.token_id}\n")
        info.append(step_figures(event))
        self.query_one("#step-info", Static).update(info, layout=False)
        options = []
        for c in event.candidates:
            chosen = c.token_id == event.token_id
            prompt = Text()
            prompt.append("▶ " if chosen else "  ", style="bold")
            prompt.append(bar(c.prob), style="bold" if chosen else "")
            prompt.append(f" {c.prob * 100:5.1f}% ")
            prompt.append(self._piece(c.token_id, c.piece), style="bold" if chosen else "")
            # A candidate the server named by text only cannot be branched from: it has no id to force.
            options.append(Option(prompt, id=None if c.token_id is None else str(c.token_id)))
        candidates = self.query_one(CandidateList)
        candidates.set_options(options)
        # Start on the chosen token, so one key down is the nearest alternative.
        chosen = [i for i, c in enumerate(event.candidates) if c.token_id == event.token_id]
        candidates.highlighted = chosen[0] if chosen else 0

    def show_reply(self, events: Sequence[TokenEvent]) -> None:
        """The sparkline over the whole reply: chosen-token probability, or entropy."""
        # Steps the server sent no figure for are left out of the line, not drawn as zero.
        data = [v for v in ((e.entropy if self.sparkline_of == "entropy" else e.prob) for e in events) if v is not None]
        self.query_one(Sparkline).data = data
        what = "entropy" if self.sparkline_of == "entropy" else "chosen-token probability"
        self.query_one("#spark-label", Static).update(f"{what} over {len(events)} tokens", layout=False)

    def action_lens(self) -> None:
        if self.event is not None:
            self.post_message(self.LensWanted(self.event))

    def show_lens(self, event: TokenEvent, step: LensStep) -> None:
        """One row per layer: the tokens that layer's hidden state puts first (the last row is the model's
        own answer, the step's top-k above)."""
        if event is not self.event:
            return  # the user moved on while the engine worked
        text = Text()
        text.append(f"logit lens at step {event.index}: each layer's top tokens\n", style="bold")
        for layer in step.layers:
            text.append(f"L{layer.layer:<3}", style="dim")
            for c in layer.candidates:
                text.append(
                    f" {self._piece(c.token_id, c.piece)} ", style="reverse" if c.token_id == event.token_id else ""
                )
                text.append(f"{c.prob * 100:.0f}%")
            text.append("\n")
        self.query_one("#lens-rows", Static).update(text)
        self.query_one("#lens").display = True

    def clear(self) -> None:
        self.event = None
        self.query_one("#step-info", Static).update("No step selected.")
        self.query_one(CandidateList).clear_options()
        self.query_one(Sparkline).data = []

    def on_option_list_option_selected(self, message: OptionList.OptionSelected) -> None:
        message.stop()
        if self.event is not None and message.option.id is not None:
            self.post_message(self.Branch(self.event.index, int(message.option.id)))
