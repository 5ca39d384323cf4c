"""The client of other servers against their documented shapes: vLLM, SGLang, llama.cpp's server and ollama.

They cannot run here, so each one's answers are fixtures in `recorded/` (labelled there: recorded from
documentation, not from a live server), served by a small Starlette app under uvicorn on a real socket, and
read by the real client over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmtui.backends.http import Endpoint
from llmtui.backends.openai import OpenAIBackend, connect
from llmtui.backends.served_tokenizer import server_tokenize
from llmtui.core.errors import LlmtuiError
from llmtui.core.sampling import SamplingParams
from llmtui.tui.widgets.probabilities import step_figures
from tests.server.fake import serve_app

RECORDED = Path(__file__).parent / "recorded"
SERVERS = ("vllm", "sglang", "llamacpp", "ollama")
STATE: dict = {}


def _app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def models(request):
        fixture = STATE["fixture"]
        data = fixture["models"]["data"] + [{"id": "broken", "object": "model", "owned_by": "test"}]
        return JSONResponse({**fixture["models"], "data": data})

    async def chat(request):
        fixture = STATE["fixture"]
        body = STATE["request"] = await request.json()
        if body["model"] == "broken":
            return JSONResponse(fixture["error"]["body"], fixture["error"]["status"])
        chunks = fixture["stream_plain"] if STATE.get("plain") else fixture["stream"]

        async def stream():
            for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def completions(request):
        STATE["request"] = await request.json()

        async def stream():
            for chunk in STATE["fixture"]["completions"]:
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def detokenize(request):
        body = await request.json()
        recorded = STATE["fixture"]["detokenize"]
        assert body == recorded["request"]
        return JSONResponse(recorded["response"])

    async def tokenize(request):
        recorded = STATE["fixture"]["tokenize"]
        body = await request.json()
        chat = STATE["fixture"].get("tokenize_chat")
        if chat is not None and "messages" in body:
            return JSONResponse(chat["response"])
        if recorded is None:
            return JSONResponse({"error": {"message": "404 page not found"}}, 404)
        if set(body) >= set(recorded["request"]):
            return JSONResponse(recorded["response"])
        if "content" not in body and "content" in recorded["request"]:
            return JSONResponse({"tokens": []})  # llama.cpp answers a request without "content" so
        return JSONResponse({"object": "error", "message": "field required", "code": 400}, 400)

    routes = [
        Route("/v1/models", models),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
        Route("/detokenize", detokenize, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
    ]
    return Starlette(routes=routes)


@pytest.fixture(scope="module")
def url():
    with serve_app(_app()) as served:
        yield served


@pytest.fixture(params=SERVERS)
def recorded(request, url):
    fixture = json.loads((RECORDED / f"{request.param}.json").read_text(encoding="utf-8"))
    assert fixture["source"].startswith("Recorded from documentation, not from a live server")
    STATE.clear()
    STATE["fixture"] = fixture
    model = fixture["models"]["data"][0]["id"]
    backend = connect(Endpoint(url), model)
    yield request.param, fixture, backend
    backend.close()


def _reply(backend):
    reply = backend.generate(backend.render([{"role": "user", "content": "Hi"}]), SamplingParams(top_candidates=40))
    return reply, list(reply)


def test_a_streamed_reply_with_log_probabilities(recorded):
    name, fixture, backend = recorded
    assert isinstance(backend, OpenAIBackend) and backend.view is None
    expect = fixture["expect"]
    reply, events = _reply(backend)
    assert [e.text for e in events] == expect["texts"]  # a character split over tokens shows whole, once
    assert [e.token_id for e in events] == expect["ids"]
    assert [e.rank for e in events] == expect["ranks"]
    if expect["probs0"] is None:
        assert all(e.prob is None and e.entropy is None and not e.candidates for e in events)
    else:
        assert events[0].prob == pytest.approx(expect["probs0"], abs=1e-4)
        assert all(e.sampled_prob is None and e.entropy_bound for e in events)
        said = step_figures(events[0])  # the sidebar labels what the server's figures are
        assert "the server's logprob: raw or processed" in said and "entropy ≥" in said
    assert reply.stats.stop_reason == expect["stop"]
    assert reply.stats.prompt_tokens == expect["prompt_tokens"]
    sent = STATE["request"]
    assert sent["logprobs"] is True and sent["top_logprobs"] == 20  # 40 asked, OpenAI's and vLLM's cap sent
    assert sent.get("return_tokens_as_token_ids") is (True if name == "vllm" else None)
    assert "top_k" not in sent and "repetition_penalty" not in sent  # beyond OpenAI's fields only when set


def test_a_stream_without_log_probabilities_still_streams_its_text(recorded):
    _, fixture, backend = recorded
    if fixture["stream_plain"] is None:
        pytest.skip("this server's recorded stream has none already")
    STATE["plain"] = True
    reply, events = _reply(backend)
    assert "".join(e.text for e in events) and all(e.prob is None and e.token_id is None for e in events)
    assert reply.stats.stop_reason in ("eos", "max_tokens")


def test_the_servers_tokenizer(recorded):
    _, fixture, backend = recorded
    if fixture["tokenize"] is None:
        with pytest.raises(LlmtuiError, match="has no /tokenize llmtui can use"):
            server_tokenize(backend, backend.model_id, "Hello")
        return
    text = fixture["tokenize"]["request"].get("prompt") or fixture["tokenize"]["request"]["content"]
    found = server_tokenize(backend, backend.model_id, text)
    response = fixture["tokenize"]["response"]
    assert list(found.ids) == [t["id"] if isinstance(t, dict) else t for t in response["tokens"]]
    assert backend.model_id in found.whose


def test_the_servers_error_body_is_one_sentence(recorded, url):
    _, fixture, _ = recorded
    backend = connect(Endpoint(url), "broken")
    with pytest.raises(LlmtuiError) as caught:
        _reply(backend)
    assert fixture["error_says"] in str(caught.value) and "\n" not in str(caught.value)
    backend.close()


def test_continue_and_branch_over_token_ids_or_the_reason_why_not(recorded):
    _, fixture, backend = recorded
    prompt = backend.render([{"role": "user", "content": "Hi"}])
    if "expect_branch" not in fixture:
        # No /tokenize that takes messages (llama.cpp's takes text, ollama has none; SGLang's recorded one
        # takes a prompt): the key says so, nothing else starts.
        why = backend.extend_refusal([1, 2])
        assert why and "cannot continue or branch" in why and "/tokenize does not take chat messages" in why
        with pytest.raises(LlmtuiError, match="cannot continue or branch"):
            backend.generate(prompt, SamplingParams(), prefix=[1, 2], force=3)
        return
    expect = fixture["expect_branch"]
    assert list(prompt.ids) == fixture["tokenize_chat"]["response"]["tokens"]  # vLLM's /tokenize with messages
    assert backend.extend_refusal([9906, 111]) is None
    assert "no ids" in backend.extend_refusal([9906, None])
    reply = backend.generate(prompt, SamplingParams(max_new_tokens=3), prefix=[9906, 111], force=244)
    events = list(reply)
    assert [e.text for e in events] == expect["texts"]
    assert [e.token_id for e in events] == expect["ids"] and [e.index for e in events] == [2, 3, 4]
    assert [e.rank for e in events] == expect["ranks"]
    assert events[0].prob is None  # the forced token is the user's choice, not the server's
    sent = STATE["request"]
    assert sent["prompt"] == expect["prompt"] and sent["logprobs"] == 10 and sent["max_tokens"] == 2
    assert sent["return_tokens_as_token_ids"] is True
    assert reply.stats.stop_reason == "max_tokens" and reply.stats.prompt_tokens == 9
