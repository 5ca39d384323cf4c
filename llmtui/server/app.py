"""The ASGI application of `llmtui serve`: its routes over one loaded model, on Starlette.

Requests are read and checked on the event loop (`protocol`), prompts are rendered in Starlette's thread
pool, and the model runs on the decode thread (`decoder`), one reply at a time. A pure ASGI middleware in
front checks the API key and writes one log line per request.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmtui.core import wire
from llmtui.core.errors import ContextOverflow, GenerationError, InvalidValue, LlmtuiError
from llmtui.core.events import ReplyStats
from llmtui.core.prompt import Prompt
from llmtui.core.sampling import SamplingParams
from llmtui.core.text import escape_controls
from llmtui.server import protocol
from llmtui.server.decoder import Decoder, Item, Job, QueueFull
from llmtui.server.protocol import ApiError, GenerateRequest, invalid
from llmtui.server.writer import ReplyWriter, item_error

RETRY_AFTER = "1"  # seconds, for a model still loading and for a full queue
LOG_KEY = "llmtui.log"  # where an endpoint leaves what the request's log line reports


class Service:
    """What the routes serve: the model once it has loaded (and how far loading is), and the decode thread."""

    def __init__(self, *, api_key: str | None = None, max_queue: int = 8, spec: str | None = None) -> None:
        self.api_key = api_key
        self.max_queue = max_queue
        self.spec = spec
        self.backend: Any = None  # a LocalBackend once loaded (imported only on the loading thread)
        self.decoder: Decoder | None = None
        self.progress = 0.0
        self.detail = "starting"
        self.failure: str | None = None
        self.created = protocol.now()
        self.model_id = ""
        self._aliases: set[str] = set()
        self._closed = False

    def loading(self, fraction: float, detail: str) -> None:
        """How far the load is (a `Progress` callback, called from the loading thread)."""
        self.progress, self.detail = fraction, detail

    def ready(self, backend: Any) -> None:
        """Serve ``backend`` (a LocalBackend) from now on."""
        info = backend.info.model
        self.model_id = info.name
        self._aliases = {a for a in (info.name, info.spec, info.path, self.spec) if a}
        self.decoder = Decoder(self.max_queue)
        if self._closed:
            self.decoder.close()
        self.progress, self.detail = 1.0, "ready"
        self.backend = backend

    def close(self) -> None:
        """The server is stopping: end the running reply within a step and turn away the waiting ones."""
        self._closed = True
        if self.decoder is not None:
            self.decoder.close()

    def require(self) -> Any:
        """The backend, or a 503 while the model loads."""
        if self.backend is None:
            raise ApiError(
                503,
                f"the model is still loading ({self.progress:.0%}: {self.detail}); try again shortly",
                type="server_error",
                code="model_loading",
                headers={"Retry-After": RETRY_AFTER},
            )
        return self.backend

    def check_model(self, name: str | None) -> str:
        """The served model's id; a 404 when a request names another model."""
        if name is not None and name not in self._aliases:
            raise ApiError(
                404,
                f"the model {name!r} does not exist; this server serves {self.model_id!r}",
                param="model",
                code="model_not_found",
            )
        return self.model_id


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _log(message: str) -> None:
    print(f"llmtui: {message}", file=sys.stderr, flush=True)


def _handled(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Every failure of a route becomes an OpenAI-shaped error body; none reaches uvicorn as a traceback."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return error_response(exc)
        except LlmtuiError as exc:
            return error_response(protocol.from_llmtui(exc))
        except Exception as exc:
            what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _log(f"error: {request.method} {request.url.path}: {type(exc).__name__}: {what[:300]}")
            return error_response(ApiError(500, f"internal error: {what[:300]}", type="server_error"))

    return endpoint


async def _json(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise invalid("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise invalid(f"the request body is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None


async def _encode_text(view: Any, text: str, *, add_special_tokens: bool) -> list[int]:
    """A text's token ids, cut on a worker thread: a long text would hold up every other request."""
    encoding = await run_in_threadpool(view.backend.encode, text, add_special_tokens=add_special_tokens)
    return list(encoding.ids)


async def _watch(receive: Receive, job: Job) -> None:
    """Stop the job when the client disconnects: it leaves the queue, or its reply ends within a step."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            job.stop()
            return


class Routes:
    """The endpoints, over one Service."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def health(self, request: Request) -> Response:
        service = self.service
        if service.backend is None:
            body = {"status": "loading", "progress": round(service.progress, 3), "detail": service.detail}
            return JSONResponse(body, status_code=503, headers={"Retry-After": RETRY_AFTER})
        return JSONResponse({"status": "ok"})

    def _model_card(self) -> dict[str, Any]:
        info = self.service.backend.info
        return {
            "id": self.service.model_id,
            "object": "model",
            "created": self.service.created,
            "owned_by": "llmtui",
            "root": info.model.path,
            "parent": None,
            "max_model_len": info.context_length,
            wire.EXTENSION: info.to_dict(),
        }

    async def models(self, request: Request) -> Response:
        self.service.require()
        return JSONResponse({"object": "list", "data": [self._model_card()]})

    async def model(self, request: Request) -> Response:
        self.service.require()
        self.service.check_model(request.path_params["model"])
        return JSONResponse(self._model_card())

    async def tokenize(self, request: Request) -> Response:
        backend = self.service.require()
        req = protocol.read_tokenize(await _json(request))
        self.service.check_model(req.model)
        view = backend.view
        extension: dict[str, Any] = {}
        if req.messages is not None:
            if not req.add_generation_prompt:
                raise invalid("'add_generation_prompt' false is not supported by llmtui serve", "add_generation_prompt")
            try:
                text, ids, templated = await run_in_threadpool(backend.engine.template, req.messages)
            except GenerationError as exc:
                raise invalid(str(exc), "messages") from None
            extension = {wire.EXTENSION: {"text": text, "templated": templated}}
        else:
            assert req.prompt is not None
            ids = await _encode_text(view, req.prompt, add_special_tokens=req.add_special_tokens)
        body: dict[str, Any] = {"count": len(ids), "max_model_len": backend.info.context_length, "tokens": list(ids)}
        body["token_strs"] = [view.pieces[i] for i in ids] if req.return_token_strs else None
        return JSONResponse({**body, **extension})

    async def detokenize(self, request: Request) -> Response:
        backend = self.service.require()
        model, tokens = protocol.read_detokenize(await _json(request))
        self.service.check_model(model)
        protocol.check_ids(tokens, backend.view.size, "tokens")
        return JSONResponse({"prompt": backend.view.backend.decode(tokens, skip_special_tokens=False)})

    # -- the model lens: llmtui's own routes, for its workstation ------------------------------------------

    async def lens(self, request: Request) -> Response:
        backend = self.service.require()
        model, tokens, positions, top = protocol.read_lens(await _json(request))
        self.service.check_model(model)
        protocol.check_ids(tokens, backend.view.size, "tokens")
        steps = await self._on_model_thread(lambda: backend.logit_lens(tokens, positions, top))
        return JSONResponse({"steps": [step.to_dict() for step in steps]})

    async def neighbours(self, request: Request) -> Response:
        backend = self.service.require()
        model, token, k = protocol.read_neighbours(await _json(request))
        self.service.check_model(model)
        protocol.check_ids([token], backend.view.size, "token")
        found = await self._on_model_thread(lambda: backend.neighbours(token, k))
        return JSONResponse({which: None if n is None else [x.to_dict() for x in n] for which, n in found.items()})

    def _submit(self, work: Callable[[Job], None]) -> Job:
        """Queue work for the model's thread; a 503 with Retry-After when the queue is full."""
        decoder = self.service.decoder
        assert decoder is not None
        job = Job(work, asyncio.get_running_loop())
        try:
            decoder.submit(job)
        except QueueFull:
            waiting = decoder.max_queue
            raise ApiError(
                503,
                f"the server is busy: one request is being served and {waiting} are waiting; try again shortly",
                type="server_error",
                code="queue_full",
                headers={"Retry-After": RETRY_AFTER},
            ) from None
        return job

    async def _on_model_thread(self, call: Callable[[], Any]) -> Any:
        """Run ``call`` on the model's thread, in the queue with the replies; its LlmtuiError is a 400."""
        job = self._submit(lambda job: job.post("done", call()))
        item = await job.get()
        if item.kind != "done":
            if isinstance(item.value, InvalidValue | ContextOverflow):
                raise invalid(str(item.value), None)
            raise item_error(item)
        return item.value

    # -- generation --------------------------------------------------------------------------------------

    def _params(self, req: GenerateRequest, max_tokens: int) -> SamplingParams:
        backend = self.service.backend
        defaults = backend.info.defaults
        top = max(req.extension.top_candidates or defaults.top_candidates, req.logprobs or 0)
        try:
            return backend.default_params(**req.overrides, max_new_tokens=max_tokens, top_candidates=top)
        except InvalidValue as exc:
            raise invalid(str(exc)) from None

    async def chat(self, request: Request) -> Response:
        backend = self.service.require()
        req = protocol.read_chat(await _json(request))
        self.service.check_model(req.model)
        context = backend.info.context_length
        reserve = req.max_tokens or backend.info.defaults.max_new_tokens
        try:
            prompt = await run_in_threadpool(backend.render, req.messages, reserve)
        except GenerationError as exc:  # the chat template refused the conversation
            raise invalid(str(exc), "messages") from None
        params = self._params(req, req.max_tokens or context)
        writer = ReplyWriter(backend.view, self.service.model_id, req, chat=True, prompt_tokens=len(prompt.ids))
        return await self._reply(request, req, writer, self._work(prompt, params, (), None, None, None))

    async def completions(self, request: Request) -> Response:
        backend = self.service.require()
        req = protocol.read_completion(await _json(request))
        self.service.check_model(req.model)
        view, context = backend.view, backend.info.context_length
        if isinstance(req.prompt, str):
            ids = await _encode_text(view, req.prompt, add_special_tokens=True)
            text = req.prompt
            if not ids:
                raise invalid("'prompt' is empty", "prompt")
        else:
            assert req.prompt is not None
            ids = list(req.prompt)
            protocol.check_ids(ids, view.size, "prompt")
            text = view.backend.decode(ids, skip_special_tokens=False) if req.echo else ""
        if len(ids) >= context:
            raise invalid(
                f"the prompt is {len(ids)} tokens; the model's context of {context} leaves no room for a reply",
                "prompt",
                "context_length_exceeded",
            )
        ext = req.extension
        if ext.prefix >= len(ids):
            raise invalid(
                f"'{wire.EXTENSION}.prefix' ({ext.prefix}) must leave at least one prompt token", wire.EXTENSION
            )
        if ext.force is not None:
            protocol.check_ids([ext.force], view.size, wire.EXTENSION)
        split = len(ids) - ext.prefix
        prompt = Prompt(text if not ext.prefix else "", tuple(ids[:split]), True, 0, context)
        max_tokens = req.max_tokens or 0
        params = self._params(req, max(max_tokens, 1))
        echo_ids = ids if req.echo else None
        writer = ReplyWriter(
            view,
            self.service.model_id,
            req,
            chat=False,
            prompt_tokens=len(ids),
            echo_ids=echo_ids,
            echo_text=text if req.echo else "",
        )
        score = req.logprobs if req.echo and req.logprobs is not None else None
        work = self._work(prompt, params, tuple(ids[split:]), ext.force, echo_ids, score, generate=max_tokens > 0)
        return await self._reply(request, req, writer, work)

    def _work(
        self,
        prompt: Prompt,
        params: SamplingParams,
        prefix: tuple[int, ...],
        force: int | None,
        echo_ids: list[int] | None,
        score_top: int | None,
        *,
        generate: bool = True,
    ) -> Callable[[Job], None]:
        """What the decode thread runs for one request: score the echoed prompt, then decode the reply."""
        backend = self.service.backend

        def work(job: Job) -> None:
            if echo_ids is not None:
                job.post("score", backend.engine.score(echo_ids, score_top) if score_top is not None else None)
            if not generate:
                job.post("done", ReplyStats.of([], len(echo_ids or prompt.ids), "max_tokens"))
                return
            reply = backend.generate(prompt, params, prefix=prefix, force=force)
            job.attach(reply)
            for event in reply:
                job.post("event", event)
            job.post("done", reply.stats)

        return work

    async def _reply(
        self, request: Request, req: GenerateRequest, writer: ReplyWriter, work: Callable[[Job], None]
    ) -> Response:
        """Queue the work, then stream its items as SSE or gather them into one response."""
        job = self._submit(work)
        log = request.scope[LOG_KEY]
        watcher = asyncio.create_task(_watch(request.receive, job))
        try:
            if req.stream:
                # The headers (and a chat stream's opening chunk) go out now, as vLLM sends them: the client
                # has read them by the first token rather than parsing them after it. The request is valid
                # by here; what fails from now on (out of memory in the prefill, the server shutting down)
                # is an error event in the stream.
                stream = self._stream(job, writer, watcher, log)
                watcher = None  # the stream owns it now
                return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
            first = await job.get()
            if first.kind in ("error", "gone"):
                return self._failed(first)
            return await self._gather(first, job, writer, log)
        finally:
            if watcher is not None:
                watcher.cancel()
                job.stop()

    def _failed(self, item: Item) -> Response:
        error = item_error(item)
        body = error.body()
        if item.stats is not None:
            body.update(protocol.stats_field(item.stats))
        return JSONResponse(body, status_code=error.status, headers=error.headers)

    async def _gather(self, item: Item, job: Job, writer: ReplyWriter, log: dict[str, Any]) -> Response:
        scored = None
        while True:
            if item.kind == "score":
                scored = item.value
            elif item.kind == "event":
                writer.events.append(item.value)
            elif item.kind == "done":
                log["tokens"] = len(writer.events)
                return JSONResponse(writer.response(scored, item.value))
            else:
                log["tokens"] = len(writer.events)
                return self._failed(item)
            item = await job.get()

    async def _stream(
        self, job: Job, writer: ReplyWriter, watcher: asyncio.Task[None], log: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        try:
            item: Item | None = None  # the opening goes out before the job's first item
            parts = writer.opening()
            finished = False
            while True:
                # Take every item already waiting, and send them in one write.
                while item is not None and not finished:
                    finished = writer.feed(item, parts)
                    item = None if finished else job.get_nowait()
                log["tokens"] = len(writer.events)
                if parts:
                    yield b"".join(parts)
                    parts = []
                if finished:
                    return
                item = await job.get()
        finally:
            watcher.cancel()
            job.stop()


# -- the application -----------------------------------------------------------------------------------------


class Front:
    """Pure ASGI middleware: the API key, and one log line per request (the key is never logged)."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        log: dict[str, Any] = {"tokens": None}
        scope[LOG_KEY] = log

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            error = self._refused(scope)
            if error is not None:
                await error_response(error)(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        except Exception as exc:
            what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _log(f"error: {type(exc).__name__}: {what[:300]}")
            if status == 0:
                await error_response(ApiError(500, "internal error", type="server_error"))(scope, receive, send_status)
        finally:
            tokens = f" {log['tokens']} tokens" if log["tokens"] is not None else ""
            path = escape_controls(scope.get("path", ""))
            _log(f"{scope.get('method', '')} {path} {status or '-'}{tokens} {time.perf_counter() - started:.3f} s")

    def _refused(self, scope: Scope) -> ApiError | None:
        key = self.service.api_key
        if not key or scope.get("path") == "/health":
            return None
        headers = dict(scope.get("headers", ()))
        given = headers.get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        if not given:
            message = "no API key given: send it as 'Authorization: Bearer KEY'"
        elif scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), key.encode()):
            message = "the API key is not valid"
        else:
            return None
        return ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {escape_controls(request.url.path)}"
    elif exc.status_code == 404:
        message = f"no such endpoint: {request.method} {escape_controls(request.url.path)}"
    else:
        message = str(exc.detail)
    return error_response(ApiError(exc.status_code, message, code="not_found" if exc.status_code == 404 else None))


def create_app(service: Service) -> ASGIApp:
    """The ASGI application serving ``service``."""
    routes = Routes(service)
    app = Starlette(
        routes=[
            Route("/health", _handled(routes.health), methods=["GET"]),
            Route("/v1/models", _handled(routes.models), methods=["GET"]),
            Route("/v1/models/{model:path}", _handled(routes.model), methods=["GET"]),
            Route("/v1/chat/completions", _handled(routes.chat), methods=["POST"]),
            Route("/v1/completions", _handled(routes.completions), methods=["POST"]),
            Route("/tokenize", _handled(routes.tokenize), methods=["POST"]),
            Route("/detokenize", _handled(routes.detokenize), methods=["POST"]),
            Route("/llmtui/lens", _handled(routes.lens), methods=["POST"]),
            Route("/llmtui/neighbours", _handled(routes.neighbours), methods=["POST"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    return Front(app, service)
