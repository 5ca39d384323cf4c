"""Small Starlette apps under a real uvicorn on a real socket, answering as servers llmtui cannot run here
do, or as broken and busy ones do."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def serve_app(app: Any, **config: Any) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    try:
        yield f"{'https' if config.get('ssl_certfile') else 'http'}://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


# A server that answers as broken and busy ones do: each model id is one behaviour.
CALLS: dict[str, int] = {}


def _chunk(content: str | None, finish: str | None = None, logprobs=None) -> str:
    choice = {"index": 0, "delta": {} if content is None else {"content": content}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = {"content": logprobs}
    return "data: " + json.dumps({"object": "chat.completion.chunk", "choices": [choice]}) + "\n\n"


def fake_app():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    behaviours = ("nolog", "stall", "garbage", "drop", "busy", "overloaded", "fail", "refuses-logprobs")

    async def models(request):
        return JSONResponse({"object": "list", "data": [{"id": b, "owned_by": "fake"} for b in behaviours]})

    async def chat(request):
        body = await request.json()
        model = body["model"]
        CALLS[model] = CALLS.get(model, 0) + 1
        if model == "busy" and CALLS[model] == 1:
            return JSONResponse({"error": {"message": "queue full"}}, 503, headers={"Retry-After": "0.3"})
        if model == "overloaded":
            return JSONResponse({"error": {"message": "overloaded"}}, 429, headers={"Retry-After": "3600"})
        if model == "refuses-logprobs" and "logprobs" in body:
            return JSONResponse({"error": {"message": "logprobs are not supported with this model"}}, 400)
        if model == "fail":
            return JSONResponse({"object": "error", "message": "CUDA error: an illegal memory access"}, 500)

        async def stream():
            for word in ("Hello", " there", ","):
                yield _chunk(word)
            if model == "stall":
                await asyncio.sleep(30)
            if model == "garbage":
                yield "data: {not json\n\n"
            if model == "drop":
                raise RuntimeError("the server process dies mid-reply")
            yield _chunk(" friend", "stop")
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def completions(request):
        # As ollama answers: a completion, without the echoed prompt's log probabilities it was asked for.
        return JSONResponse({"choices": [{"index": 0, "text": " there", "finish_reason": "length"}]})

    routes = [Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])]
    return Starlette(routes=[*routes, Route("/v1/completions", completions, methods=["POST"])])
