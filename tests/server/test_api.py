"""The OpenAI-compatible API over the real default model: the OpenAI client library for what applications do,
httpx for raw requests, concurrent clients and disconnects. The server runs under uvicorn on a real socket."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time

import httpx
import pytest

from llmtui.backends.http import Endpoint
from llmtui.backends.openai import connect
from llmtui.core.errors import GenerationError
from llmtui.core.events import ReplyStats, TokenEvent
from llmtui.core.info import EngineInfo
from llmtui.server.protocol import token_text
from tests.builders import Intercepted
from tests.server.conftest import API_KEY, ThreadServer

pytestmark = pytest.mark.model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
STORY = [{"role": "user", "content": "Tell me a long story about a dragon who learns to code."}]


def _in_process(backend, messages, n, **params):
    prompt = backend.render(messages, reserve=n)
    generation = backend.generate(prompt, backend.default_params(temperature=0.0, max_new_tokens=n, **params))
    return prompt, list(generation)


def _client_error(served) -> str:
    """What llmtui's own client says of a reply that fails."""
    backend = connect(Endpoint(served.url, key=API_KEY))
    try:
        with pytest.raises(GenerationError) as caught:
            list(backend.generate(backend.render(STORY), backend.default_params(max_new_tokens=20)))
        return str(caught.value)
    finally:
        backend.close()


def _timeless(event: TokenEvent) -> TokenEvent:
    return dataclasses.replace(event, elapsed=0.0)


def _sse(response: httpx.Response):
    """The JSON payloads of an SSE stream, up to and including the literal [DONE]."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            yield data if data == "[DONE]" else json.loads(data)


# -- what a client gets ----------------------------------------------------------------------------------------


def test_streamed_chat_equals_the_engine_token_for_token(client, default_backend):
    """Greedy ids, probabilities and candidates through the server are the in-process engine's, exactly."""
    prompt, expected = _in_process(default_backend, QUESTION, 12)
    chunks = list(
        client.chat.completions.create(
            model="default",
            messages=QUESTION,
            max_tokens=12,
            temperature=0,
            stream=True,
            logprobs=True,
            top_logprobs=3,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    tokens = [c for c in chunks if c.choices and c.choices[0].model_extra.get("llmtui")]
    events = [TokenEvent.from_dict(c.choices[0].model_extra["llmtui"]) for c in tokens]
    assert [_timeless(e) for e in events] == [_timeless(e) for e in expected]  # one chunk per token
    assert "".join(c.choices[0].delta.content for c in tokens) == "".join(e.text for e in expected)
    view = default_backend.view
    for chunk, event in zip(tokens, expected, strict=True):
        (entry,) = chunk.choices[0].logprobs.content
        assert entry.token == token_text(view, event.token_id)
        assert entry.logprob == math.log(event.prob) and bytes(entry.bytes) == view.piece_bytes(event.token_id)
        assert [t.token for t in entry.top_logprobs] == [token_text(view, c.token_id) for c in event.candidates[:3]]
        assert [t.logprob for t in entry.top_logprobs] == [math.log(c.prob) for c in event.candidates[:3]]
    last, usage = chunks[-2], chunks[-1]
    stats = ReplyStats.from_dict(last.model_extra["llmtui"]["stats"])
    assert stats.new_tokens == len(expected) and stats.prompt_tokens == len(prompt.ids)
    assert last.choices[0].finish_reason == {"eos": "stop", "max_tokens": "length"}[stats.stop_reason]
    assert usage.choices == [] and usage.usage.completion_tokens == len(expected)
    assert usage.usage.prompt_tokens == len(prompt.ids)


def test_chat_not_streamed(client, default_backend):
    prompt, expected = _in_process(default_backend, QUESTION, 30)
    reply = client.chat.completions.create(
        model="SmolLM2-135M-Instruct", messages=QUESTION, max_completion_tokens=30, temperature=0, logprobs=True
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == "".join(e.text for e in expected)
    assert "Paris" in choice.message.content and choice.finish_reason == "stop"  # ended at the end of turn
    assert [e.logprob for e in choice.logprobs.content] == [math.log(e.prob) for e in expected]
    assert all(e.top_logprobs == [] for e in choice.logprobs.content)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (len(prompt.ids), len(expected))
    assert reply.model_extra["llmtui"]["stats"]["stop_reason"] == "eos"


def test_completions_continue_and_branch_a_reply_from_token_ids(client, default_backend):
    """The extension's prefix and forced token: what the workstation's continue and branch send."""
    prompt, reply = _in_process(default_backend, STORY, 6)
    accepted = [e.token_id for e in reply[:3]]

    def events(**extension):
        stream = client.completions.create(
            model="default",
            prompt=[*prompt.ids, *accepted],
            max_tokens=3,
            temperature=0,
            stream=True,
            extra_body={"llmtui": {"prefix": 3, **extension}},
        )
        chunks = [c for c in stream if c.choices and c.choices[0].model_extra.get("llmtui")]
        return [TokenEvent.from_dict(c.choices[0].model_extra["llmtui"]) for c in chunks]

    def in_process(force=None):
        params = default_backend.default_params(temperature=0.0, max_new_tokens=3)
        return [_timeless(e) for e in default_backend.generate(prompt, params, prefix=accepted, force=force)]

    continued = events()
    assert [e.index for e in continued] == [3, 4, 5]
    assert [e.token_id for e in continued] == [e.token_id for e in reply[3:]]  # the reply, continued
    assert [_timeless(e) for e in continued] == in_process()
    forced = reply[3].candidates[1].token_id
    branched = events(force=forced)
    assert branched[0].token_id == forced and branched[0].index == 3 and branched[0].rank == 1
    assert [_timeless(e) for e in branched] == in_process(forced)


def test_completions_logprobs_and_echo_score_the_prompt(client, default_backend):
    text = "The capital of France is Paris."
    ids = default_backend.view.backend.encode(text).ids
    scored = default_backend.engine.score(ids, top=2)
    echo = client.completions.create(model="default", prompt=text, max_tokens=0, echo=True, logprobs=2)
    logprobs = echo.choices[0].logprobs
    assert echo.choices[0].text == text and echo.usage.completion_tokens == 0
    assert logprobs.tokens == [token_text(default_backend.view, i) for i in ids]
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None  # nothing predicts the first
    assert logprobs.token_logprobs[1:] == pytest.approx([math.log(e.prob) for e in scored], rel=1e-6)
    assert logprobs.text_offset == [sum(len(t) for t in logprobs.tokens[:i]) for i in range(len(ids))]
    # The top n, and always the token itself: up to n + 1 entries.
    for top, event in zip(logprobs.top_logprobs[1:], scored, strict=True):
        assert token_text(default_backend.view, event.token_id) in top and 2 <= len(top) <= 3

    reply = client.completions.create(model="default", prompt=text, max_tokens=4, temperature=0, logprobs=1)
    generated = reply.choices[0].logprobs
    assert len(generated.tokens) == 4 and generated.text_offset[0] == 0
    assert reply.choices[0].text == "".join(generated.tokens) and reply.choices[0].finish_reason == "length"


def test_models_tokenize_and_detokenize(client, http, default_backend):
    (card,) = client.models.list().data
    info = default_backend.info
    assert card.id == info.model.name and card.model_extra["max_model_len"] == info.context_length
    assert EngineInfo.from_dict(card.model_extra["llmtui"]) == info
    assert client.models.retrieve("default").id == info.model.name

    text = "Tokenizers cut text: 你好"
    body = http.post("/tokenize", json={"prompt": text, "return_token_strs": True}).json()
    ids = default_backend.engine.tokenizer(text)["input_ids"]
    assert body == {
        "count": len(ids),
        "max_model_len": info.context_length,
        "tokens": ids,
        "token_strs": [default_backend.view.pieces[i] for i in ids],
    }
    body = http.post("/tokenize", json={"messages": QUESTION}).json()
    template_text, template_ids, templated = default_backend.engine.template(QUESTION)
    assert body["tokens"] == template_ids and body["token_strs"] is None
    assert body["llmtui"] == {"text": template_text, "templated": templated}
    assert http.post("/tokenize", json={"messages": []}).json()["count"] == 0
    assert http.post("/detokenize", json={"tokens": template_ids}).json() == {"prompt": template_text}


# -- what a client gets wrong --------------------------------------------------------------------------------

CHAT = "/v1/chat/completions"
DONE = "/v1/completions"
HELLO = [{"role": "user", "content": "Hello"}]
BAD = [
    ("POST", CHAT, b'{"messages": [', 400, None),
    ("POST", CHAT, [1, 2], 400, None),
    ("POST", CHAT, {}, 400, "messages"),
    ("POST", CHAT, {"messages": []}, 400, "messages"),
    ("POST", CHAT, {"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0]"),
    ("POST", CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "messages[0]"),
    ("POST", CHAT, {"messages": HELLO, "temperature": "hot"}, 400, "temperature"),
    ("POST", CHAT, {"messages": HELLO, "temperature": -1}, 400, "temperature"),
    ("POST", CHAT, {"messages": HELLO, "max_tokens": 0}, 400, "max_tokens"),
    ("POST", CHAT, {"messages": HELLO, "logprobs": True, "top_logprobs": 21}, 400, "top_logprobs"),
    ("POST", CHAT, {"messages": HELLO, "top_logprobs": 2}, 400, "top_logprobs"),
    ("POST", CHAT, {"messages": HELLO, "n": 2}, 400, "n"),
    ("POST", CHAT, {"messages": HELLO, "tools": [{"type": "function"}]}, 400, "tools"),
    ("POST", CHAT, {"messages": HELLO, "temprature": 1}, 400, "temprature"),
    ("POST", CHAT, {"messages": HELLO, "stream_options": {"include_usage": True}}, 400, "stream_options"),
    ("POST", CHAT, {"messages": HELLO, "stop": [1]}, 400, "stop"),
    ("POST", CHAT, {"messages": HELLO, "model": "gpt-4o"}, 404, "model"),
    ("POST", CHAT, {"messages": [{"role": "user", "content": "word " * 9000}]}, 400, "messages"),
    ("POST", DONE, {"prompt": [1, 2, 49152]}, 400, "prompt"),
    ("POST", DONE, {"prompt": [1] * 8192}, 400, "prompt"),
    ("POST", DONE, {"prompt": ["one", "two"]}, 400, "prompt"),
    ("POST", DONE, {"prompt": "Hi", "max_tokens": 0}, 400, "max_tokens"),
    ("POST", DONE, {"prompt": "Hi", "logprobs": 21}, 400, "logprobs"),
    ("POST", DONE, {"prompt": [1, 2], "llmtui": {"prefix": 2}}, 400, "llmtui"),
    ("POST", DONE, {"prompt": "Hi", "llmtui": {"prefix": 1}}, 400, "llmtui"),
    ("POST", DONE, {"prompt": [1, 2], "llmtui": {"force": 10**6}}, 400, "llmtui"),
    ("POST", DONE, {"prompt": [1, 2], "llmtui": {"top_candidates": 0}}, 400, "llmtui"),
    ("POST", "/tokenize", {"text": "Hi"}, 400, "text"),
    ("POST", "/tokenize", {"model": "nope", "prompt": "Hi"}, 404, "model"),
    ("POST", "/detokenize", {"tokens": "abc"}, 400, "tokens"),
    ("POST", "/detokenize", {"tokens": [-1]}, 400, "tokens"),
    ("GET", "/v1/nothing", None, 404, None),
    ("POST", "/v1/models", None, 405, None),
]


def test_bad_requests_get_openai_shaped_errors_and_the_server_keeps_serving(http):
    for method, path, body, status, param in BAD:
        content = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        response = http.request(method, path, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == status, (path, body, response.text)
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], (path, body)
        assert error["param"] == param, (path, body, error)
        assert "\n" not in error["message"] and "Traceback" not in error["message"]
    long = http.post(CHAT, json={"messages": [{"role": "user", "content": "word " * 9000}]}).json()["error"]
    assert long["code"] == "context_length_exceeded"
    reply = http.post(DONE, json={"prompt": "The capital of France is", "max_tokens": 2, "temperature": 0})
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 2


def test_the_api_key_is_required_and_never_logged(served, capfd):
    plain = httpx.Client(base_url=served.url, timeout=30)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        response = plain.get("/v1/models", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert plain.get("/health").json() == {"status": "ok"}  # probes need no key
    assert plain.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    err = capfd.readouterr().err
    assert "GET /v1/models 401" in err and "GET /v1/models 200" in err
    assert API_KEY not in err and "wrong" not in err


# -- several clients -------------------------------------------------------------------------------------------


class Streamer(threading.Thread):
    """A client in a thread: streams a reply, keeping each payload, until it ends or it is told to hang up."""

    def __init__(self, served, body: dict, hang_up_after: int | None = None) -> None:
        super().__init__(daemon=True)
        self.served, self.body, self.hang_up_after = served, body, hang_up_after
        self.payloads: list = []
        self.status = 0
        self.tokens = 0
        self.streaming = threading.Event()  # the first payload arrived
        self.hang_up = threading.Event()
        self.start()
        assert self.streaming.wait(30), "no reply began"

    def run(self) -> None:
        try:
            with (
                httpx.Client(base_url=self.served.url, headers={"Authorization": f"Bearer {API_KEY}"}) as c,
                c.stream("POST", CHAT, json={**self.body, "stream": True}, timeout=60) as response,
            ):
                self.status = response.status_code
                for payload in _sse(response):
                    self.payloads.append(payload)
                    self.tokens += isinstance(payload, dict) and "llmtui" in (payload.get("choices") or [{}])[0]
                    self.streaming.set()
                    if self.hang_up.is_set() or (self.hang_up_after and self.tokens >= self.hang_up_after):
                        return
        finally:
            self.streaming.set()
            self.ended = time.monotonic()


def test_one_reply_at_a_time_the_next_waits_a_full_queue_gets_503(served, http):
    first = Streamer(served, {"messages": STORY, "max_tokens": 300})
    second: dict = {}

    def waiting_client() -> None:
        response = http.post(CHAT, json={"messages": QUESTION, "max_tokens": 2})
        second.update(status=response.status_code, at=time.monotonic())

    b = threading.Thread(target=waiting_client)
    b.start()
    deadline = time.monotonic() + 10
    while served.service.decoder.waiting < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    full = http.post(CHAT, json={"messages": QUESTION, "max_tokens": 2})  # the queue (1 place) is full
    assert full.status_code == 503 and full.headers["Retry-After"] == "1"
    assert full.json()["error"]["code"] == "queue_full"
    assert first.is_alive() and not second  # the second still waits for the first
    first.hang_up.set()
    first.join(30)
    b.join(30)
    assert first.status == 200 and second["status"] == 200 and second["at"] > first.ended
    served.idle()


def test_a_client_that_hangs_up_stops_its_reply_within_a_step(served):
    client = Streamer(served, {"messages": STORY, "max_tokens": 300}, hang_up_after=3)
    client.join(30)
    served.idle(10)
    reply = served.service.decoder.last
    assert reply.stats.stop_reason == "stopped"
    assert len(reply.events) <= 3 + 3  # the steps in flight while the hang-up travelled, not 300


def test_a_waiting_client_that_hangs_up_leaves_the_queue(served, http):
    first = Streamer(served, {"messages": STORY, "max_tokens": 300})
    with pytest.raises(httpx.ReadTimeout):  # it waits behind the running reply, then gives up
        http.post(CHAT, json={"messages": QUESTION, "max_tokens": 2}, timeout=0.5)
    deadline = time.monotonic() + 5
    while served.service.decoder.waiting:
        assert time.monotonic() < deadline, "the departed client is still queued"
        time.sleep(0.01)
    assert first.is_alive()  # it left while the first reply was still decoding
    first.hang_up.set()
    first.join(30)
    served.idle()
    assert len(served.service.decoder.last.events) > 2  # the last to run was the first reply, not the departed


def test_a_stream_sends_its_headers_and_opening_before_the_prefill_ends(served, http, default_engine, monkeypatch):
    """The client has parsed the response's start by the first token, not after it (vLLM's order)."""
    started, go = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        assert go.wait(30)

    monkeypatch.setattr(default_engine, "forward", Intercepted(default_engine.forward, before_prefill=hold))
    with http.stream("POST", CHAT, json={"messages": QUESTION, "max_tokens": 3, "stream": True}) as response:
        assert started.wait(30)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        payloads = _sse(response)
        opening = next(payloads)
        assert opening["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert not go.is_set()  # all this while the prefill is still held
        go.set()
        rest = list(payloads)
    assert rest[-1] == "[DONE]" and sum("llmtui" in (p.get("choices") or [{}])[0] for p in rest[:-1]) == 3


@pytest.mark.parametrize(("after", "said"), [(0, "failed"), (3, "failed mid-reply")], ids=["prefill", "step 3"])
def test_a_failure_once_the_stream_began_is_an_sse_error_then_done(
    served, http, default_engine, monkeypatch, after, said
):
    """In the prefill (the headers are out by then) or after some tokens: an error event, then [DONE]; the
    server serves on, and llmtui's client says whether the reply had begun."""
    fault = RuntimeError("CUDA error: an illegal memory access was encountered")
    monkeypatch.setattr(default_engine, "forward", Intercepted.failing(default_engine.forward, fault, at=after))
    with http.stream("POST", CHAT, json={"messages": STORY, "max_tokens": 20, "stream": True}) as response:
        payloads = list(_sse(response))
    assert response.status_code == 200 and payloads[-1] == "[DONE]"
    error = payloads[-2]
    assert "illegal memory access" in error["error"]["message"] and error["error"]["type"] == "server_error"
    assert error["llmtui"]["stats"]["stop_reason"] == "error" and error["llmtui"]["stats"]["new_tokens"] == after
    where = served.url.removeprefix("http://")
    assert f"at {where} {said}: generation failed: CUDA error" in _client_error(served)
    monkeypatch.undo()
    assert http.post(CHAT, json={"messages": QUESTION, "max_tokens": 2}).status_code == 200


def test_while_loading_health_reports_progress_and_the_api_answers_503(default_backend):
    server = ThreadServer(api_key=None)
    try:
        server.service.loading(0.7, "loading weights")
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503
        assert health.json() == {"status": "loading", "progress": 0.7, "detail": "loading weights"}
        busy = httpx.post(f"{server.url}{CHAT}", json={"messages": HELLO})
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert busy.json()["error"]["code"] == "model_loading"
        server.service.ready(default_backend)
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
        assert httpx.get(f"{server.url}/v1/models").status_code == 200
    finally:
        server.close()


def test_the_model_lens_routes_answer_as_the_engine_does(http, default_backend):
    ids = default_backend.view.tokenize("The capital of France is").ids
    answer = http.post("/llmtui/lens", json={"tokens": ids, "positions": [len(ids) - 1], "top": 3})
    assert answer.status_code == 200, answer.text
    [step] = answer.json()["steps"]
    assert step == default_backend.logit_lens(ids, [len(ids) - 1], 3)[0].to_dict()
    assert step["layers"][-1]["candidates"][0]["piece"] == "ĠParis"
    near = http.post("/llmtui/neighbours", json={"token": ids[1], "k": 4}).json()
    assert near["input"] == [n.to_dict() for n in default_backend.neighbours(ids[1], 4)["input"]]
    assert near["output"] is None  # SmolLM2 ties its head to its input embeddings
    # Bad input is a 400 naming what is wrong, and the server serves on.
    outside = http.post("/llmtui/lens", json={"tokens": ids, "positions": [99]})
    assert outside.status_code == 400 and "position 99" in outside.json()["error"]["message"]
    assert http.post("/llmtui/neighbours", json={"token": -1}).status_code == 400
    assert http.post("/llmtui/lens", json={"tokens": "nope", "positions": [0]}).json()["error"]["param"] == "tokens"
