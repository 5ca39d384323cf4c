"""Any OpenAI-compatible server as a Backend: vLLM, SGLang, llama.cpp's server, ollama, or a hosted API.

`connect()` asks the server's `/v1/models` which model it serves. `llmtui serve` describes its model in
llmtui's extension and gets `ClientBackend` (every figure the local engine gives); any other server gets
`OpenAIBackend`, which streams `/v1/chat/completions` with `logprobs` and `top_logprobs` and turns what
comes back into TokenEvents, knowing only what the server says:

- a token's probability is exp(logprob) as the server computed it (raw by default in vLLM; processed when
  its `--logprobs-mode` says so: the server does not say which, so neither do we); the sampled probability
  is unknown; a server that sends no log probabilities gives events with none (the chips are neutral);
- the entropy comes from the top candidates only (at most 20), so it is a lower bound and marked so;
- token ids from llama.cpp's `id`, or vLLM's `return_tokens_as_token_ids` ("token_id:N"); the text of each
  token from its true bytes (the local tokenizer's when the model's tokenizer is here, else the server's
  `bytes`), decoded across tokens so that a character split over two tokens shows whole on the second. The
  server's own streamed text is the reply: where bytes disagree with it (byte-level BPE tokens read as text
  arrive garbled from some servers), the chunk's text is the server's.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from llmtui.backends.base import Capabilities, Progress, Reply, StartBackend
from llmtui.backends.client import ClientBackend
from llmtui.backends.http import Endpoint, HttpBackend, StreamedReply, error_message
from llmtui.backends.logprobs import legacy_entries, own_bytes, step_event, token_id, true_bytes
from llmtui.backends.served_tokenizer import ServerTokenizerView
from llmtui.core.choices import ModelOptions
from llmtui.core.errors import ContextOverflow, GenerationError, InvalidValue, LlmtuiError, UnsupportedModel
from llmtui.core.events import ReplyStats, TokenEvent
from llmtui.core.info import EngineInfo, ModelInfo
from llmtui.core.prompt import Message, Prompt, Template, fit
from llmtui.core.sampling import SamplingParams
from llmtui.core.score import windows
from llmtui.core.template import ChatTemplate
from llmtui.core.tokens import TokenizerView
from llmtui.core.wire import EXTENSION, MAX_TOP_LOGPROBS

# finish_reason -> ReplyStats.stop_reason ("stop" may be the end-of-sequence token or a stop string: the
# server does not say which; end of sequence is the common case).
STOP_REASONS = {"stop": "eos", "length": "max_tokens", "eos": "eos", "abort": "stopped"}


@dataclass(frozen=True)
class RemotePrompt(Prompt):
    """A prompt for a chat completions server: the messages travel; the ids are the server's when its
    `/tokenize` gave them (else empty)."""

    messages: tuple[Message, ...] = field(default=(), compare=False)


def list_models(endpoint: Endpoint) -> list[dict[str, Any]]:
    """The server's `/v1/models` entries (each with at least an ``id``)."""
    probe = _Probe(endpoint)
    try:
        data = probe.request("GET", "/v1/models")
    finally:
        probe.close()
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in entries):
        raise InvalidValue(f"{endpoint.host}'s /v1/models is not a list of models")
    return entries


def connect(endpoint: Endpoint, model: str | None = None) -> HttpBackend:
    """A backend for ``model`` on the server at ``endpoint`` (the only one it serves when None)."""
    entries = list_models(endpoint)
    names = ", ".join(repr(e["id"]) for e in entries[:10]) or "none"
    if model is None:
        if len(entries) != 1:
            raise InvalidValue(f"{endpoint.host} serves {len(entries)} models ({names}): name one")
        entry = entries[0]
    else:
        # ollama names a model's default tag in full ("llama3.2:latest"); `ollama run llama3.2` needs no tag.
        entry = next((e for e in entries if e["id"] == model), None) or next(
            (e for e in entries if e["id"] == f"{model}:latest"), None
        )
        if entry is None:
            raise InvalidValue(f"{endpoint.host} has no model {model!r}; it serves {names}")
    if EXTENSION in entry:
        return ClientBackend(endpoint=endpoint, model=entry["id"])
    return OpenAIBackend(endpoint, entry)


def starter(endpoint: Endpoint, model: str | None) -> StartBackend:
    """How the workstation starts (and restarts) its backend when it is a client of a server: it connects,
    for ``model`` (the one the server serves when None)."""

    def start(options: ModelOptions, progress: Progress) -> HttpBackend:
        progress(0.0, f"connecting to {endpoint.host}")
        return connect(endpoint, model)

    return start


class _Probe(HttpBackend):
    """A connection before there is a model: for `/v1/models`."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.connect(endpoint)

    def render(self, messages: Sequence[Message], reserve: int = 0) -> Prompt:
        raise NotImplementedError

    def generate(self, prompt: Prompt, params: SamplingParams, **_: Any) -> Reply:
        raise NotImplementedError


def context_length(entry: dict[str, Any]) -> int:
    """The model's context from its /v1/models entry: vLLM's and SGLang's max_model_len, llama.cpp's meta
    (``n_ctx``, the context it serves, which ``-c`` may set below ``n_ctx_train``, the model's); 0 when the
    server does not say."""
    meta = entry.get("meta") or {}
    for value in (entry.get("max_model_len"), meta.get("n_ctx"), meta.get("n_ctx_train")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def local_tokenizer(model: str) -> tuple[TokenizerView | None, ChatTemplate | None]:
    """The model's tokenizer and chat template when its files are on this machine (a directory, the HF
    cache, a GGUF file's conversion), else None for each; read from tokenizer.json and the template's files,
    never converting or importing torch or transformers."""
    from tokenizers import Tokenizer

    from llmtui.engine.specs import local_files

    path = local_files(model)
    if path is None:
        return None, None
    try:
        view = TokenizerView(Tokenizer.from_file(str(path / "tokenizer.json")), model)
    except Exception:  # a corrupt file surfaces as tokenizers' own exception type: as if it were not here
        return None, None
    try:
        template = ChatTemplate.from_dir(path)
    except LlmtuiError:
        template = None
    return view, template


class OpenAIBackend(HttpBackend):
    """Replies from any OpenAI-compatible server's chat completions, with the probabilities it sends."""

    def __init__(self, endpoint: Endpoint, entry: dict[str, Any]) -> None:
        self.connect(endpoint)
        self.model_id = str(entry["id"])
        self.owner = str(entry.get("owned_by") or "")
        self.what = f"the server ({self.owner})" if self.owner else "the server"
        # With the model's files here, the chat template is rendered here too (core/template.py): the prompt's
        # ids for a server whose /tokenize takes no messages (llama.cpp's), to continue and branch.
        # llama.cpp names its model by file name or general.name, and by each `--alias`: any of them may be a
        # spec that finds the model's files here (a hub id in the HF cache, a directory, `default`).
        aliases = [a for a in entry.get("aliases") or [] if isinstance(a, str)]
        self.view, self.template = None, None
        for name in dict.fromkeys([self.model_id, *aliases]):
            self.view, self.template = local_tokenizer(name)
            if self.view is not None:
                break
        self.tokenizes: bool | None = None  # whether POST /tokenize takes messages (vLLM, llmtui serve)
        self.logprobs = True  # cleared when the server refuses the field (ChatReply.ask_again)
        self._fitted: tuple[Message, ...] = ()
        context = context_length(entry)
        model = ModelInfo(
            name=self.model_id,
            spec=endpoint.public_url,
            path="",
            architecture="remote",
            model_type=self.owner or "unknown",
            parameters=None,
            context_length=context or None,
            vocab_size=self.view.size if self.view else 0,
            special_tokens={},
            special_token_ids={},
            chat_template=None,
            size_bytes=0,
            fingerprint="",
            forward="remote",
        )
        self.info = EngineInfo(
            model=model,
            device=endpoint.host,
            weights="unknown",
            forward="remote",
            forward_note=f"served by {endpoint.public_url}",
            context_length=context,
            defaults=SamplingParams(),
        )
        # Branching is the server's to allow: extend_refusal says, per reply, why not where it cannot.
        # Scoring asks the server for an echoed prompt's log probabilities; one that gives none says so.
        self.capabilities = Capabilities(scoring=True, lens=False)

    def render(self, messages: Sequence[Message], reserve: int = 0) -> Prompt:
        """The messages, with the prompt's ids: from the server's `/tokenize` where it takes messages (vLLM,
        SGLang, llmtui serve), else from the model's chat template and tokenizer when its files are here
        (core/template.py); the oldest turns left out when the server's context is known to overflow."""
        if self.tokenizes is not False:
            try:
                prompt = self._fit(messages, reserve, self._template)
            except ContextOverflow:
                raise
            except LlmtuiError:
                self.tokenizes = False  # llama.cpp's /tokenize takes text only; OpenAI has none
            else:
                self.tokenizes = True
                text = self.detokenize(prompt.ids)
                return RemotePrompt(**{**_fields(prompt), "text": text}, messages=self._fitted)
        if self.template is not None:
            prompt = self._fit(messages, reserve, self._local_template)
            return RemotePrompt(**_fields(prompt), messages=self._fitted)
        return RemotePrompt("", (), True, 0, self.info.context_length, messages=tuple(messages))

    def _fit(self, messages: Sequence[Message], reserve: int, template: Template) -> Prompt:
        if self.info.context_length:
            return fit(messages, reserve, self.info.context_length, template)
        text, ids, templated = template(messages)  # a context the server does not say: nothing to fit
        return Prompt(text, tuple(ids), templated, 0, 0)

    def _local_template(self, messages: Sequence[Message]) -> tuple[str, list[int], bool]:
        assert self.template is not None and self.view is not None
        text = self.template.render(messages)
        self._fitted = tuple(messages)  # the last call is the one that fits
        return text, list(self.view.backend.encode(text, add_special_tokens=False).ids), True

    def score(self, ids: Sequence[int], top: int = 10, *, stride: int | None = None) -> list[TokenEvent]:
        """Each token's probability after the ones before it, from the server's log probabilities of an
        echoed prompt (a completion of one token with ``echo`` and ``logprobs``, as vLLM gives them), a
        window of its context at a time: what the server says (raw or processed, as it is set), its top
        (at most 20), the text from the tokens' bytes, and no rank or entropy (see below). A server that
        echoes none cannot score, and says so in one sentence."""
        ids = list(ids)
        k = min(max(top, 0), MAX_TOP_LOGPROBS)
        view = self.view
        steps: list[tuple[TokenEvent, bytes]] = []
        first = b""  # the first token's bytes: it is not scored, but the text after it starts there
        for window in windows(len(ids), self.info.context_length or len(ids), stride):
            prompt = ids[window.start : window.end]
            body = {
                "model": self.model_id,
                "prompt": prompt,
                "max_tokens": 1,
                "temperature": 0,
                "echo": True,
                "logprobs": k,
            }
            try:
                answer = self.request("POST", "/v1/completions", body)
            except (InvalidValue, GenerationError) as exc:  # refused, not unreachable: llama.cpp takes no echo
                said = f"{exc}, so it cannot score a text (vLLM echoes a prompt's log probabilities)"
                raise UnsupportedModel(said) from None
            try:
                entries = legacy_entries((answer.get("choices") or [{}])[0])[: len(prompt)]
                if window.start == 0:
                    first = true_bytes(view, entries[0], prompt[0])
                steps += [
                    (
                        step_event(view, window.start + j, entries[j], prompt[j], k),
                        true_bytes(view, entries[j], prompt[j]),
                    )
                    for j in range(window.first - window.start, len(prompt))
                ]
            except (ValueError, TypeError, IndexError, AttributeError):
                raise UnsupportedModel(
                    f"{self.where} returned no log probabilities for the text, so it cannot score it "
                    "(vLLM does, with echo and logprobs)"
                ) from None
        # The text each token adds, from its true bytes: a character split over tokens shows on its last.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        decoder.decode(first)
        # The echoed prompt's top is keyed by text and holds the prompt's own token wherever it ranks: two
        # tokens shown alike collapse into one entry, and the prompt's token sits among the top though it
        # may rank far below it. So neither a rank nor an entropy bound can be read from it: unknown.
        return [
            replace(
                event, text=decoder.decode(data), sampled_prob=event.prob, rank=None, entropy=None, entropy_bound=False
            )
            for event, data in steps
        ]

    def detokenize(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` by the server's /detokenize (vLLM's), for the inspector; "" where it has none."""
        try:
            answer = self.request("POST", "/detokenize", {"model": self.model_id, "tokens": list(ids)})
        except LlmtuiError:
            return ""
        text = answer.get("prompt") if isinstance(answer, dict) else None
        return text if isinstance(text, str) else ""

    def _template(self, messages: Sequence[Message]) -> tuple[str, list[int], bool]:
        body = {"model": self.model_id, "messages": list(messages), "add_generation_prompt": True}
        answer = self.request("POST", "/tokenize", body)
        ids = answer.get("tokens") if isinstance(answer, dict) else None
        # vLLM's answer (and llmtui serve's) counts; llama.cpp's, to a request without its "content", is empty.
        if not isinstance(ids, list) or not ids or "count" not in answer or not all(isinstance(i, int) for i in ids):
            raise InvalidValue("the server's /tokenize gave no token ids for the messages")
        self._fitted = tuple(messages)  # the last call is the one that fits
        return "", ids, True

    def inspector_view(self) -> TokenizerView | None:
        """The model's tokenizer when it is here; else the server's own, through its /tokenize."""
        return self.view or ServerTokenizerView(self, self.model_id)

    def extend_refusal(self, prefix: Sequence[int | None]) -> str | None:
        """Why this server cannot continue a reply from ``prefix`` (or branch it), or None if it can."""
        where = self.where
        if self.tokenizes is False and self.template is None:
            return (
                f"{where} cannot continue or branch a reply: that sends the prompt as token ids, its "
                "/tokenize does not take chat messages (vLLM's does), and the model's tokenizer files with its "
                "chat template are not on this machine"
            )
        if any(i is None for i in prefix):
            return f"{where} cannot continue or branch this reply: it did not say which tokens it wrote (no ids)"
        return None

    def generate(
        self, prompt: Prompt, params: SamplingParams, *, prefix: Sequence[int] = (), force: int | None = None
    ) -> Reply:
        if not isinstance(prompt, RemotePrompt):
            raise InvalidValue("a prompt for another engine cannot be sent to this server")
        if not prefix and force is None:
            return ChatReply(self, prompt, params.validate())
        refusal = self.extend_refusal(prefix)
        if refusal is None and not prompt.ids:  # a prompt the server's /tokenize gave no ids for
            self.tokenizes = False
            refusal = self.extend_refusal(prefix)
        if refusal:
            raise InvalidValue(refusal)
        # The rendered prompt's ids, the reply's kept tokens and the forced one, through /v1/completions.
        return CompletionReply(self, prompt, params.validate(), tuple(prefix), force)


def _fields(prompt: Prompt) -> dict[str, Any]:
    return {
        "text": prompt.text,
        "ids": prompt.ids,
        "templated": prompt.templated,
        "dropped_turns": prompt.dropped_turns,
        "context_length": prompt.context_length,
    }


class OpenAIReply(StreamedReply):
    """A reply streamed from an OpenAI-compatible server, with the log probabilities it sends. Subclasses
    say which endpoint, and where a chunk's choice carries its text and its log probabilities."""

    backend: OpenAIBackend
    prompt: RemotePrompt

    def __init__(
        self,
        backend: OpenAIBackend,
        prompt: RemotePrompt,
        params: SamplingParams,
        prefix: tuple[int, ...] = (),
        force: int | None = None,
    ) -> None:
        super().__init__(backend, prompt, params, prefix, force)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._counted = 0  # the steps this request has given (llama.cpp's decoded count is checked against it)
        self._own: bytes | None = None  # the next entry's own bytes, after steps put back before it
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] = {}

    def sampling(self, max_tokens: int) -> dict[str, Any]:
        """What every request carries: the model, streaming, and the sampling fields the server knows."""
        p = self.params
        body: dict[str, Any] = {
            "model": self.backend.model_id,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
        }
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop:
            body["stop"] = list(p.stop)
        # Beyond OpenAI's fields, sent only when they change anything (vLLM, SGLang, llama.cpp and ollama
        # take them; a strict server refuses what it does not know).
        if p.top_k:
            body["top_k"] = p.top_k
        if p.repetition_penalty != 1.0:
            body["repetition_penalty"] = p.repetition_penalty
        if self.backend.logprobs and self.backend.owner == "vllm":
            body["return_tokens_as_token_ids"] = True
        if self.backend.logprobs and self.backend.owner == "llamacpp":
            body["timings_per_token"] = True  # its decoded count in every chunk: tokens it leaves out show
        return body

    def ask_again(self, response: httpx.Response) -> bool:
        # A server that refuses log probabilities (a hosted API's model without them, a capped
        # --max-logprobs) still writes the reply: ask without them; its steps then carry none.
        said = error_message(response).lower()
        if response.status_code == 400 and "logprob" in said and self.backend.logprobs:
            self.backend.logprobs = False
            return True
        return False

    @property
    def top(self) -> int:
        return min(self.params.top_candidates, MAX_TOP_LOGPROBS)

    def text_of(self, choice: dict[str, Any]) -> str | None:
        """The text a chunk's choice adds to the reply."""
        raise NotImplementedError

    def entries_of(self, choice: dict[str, Any]) -> list[dict[str, Any]]:
        """A choice's log probabilities, one entry per token, in chat completions' shape."""
        raise NotImplementedError

    def take(self, chunk: dict[str, Any]) -> Iterable[TokenEvent]:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage = usage
        choices = chunk.get("choices") or []
        if not choices:
            return ()
        choice = choices[0]
        if choice.get("finish_reason"):
            self._finish_reason = str(choice["finish_reason"])
        content = self.text_of(choice)
        if content is not None and not isinstance(content, str):
            raise ValueError("a chunk whose text is not text")
        entries = self.entries_of(choice)
        if not entries:
            # No log probabilities: the text streams, a step without figures (never invented ones).
            return (self._event(None, content, 0),) if content else ()
        # llama.cpp reports a character split over several tokens only as its last token, with the whole
        # character's bytes: the tokens before it are missing from the wire. Its running count of decoded
        # tokens (timings_per_token) says how many; they are put back as steps without figures, their ids
        # found from the bytes when the model's tokenizer is here and one cut alone fits, else unknown (a
        # reply with an unknown id cannot be continued: its prompt would not be the one the model saw).
        timings = chunk.get("timings")
        decoded = timings.get("predicted_n") if isinstance(timings, dict) else None
        missing = decoded - self._counted - len(entries) if isinstance(decoded, int) else 0
        events: list[TokenEvent] = []
        for entry in entries:
            if missing > 0:
                events += self._folded(entry, missing, len(events))
                missing = 0
            events.append(self._event(entry, None, len(events)))
        self._counted += len(events)
        if content is not None and "".join(e.text for e in events) != content:
            # The tokens' bytes disagree with the server's text (garbled byte-level pieces): the text is the
            # server's, on the chunk's last step.
            self._decoder.reset()
            events = [_with_text(e, "") for e in events[:-1]] + [_with_text(events[-1], content)]
        return events

    def _event(self, entry: dict[str, Any] | None, text: str | None, offset: int) -> TokenEvent:
        """The step of one logprobs entry (or of a chunk's text, without one), ``offset`` steps after the
        last one yielded."""
        index = len(self.prefix) + len(self.events) + offset
        elapsed = time.perf_counter() - self.started
        if entry is None:
            return TokenEvent(index, None, text or "", None, None, None, None, (), elapsed)
        chosen = token_id(entry)
        data = true_bytes(self.backend.view, entry, chosen)
        if self._own is not None:  # its character's first bytes went to the steps put back before it
            data, self._own = self._own, None
        event = step_event(self.backend.view, index, entry, chosen, self.params.top_candidates)
        return replace(event, text=self._decoder.decode(data), elapsed=elapsed)

    def _folded(self, entry: dict[str, Any], missing: int, offset: int) -> list[TokenEvent]:
        """The ``missing`` steps the server left out before ``entry``, whose bytes are its whole character:
        ids from those bytes when one cut alone fits, no figures (the server sent none)."""
        view = self.backend.view
        chosen = token_id(entry)
        raw = entry.get("bytes")
        whole = bytes(raw) if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw) else b""
        own = own_bytes(view, entry, chosen)
        ids: list[int] | None = None
        head = b""
        if own is not None and len(whole) > len(own) and whole.endswith(own):
            head = whole[: -len(own)]
            self._own = own
            ids = view.ids_of_bytes(head, missing) if view is not None else None
        steps = []
        elapsed = time.perf_counter() - self.started
        for j in range(missing):
            data = view.piece_bytes(ids[j]) if ids is not None and view is not None else (head if j == 0 else b"")
            index = len(self.prefix) + len(self.events) + offset + j
            text = self._decoder.decode(data)
            steps.append(TokenEvent(index, ids[j] if ids else None, text, None, None, None, None, (), elapsed))
        return steps

    def ended(self) -> ReplyStats | None:
        if self._finish_reason is None:
            return None
        reason = STOP_REASONS.get(self._finish_reason, "eos")
        prompt_tokens = self._usage.get("prompt_tokens")
        if not isinstance(prompt_tokens, int):
            prompt_tokens = len(self.prompt.ids)
        stats = ReplyStats.of(self.events, prompt_tokens, reason, self.prompt.dropped_turns)
        written = self._usage.get("completion_tokens")
        if self.events and all(e.prob is None for e in self.events) and isinstance(written, int) and written > 1:
            # Without log probabilities a step is a chunk of text, and a chunk may hold several tokens
            # (transformers serve's do): the count and the rate are the server's count of tokens.
            span = self.events[-1].elapsed - self.events[0].elapsed
            rate = (written - 1) / span if span > 0 else 0.0
            stats = replace(stats, new_tokens=written, tokens_per_second=rate)
        return stats


class ChatReply(OpenAIReply):
    """A reply from `/v1/chat/completions`: the messages in, the text and log probabilities out."""

    path = "/v1/chat/completions"

    def body(self) -> dict[str, Any]:
        body = {**self.sampling(self.params.max_new_tokens), "messages": list(self.prompt.messages)}
        if self.backend.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.top
        return body

    def text_of(self, choice: dict[str, Any]) -> str | None:
        return (choice.get("delta") or {}).get("content")

    def entries_of(self, choice: dict[str, Any]) -> list[dict[str, Any]]:
        return list((choice.get("logprobs") or {}).get("content") or [])


class CompletionReply(OpenAIReply):
    """A reply continued or branched through `/v1/completions`: the prompt as token ids (the rendered
    prompt's, the reply's kept tokens, the forced one), the legacy log probabilities out. The forced token
    is the user's choice, not the server's: its step carries no probability of its own."""

    path = "/v1/completions"

    def body(self) -> dict[str, Any]:
        forced = [] if self.force is None else [self.force]
        body = {
            **self.sampling(max(1, self.params.max_new_tokens - len(forced))),
            "prompt": [*self.prompt.ids, *self.prefix, *forced],
        }
        if self.backend.logprobs:
            body["logprobs"] = self.top
        return body

    def __iter__(self) -> Iterator[TokenEvent]:
        if self.force is not None:
            try:
                event = self._forced(self.force)
            except LlmtuiError:
                self._finish("error")
                raise
            self.events.append(event)
            yield event
        yield from super().__iter__()

    def _forced(self, token: int) -> TokenEvent:
        view = self.backend.view
        if view is not None and token < view.size:
            text = self._decoder.decode(view.piece_bytes(token))
        else:  # the server's own detokenizer (vLLM's /detokenize)
            text = self.backend.detokenize([token])
        return TokenEvent(len(self.prefix), token, text, None, None, None, None, (), time.perf_counter() - self.started)

    def text_of(self, choice: dict[str, Any]) -> str | None:
        return choice.get("text")

    def entries_of(self, choice: dict[str, Any]) -> list[dict[str, Any]]:
        return legacy_entries(choice)


def _with_text(event: TokenEvent, text: str) -> TokenEvent:
    return replace(event, text=text)
