"""What every backend that talks to a server over HTTP shares: the connection, one-sentence failures, and the
streamed reply (server-sent events) with its faults.

`ClientBackend` (llmtui's own `llmtui serve`) and `OpenAIBackend` (any OpenAI-compatible server: vLLM,
SGLang, llama.cpp, ollama) differ only in the request they send and how they read a chunk; the connection,
retries, timeouts and every failure a network or a server can produce are written here once. A failure is
an LlmtuiError of one sentence that never quotes the API key; a reply that fails keeps its events.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from httpx_sse import SSEError, connect_sse

from llmtui.backends.base import Backend
from llmtui.core.errors import EngineUnavailable, GenerationError, InvalidValue, LlmtuiError, first_line
from llmtui.core.events import ReplyStats, TokenEvent
from llmtui.core.prompt import Prompt
from llmtui.core.reply import ReplyState
from llmtui.core.sampling import SamplingParams

# Connecting is quick or never. Reading waits for the slowest step: the first token pays for the prompt's
# whole prefill. A stream that sends nothing for that long has stalled.
CONNECT_SECONDS = 10.0
READ_SECONDS = 600.0
# 429 and 503 before the first token: wait as the server asks (Retry-After), up to this long, this often.
MAX_RETRY_WAIT = 30.0
RETRIES = 3


@dataclass(frozen=True)
class Endpoint:
    """Where a server is and how to reach it. ``key`` is sent as a bearer token and nowhere else."""

    url: str = "http://llmtui"
    uds: str | None = None  # a Unix socket (the workstation's own engine process)
    key: str | None = None
    read_seconds: float = READ_SECONDS

    @property
    def connect_seconds(self) -> float:
        return min(CONNECT_SECONDS, self.read_seconds)

    def __repr__(self) -> str:  # a key must never reach a log or a traceback through a repr
        return f"Endpoint(url={self.url!r}, uds={self.uds!r}, key={'***' if self.key else None})"

    @property
    def host(self) -> str:
        """The server as a user names it: host and port, or the socket."""
        if self.uds:
            return self.uds
        parts = urlsplit(self.url)
        return parts.netloc.rpartition("@")[2] or self.url

    @property
    def public_url(self) -> str:
        """The URL without user name, password, query or fragment: what a conversation file records."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}".rstrip("/")

    def redact(self, text: str) -> str:
        """``text`` with the key replaced (a server's error body may quote what it was sent)."""
        return text.replace(self.key, "***") if self.key else text

    def client(self) -> httpx.Client:
        """An HTTP client for this endpoint. TLS certificates are verified (httpx's default, kept)."""
        transport = httpx.HTTPTransport(uds=self.uds) if self.uds else None
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        timeout = httpx.Timeout(self.connect_seconds, read=self.read_seconds)
        return httpx.Client(base_url=self.url, transport=transport, headers=headers, timeout=timeout)


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host, else InvalidValue."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValue(f"--url must be an http:// or https:// URL with a host, not {url!r}")
    return url.rstrip("/")


def plain_text_warning(url: str) -> str | None:
    """The one-line warning for plain http:// to a host that is not this machine, or None."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost"):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return f"{host} is reached over plain http://: the conversation travels unencrypted"


def error_message(response: httpx.Response) -> str:
    """The one sentence an error body carries (OpenAI's, vLLM's, llama.cpp's or ollama's shape), or the
    status line when it carries none."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message: Any = None
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or body.get("message") or body.get("detail")
    if isinstance(message, str) and message.strip():
        return first_line(Exception(message))
    return f"{response.status_code} {response.reason_phrase}"


def retry_after(response: httpx.Response) -> float | None:
    """The seconds a 429 or 503 asks the client to wait (Retry-After: seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpBackend(Backend):
    """A backend behind a server: its connection, and every failure as one sentence."""

    endpoint: Endpoint
    http: httpx.Client
    what = "the server"  # how messages name it

    @property
    def where(self) -> str:
        """The server as messages name it: "the server at gpu-box:8000"; the engine process by its name only."""
        return self.what if self.endpoint.uds else f"{self.what} at {self.endpoint.host}"

    def connect(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.http = endpoint.client()
        self.server = None if endpoint.uds else endpoint.public_url

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request that answers JSON; every failure becomes a one-sentence LlmtuiError."""
        try:
            response = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise self.unavailable(exc) from None
        except RuntimeError:  # httpx's for a closed client: a worker asking after a switch or a quit
            if not self.http.is_closed:
                raise
            raise EngineUnavailable(f"{self.where} is no longer connected") from None
        if response.status_code >= 400:
            raise self.refused(response)
        try:
            return response.json()
        except ValueError:
            where = self.where
            raise GenerationError(f"{where} answered {path} with what is not JSON") from None

    def refused(self, response: httpx.Response) -> LlmtuiError:
        """What an error status means, in one sentence naming the server (never the key)."""
        code = response.status_code
        said = self.endpoint.redact(error_message(response))
        where = self.where
        if code in (401, 403):
            hint = "the API key is missing or wrong (--api-key, or LLMTUI_API_KEY)"
            return InvalidValue(f"{where} refused the request ({code}: {said}): {hint}")
        if code == 404:
            return InvalidValue(f"{where} answered 404: {said}")
        if code in (429, 503):
            wait = retry_after(response)
            later = f"; it asks to retry in {wait:.0f} s" if wait is not None else ""
            return EngineUnavailable(f"{where} is busy ({code}: {said}){later}")
        if code < 500:
            return InvalidValue(f"{where} refused the request ({code}: {said})")
        return GenerationError(f"{where} failed ({code}: {said})")

    def unavailable(self, exc: BaseException) -> LlmtuiError:
        """What to tell the user when the server cannot be reached or stops answering."""
        where = self.where
        text = self.endpoint.redact(str(exc))
        if isinstance(exc, httpx.ConnectTimeout):
            return EngineUnavailable(f"{where} did not accept a connection within {self.endpoint.connect_seconds:g} s")
        if isinstance(exc, httpx.ConnectError):
            lower = text.lower()
            if "name or service" in lower or "nodename" in lower or "getaddrinfo" in lower or "resolution" in lower:
                return EngineUnavailable(f"cannot find the host of {where}: {first_line(Exception(text))}")
            if "certificate" in lower:
                return EngineUnavailable(
                    f"the TLS certificate of {where} could not be verified: {first_line(Exception(text))}"
                )
            if "refused" in lower:
                return EngineUnavailable(f"{where} refused the connection: is it running, on that port?")
            return EngineUnavailable(f"cannot connect to {where}: {first_line(Exception(text))}")
        if isinstance(exc, httpx.ReadTimeout):
            return EngineUnavailable(f"{where} sent nothing for {self.endpoint.read_seconds:g} s: the stream stalled")
        if isinstance(exc, httpx.RemoteProtocolError):
            return EngineUnavailable(f"{where} closed the connection before the reply was complete")
        return EngineUnavailable(f"{where} stopped answering ({type(exc).__name__}: {first_line(Exception(text))})")

    def close(self) -> None:
        self.http.close()


class StreamedReply(ReplyState):
    """One reply streamed as server-sent events; `stop()` from any thread closes the stream (a server stops
    its decode loop when its client goes). Subclasses say what to send and how to read a chunk."""

    path = "/v1/completions"

    def __init__(
        self,
        backend: HttpBackend,
        prompt: Prompt,
        params: SamplingParams,
        prefix: tuple[int, ...] = (),
        force: int | None = None,
    ) -> None:
        super().__init__(prompt, params, prefix, force)
        self.backend = backend
        self.started = time.perf_counter()
        self._response: httpx.Response | None = None

    def body(self) -> dict[str, Any]:
        """The request."""
        raise NotImplementedError

    def take(self, chunk: dict[str, Any]) -> Iterable[TokenEvent]:
        """The events one parsed chunk carries (and, from the last one, ``self.stats``)."""
        raise NotImplementedError

    def ask_again(self, response: httpx.Response) -> bool:
        """Whether a refused request is worth sending again changed (the next ``body()``), before any token."""
        return False

    def ended(self) -> ReplyStats | None:
        """The stats once the stream has ended with [DONE]; None when it ended before the server's last word."""
        return self.stats

    def stop(self) -> None:
        """Ask the reply to end: the stream is closed, and the server stops its decode loop within a step."""
        super().stop()
        response = self._response
        if response is not None:
            response.close()

    def __iter__(self) -> Iterator[TokenEvent]:
        backend = self.backend
        try:
            for attempt in range(RETRIES + 1):
                with connect_sse(backend.http, "POST", self.path, json=self.body()) as source:
                    self._response = source.response
                    if self.stopping:
                        return self._finish("stopped")
                    status = source.response.status_code
                    if status >= 400:
                        source.response.read()
                        if attempt < RETRIES and self.ask_again(source.response):
                            continue
                        wait = retry_after(source.response) if status in (429, 503) else None
                        if wait is not None and wait <= MAX_RETRY_WAIT and attempt < RETRIES:
                            self._response = None
                            if self._stop.wait(wait):  # stopped while waiting
                                return self._finish("stopped")
                            continue
                        raise backend.refused(source.response)
                    yield from self._read(source.iter_sse())
                    break
        except (httpx.HTTPError, SSEError, ValueError, KeyError, TypeError, AttributeError) as exc:
            if self.stopping:
                return self._finish("stopped")
            self._finish("error")
            if isinstance(exc, httpx.HTTPError):
                raise backend.unavailable(exc) from None
            raise GenerationError(f"{backend.where} sent a reply llmtui cannot read ({type(exc).__name__})") from None
        except LlmtuiError:
            self._finish("error")
            raise
        finally:
            self._response = None
        stats = self.ended()
        if stats is None:  # the stream closed before the server's last chunk
            if not self.stopping:
                self._finish("error")
                raise EngineUnavailable(f"{backend.where} ended the stream before the reply was complete")
            return self._finish("stopped")
        self.stats = stats

    def _read(self, events: Iterator[Any]) -> Iterator[TokenEvent]:
        for sse in events:
            if sse.data == "[DONE]":
                return
            chunk = json.loads(sse.data)
            if not isinstance(chunk, dict):
                raise ValueError("a chunk that is not an object")
            if "error" in chunk:
                error = chunk["error"]
                said = error.get("message", error) if isinstance(error, dict) else error
                when = " mid-reply" if self.events else ""  # servers send their headers before the prefill
                raise GenerationError(
                    f"{self.backend.where} failed{when}: "
                    f"{self.backend.endpoint.redact(first_line(Exception(str(said))))}"
                )
            for event in self.take(chunk):
                self.events.append(event)
                yield event

    def _finish(self, reason: str) -> None:
        self.stats = ReplyStats.of(self.events, len(self.prompt.ids), reason, self.prompt.dropped_turns)
