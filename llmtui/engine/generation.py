"""A conversation -> a prompt -> a stream of TokenEvent, one per decode step.

The decode loop is our own, over the model's forward pass with a KV cache, rather than
``model.generate``: inside generate, caller-supplied logits processors run before the sampling
warpers, so they never see the distribution actually sampled from. Owning the loop gives the raw
and the sampled probability of every token, a stop check at every step, and a forced token at any
step (branching).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from llmtui.core.errors import GenerationError, InvalidValue, OutOfMemory
from llmtui.core.events import Candidate, ReplyStats, TokenEvent
from llmtui.core.prompt import Message, Prompt, fit, plain_format
from llmtui.core.reply import ReplyState
from llmtui.core.sampling import SamplingParams
from llmtui.core.score import windows
from llmtui.core.tokens import TokenizerView
from llmtui.engine.loader import LoadedModel

# The float32 tables of a block of rows scored at once. Kept well under glibc's largest mmap threshold
# (32 MiB): a larger temporary is mapped afresh and page-faulted in for every block (a 256-row block of a
# 49,152-token vocabulary, 50 MB, made scoring 2,000 tokens' rows 1.6 times as slow on one thread).
_SCORE_BYTES = 8 << 20
# When scoring, a token's rank is read from this many most likely tokens where it is among them.
_RANKED = 16


class Engine:
    """Generation over one loaded model. Holds no UI state; safe to drive from any one thread at a time."""

    def __init__(self, loaded: LoadedModel, *, lag: bool | None = None) -> None:
        """``lag``: queue each decode step before reading the one before it (see `Generation`); by default
        on CUDA only: on the CPU every operation has finished when it returns, so there is nothing to
        overlap, and the lag would cost a discarded forward pass at the end of every reply."""
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        config = self.model.config
        self.context_length = int(loaded.info.context_length or getattr(self.tokenizer, "model_max_length", 2048))
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = config.eos_token_id if config.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids = frozenset([eos] if isinstance(eos, int) else (eos or []))
        self.forward = loaded.forward
        self.lag = loaded.device.type == "cuda" if lag is None else lag
        # One view of the tokenizer for the decode loop's pieces and for every pane that shows tokens.
        self.view = TokenizerView(self.tokenizer, loaded.info.name)

    def default_params(self, **overrides: Any) -> SamplingParams:
        return SamplingParams.from_generation_config(self.model.generation_config, **overrides)

    def render(self, messages: Sequence[Message], reserve: int = 0) -> Prompt:
        """The prompt for a conversation (chat template, generation prompt), trimmed to fit the context."""
        return fit(messages, reserve, self.context_length, self.template)

    def template(self, messages: Sequence[Message]) -> tuple[str, list[int], bool]:
        """One application of the chat template (or the plain format): (text, ids, templated)."""
        if getattr(self.tokenizer, "chat_template", None):
            if not messages:
                return "", [], True  # nothing to say yet: the template refuses an empty conversation
            try:
                text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
            except Exception as exc:  # jinja raises its own errors (e.g. "roles must alternate")
                raise GenerationError(f"the model's chat template rejected this conversation: {exc}") from None
            return text, self.tokenizer(text, add_special_tokens=False)["input_ids"], True
        text = plain_format(messages)
        return text, self.tokenizer(text, add_special_tokens=True)["input_ids"], False

    def generate(
        self,
        prompt: Prompt,
        params: SamplingParams,
        *,
        prefix: Sequence[int] = (),
        force: int | None = None,
    ) -> Generation:
        """Start a reply. ``prefix``: reply tokens already accepted (not emitted again);
        ``force``: the token the first new step must take (branching from an alternative)."""
        return Generation(self, prompt, params.validate(), tuple(prefix), force)

    def score(self, ids: Sequence[int], top: int = 10, *, stride: int | None = None) -> list[TokenEvent]:
        """How likely the model finds each token of ``ids`` after the ones before it: one forward pass, or
        windows of the context ``stride`` apart (core.score.windows) when ``ids`` do not fit it.

        One TokenEvent per token after the first (``index`` is its position in ``ids``): its raw
        probability, rank and the entropy of the distribution it was read from, and the ``top`` most likely
        tokens there. ``sampled_prob`` is the raw probability (nothing is sampled); ``text`` is what the
        token adds to the text of ``ids`` (special tokens included); ``elapsed`` is 0.
        """
        ids = list(ids)
        vocab = len(self.view.pieces)
        for token_id in ids:
            if not 0 <= token_id < vocab:
                raise InvalidValue(f"id {token_id} is out of range: the vocabulary has ids 0 to {vocab - 1}")
        k = min(max(top, 0), vocab)
        columns: list[list[Any]] = [[], [], [], [], []]  # prob, rank, entropy, top probs, top ids
        for window in windows(len(ids), self.context_length, stride):
            self._score_window(ids[window.start : window.end], window.first - window.start, k, columns)
        pieces = self.view.pieces
        backend = self.tokenizer.backend_tokenizer
        decoder = _decoder(backend, ids[:1], skip_special_tokens=False)
        events = []
        for i, (prob, rank, entropy, top_probs, top_ids) in enumerate(zip(*columns, strict=True)):
            token_id = ids[i + 1]
            events.append(
                TokenEvent(
                    index=i + 1,
                    token_id=token_id,
                    text=decoder.step(backend, token_id) or "",
                    prob=prob,
                    sampled_prob=prob,
                    rank=rank,
                    entropy=entropy,
                    candidates=tuple(Candidate(j, pieces[j], p) for p, j in zip(top_probs, top_ids, strict=True)),
                    elapsed=0.0,
                )
            )
        return events

    def _score_window(self, ids: list[int], first: int, k: int, columns: list[list[Any]]) -> None:
        """One forward pass over ``ids``; the tokens from ``first`` on are scored into ``columns``."""
        import torch

        vocab = len(self.view.pieces)
        try:
            with torch.inference_mode():
                # logits[i] is the distribution of ids[i + 1]: the rows that score ids[first:].
                logits = self.model(torch.tensor([ids], device=self.loaded.device), use_cache=False).logits[0]
                logits = logits[first - 1 : -1]  # [scored, vocab]
                targets = torch.tensor(ids[first:], device=logits.device)
                # Rows in blocks: the float32 softmax of a long text over a large vocabulary would not fit,
                # and small tables are reused by the allocator rather than mapped anew.
                block = max(1, _SCORE_BYTES // (4 * vocab))
                for start in range(0, len(targets), block):
                    x = logits[start : start + block].float()[:, :vocab]
                    probs = torch.softmax(x, dim=-1)
                    chosen = probs.gather(1, targets[start : start + block, None])
                    top_k = torch.topk(probs, min(max(k, _RANKED), vocab), dim=-1)
                    # The entropy without a second table of log probabilities: -sum p log p, with
                    # log p = x - logsumexp(x), is logsumexp(x) - sum p x; and logsumexp(x) = x_i - log p_i
                    # for any i, read at the most likely token, where p_i is largest.
                    best = top_k.indices[:, :1]
                    lse = (x.gather(1, best) - top_k.values[:, :1].log())[:, 0]
                    # A token's rank is how many tokens are more likely. Counted over the whole vocabulary
                    # only where it is not among the top: most tokens of a text are, and the count (a
                    # reduction of booleans) costs as much as the softmax.
                    rank = (top_k.values > chosen).sum(dim=-1)
                    far = rank == top_k.values.shape[1]
                    if bool(far.any()):
                        rank[far] = (probs[far] > chosen[far]).sum(dim=-1)
                    # sum p x in the probabilities' own table, which is not read again: a product table
                    # (vecdot's) is one more write and read of the block. (Not bmm: it sums 49,152 terms
                    # one after another, off by 1e-3.)
                    entropy = lse - probs.mul_(x).sum(dim=-1)
                    masked = entropy.isnan()  # a logit of -inf (a token the model rules out): 0 * -inf
                    if bool(masked.any()):
                        logp = torch.log_softmax(x[masked], dim=-1)
                        entropy[masked] = -(logp.exp() * logp).nansum(dim=-1)
                    rows = (chosen[:, 0], rank, entropy)
                    tops = (top_k.values[:, :k], top_k.indices[:, :k])
                    for column, values in zip(columns, (*rows, *tops), strict=True):
                        column.extend(values.tolist())
        except torch.OutOfMemoryError:
            raise OutOfMemory("the device ran out of memory while scoring the text") from None
        except (RuntimeError, IndexError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GenerationError(f"scoring failed: {message[:300]}") from None


class Generation(ReplyState):
    """One reply being decoded: iterate it for TokenEvents; `stop()` from any thread ends it within a step.

    The chosen token never leaves the device to feed the next step. With the engine's ``lag``, step n + 1
    is queued before step n's values are read (copied to the host without blocking), so that on a GPU the
    host's work for one event overlaps the device's for the next; end of sequence, stop strings and stop
    requests are then seen one step late, and that extra step is dropped unread. The events are the same
    with the lag or without it.
    """

    def __init__(
        self,
        engine: Engine,
        prompt: Prompt,
        params: SamplingParams,
        prefix: tuple[int, ...],
        force: int | None,
    ) -> None:
        super().__init__(prompt, params, prefix, force)
        self.engine = engine
        self._started = False

    def __iter__(self) -> Iterator[TokenEvent]:
        if self._started:
            raise RuntimeError("a Generation can be iterated once")
        self._started = True
        import torch

        try:
            with torch.inference_mode():
                yield from self._decode(torch)
        except torch.OutOfMemoryError:
            self._finish("error")
            raise OutOfMemory("the device ran out of memory during the reply; the partial reply is kept") from None
        except (RuntimeError, IndexError) as exc:
            self._finish("error")
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GenerationError(f"generation failed: {message[:300]}") from None

    def _decode(self, torch: Any) -> Iterator[TokenEvent]:
        engine, params = self.engine, self.params
        model, device = engine.model, engine.loaded.device
        pieces = engine.view.pieces  # built once per model, not per step
        ids = [*self.prompt.ids, *self.prefix]
        budget = min(params.max_new_tokens, engine.context_length - len(ids))
        self._t0 = time.perf_counter()
        if budget <= 0:
            self._finish("context_full")
            return
        backend = engine.tokenizer.backend_tokenizer
        decoder = _decoder(backend, self.prefix, skip_special_tokens=True)
        stops = _StopStrings((*params.stop, *self.prompt.stop))
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=device).manual_seed(params.seed)
        vocab = len(pieces)
        seen = None
        if params.repetition_penalty != 1.0:
            seen = torch.zeros(model.config.vocab_size, dtype=torch.bool, device=device)
            seen[torch.tensor(ids, device=device)] = True
        k = min(params.top_candidates, vocab)
        lag = engine.lag
        copies = _HostCopies(torch, device, 5 + 2 * k)

        forward = engine.forward.begin(len(ids) + budget)
        logits = forward.prefill(ids)
        for step in range(budget):
            # Queued on the device: nothing here waits for it.
            token, packed = self._pick(torch, logits, vocab, k, seen, generator, self.force if step == 0 else None)
            copies.send(packed)
            if seen is not None:
                seen.index_fill_(0, token.view(1), True)
            # With the lag, the next step is queued before this one's values are read, so the device runs
            # it while the host builds this event; the end-of-reply checks below then decide one step late,
            # and a step queued past the end is dropped unread. The budget is known here, so the cache never
            # gets a step it has no room for.
            ahead = lag and step < budget - 1 and not self.stopping
            if ahead:
                logits = forward.step(token)
            values = copies.read()
            token_id, prob, sampled_prob, rank_i, ent = (
                int(values[0]),
                values[1],
                values[2],
                int(values[3]),
                values[4],
            )
            candidates = tuple(
                Candidate(int(i), pieces[int(i)], p) for p, i in zip(values[5 : 5 + k], values[5 + k :], strict=True)
            )
            ids.append(token_id)
            piece_text = decoder.step(backend, token_id) or ""
            last = (
                token_id in engine.eos_ids or step == budget - 1 or self.stopping or len(ids) >= engine.context_length
            )
            text, hit_stop = stops.feed(piece_text, final=last)
            event = TokenEvent(
                index=len(self.prefix) + step,
                token_id=token_id,
                text=text,
                prob=prob,
                sampled_prob=sampled_prob,
                rank=rank_i,
                entropy=ent,
                candidates=candidates,
                elapsed=time.perf_counter() - self._t0,
            )
            self.events.append(event)
            if last or hit_stop:
                self._finish(self._reason(token_id, hit_stop, len(ids)))
                yield event
                return
            yield event
            if not ahead:
                logits = forward.step(token)

    def _pick(
        self, torch: Any, logits: Any, vocab: int, k: int, seen: Any, generator: Any, forced: int | None
    ) -> tuple[Any, Any]:
        """The next token and one float32 vector of what its event reports (token, raw and sampled
        probability, rank, entropy, then the top-k probabilities and ids), both left on the device: no
        operation here waits for the device (no ``.item()``, no indexing by a tensor)."""
        raw = logits.float()[:vocab]  # some models pad the logits past the tokenizer's vocabulary
        logp = torch.log_softmax(raw, dim=-1)
        probs = logp.exp()
        entropy = -(probs * logp).nansum()
        token, sampled = self._choose(torch, raw, seen, generator, forced)
        chosen = probs.index_select(0, token.view(1))
        rank = (probs > chosen).sum()
        top = torch.topk(probs, k)
        scalars = torch.stack([token.float(), chosen[0], sampled, rank.float(), entropy])
        return token, torch.cat([scalars, top.values, top.indices.float()])

    def _choose(self, torch: Any, raw: Any, seen: Any, generator: Any, forced: int | None) -> tuple[Any, Any]:
        """Pick the next token from the raw logits; return it with its probability under the sampled
        distribution (after repetition penalty, temperature, top-k and top-p)."""
        p = self.params
        x = raw
        if seen is not None:
            penalised = torch.where(x < 0, x * p.repetition_penalty, x / p.repetition_penalty)
            x = torch.where(seen[: x.shape[0]], penalised, x)
        if p.temperature == 0:
            best = torch.argmax(x)
            token = best if forced is None else torch.tensor(forced, device=x.device)
            return token, (token == best).float()
        x = x / p.temperature
        if p.top_k:
            kth = torch.topk(x, min(p.top_k, x.shape[0])).values[-1]
            x = x.masked_fill(x < kth, float("-inf"))
        if p.top_p < 1.0:
            # As transformers' TopPLogitsWarper: drop the least likely tokens whose mass stays under 1 - top_p.
            sorted_x, order = torch.sort(x, descending=False)
            cumulative = sorted_x.softmax(dim=-1).cumsum(dim=-1)
            remove = cumulative <= (1 - p.top_p)
            remove[-1] = False
            x = x.masked_fill(remove.scatter(0, order, remove), float("-inf"))
        sampled = torch.softmax(x, dim=-1)
        if forced is None:
            token = torch.multinomial(sampled, 1, generator=generator)[0]
        else:
            token = torch.tensor(forced, device=x.device)
        return token, sampled.index_select(0, token.view(1))[0]

    def _reason(self, token_id: int, hit_stop: bool, length: int) -> str:
        """Why the reply ended at this token; ``length`` is the tokens in context, the prompt's included."""
        if token_id in self.engine.eos_ids:
            return "eos"
        if hit_stop:
            return "stop_string"
        if self.stopping:
            return "stopped"
        if length >= self.engine.context_length:
            return "context_full"
        return "max_tokens"

    def _finish(self, reason: str) -> None:
        self.stats = ReplyStats.of(self.events, len(self.prompt.ids), reason, self.prompt.dropped_turns)


def _decoder(backend: Any, read: Sequence[int], *, skip_special_tokens: bool) -> Any:
    """A DecodeStream that has read ``read`` a token at a time, as the stream that wrote them did, so that
    the next token's text follows on from theirs. (Given them at once, as ``DecodeStream(ids=...)``, it reads
    bytes left over from a character cut in two as replacement characters, and the token that completes
    the character then gives back the whole text again.)"""
    from tokenizers.decoders import DecodeStream

    decoder = DecodeStream(skip_special_tokens=skip_special_tokens)
    for token_id in read:
        decoder.step(backend, token_id)
    return decoder


class _HostCopies:
    """Where each step's packed values go to be read on the host.

    On CUDA, one pinned buffer that the device copies into without blocking, with an event recorded after
    the copy, so that the host waits for that copy alone and never for work queued after it. (One buffer
    is enough: a step's values are read before the next step's copy is queued.) Elsewhere the values are
    read where they are.
    """

    def __init__(self, torch: Any, device: Any, size: int) -> None:
        self.buffer = None
        if device.type == "cuda":
            self.buffer = torch.empty(size, dtype=torch.float32, pin_memory=True)
            self.done = torch.cuda.Event()
        self.values: Any = None

    def send(self, packed: Any) -> None:
        """Start copying ``packed`` (float32, on the device) to the host."""
        if self.buffer is None:
            self.values = packed
        else:
            self.buffer.copy_(packed, non_blocking=True)
            self.done.record()
            self.values = self.buffer

    def read(self) -> list[float]:
        """The values last sent, once they are on the host."""
        if self.buffer is not None:
            self.done.synchronize()
        return self.values.tolist()


class _StopStrings:
    """Holds back text that could be the start of a stop string, so a stop string never shows."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""

    def feed(self, text: str, *, final: bool) -> tuple[str, bool]:
        """Return (text to show now, whether a stop string was hit)."""
        buf = self.held + text
        self.held = ""
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            return buf[: min(hits)], True
        if final or not self.stops:
            return buf, False
        keep = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:n]):
                    keep = n
                    break
        self.held = buf[len(buf) - keep :]
        return buf[: len(buf) - keep], False
