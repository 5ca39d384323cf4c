"""`llmtui serve`: bind the socket at once, load the model on a thread, serve with uvicorn.

The socket is bound before torch or transformers are imported (they take seconds), so a client can poll
`/health` for the load's progress from the first moment; the engine is imported on the loading thread only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from llmtui.core.choices import ModelOptions
from llmtui.core.errors import InvalidValue, LlmtuiError
from llmtui.server.app import Service, create_app

BACKLOG = 128
# How long a stopping server waits for responses in flight; a stopped reply ends within one step.
GRACEFUL_S = 5


def serve(
    options: ModelOptions,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    uds: str | None = None,
    api_key: str | None = None,
    max_queue: int = 8,
    watch_stdin: bool = False,
) -> int:
    """Serve ``options``' model over an OpenAI-compatible HTTP API until SIGTERM or SIGINT; the exit status.

    Listens on ``host``:``port``, or on the Unix socket ``uds``. With ``watch_stdin``, the process exits
    at once when stdin reaches EOF (the parent holding the pipe died). Raises an LlmtuiError when the
    socket cannot be bound; a model that fails to load is one line on stderr and status 1.
    """
    if max_queue < 0:
        raise InvalidValue(f"--max-queue must be 0 or more, not {max_queue}")
    sock, where = _bind(host, port, uds)
    service = Service(api_key=api_key, max_queue=max_queue, spec=options.model)
    config = uvicorn.Config(
        create_app(service),
        lifespan="off",
        log_config=None,  # llmtui writes its own one line per request
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_S,
    )
    server = _Server(config, service)
    if watch_stdin:
        threading.Thread(target=_watch_stdin, args=(service,), name="llmtui-stdin", daemon=True).start()
    loader = threading.Thread(target=_load, args=(service, options, server), name="llmtui-load", daemon=True)
    print(f"llmtui: listening on {where}; loading {options.model}", file=sys.stderr, flush=True)
    loader.start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        if uds is not None:
            with contextlib.suppress(OSError):
                os.unlink(uds)
    code = 0
    if service.failure is not None:
        print(f"llmtui: error: {service.failure}", file=sys.stderr, flush=True)
        code = 1
    if loader.is_alive():
        # Stopped while torch was importing: finalising the interpreter under that thread can hang.
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)
    return code


class _Server(uvicorn.Server):
    """uvicorn's server, stopping the running reply first, and exiting on a signal instead of re-raising it."""

    def __init__(self, config: uvicorn.Config, service: Service) -> None:
        super().__init__(config)
        self.service = service

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.close()  # the reply in flight ends within a step, so its stream closes
        await super().shutdown(sockets=sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the signal after its shutdown, which would end the process before
        # `serve` removes its Unix socket; a stop asked for by SIGTERM or SIGINT is a normal exit here.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _bind(host: str, port: int, uds: str | None) -> tuple[socket.socket, str]:
    """A listening socket, bound now; InvalidValue with the reason when it cannot be."""
    if uds is not None:
        path = Path(uds)
        _clear_stale_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Private from the first moment: the socket file is created with the umask's mode.
            old = os.umask(0o177)
            try:
                sock.bind(str(path))
            finally:
                os.umask(old)
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            raise InvalidValue(f"cannot listen on {uds}: {exc.strerror or exc}") from None
        return sock, f"unix:{uds}"
    if not 0 <= port <= 65535:
        raise InvalidValue(f"--port must be from 0 to 65535, not {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise InvalidValue(f"cannot listen on {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise InvalidValue(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return sock, f"http://{shown}:{bound_port}"


def _clear_stale_socket(path: Path) -> None:
    """Remove a socket file left by a server that died; refuse to replace anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InvalidValue(f"cannot listen on {path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody listens: left by a server that died
        return
    finally:
        probe.close()
    raise InvalidValue(f"cannot listen on {path}: another server is listening there")


def _load(service: Service, options: ModelOptions, server: uvicorn.Server) -> None:
    """Load the model (on its own thread, while the server answers `/health`); stop the server on failure."""
    try:
        service.loading(0.0, "resolving model")
        from llmtui.engine.specs import resolve

        resolve(options.model)  # a wrong name fails now, before seconds of imports
        service.loading(0.0, "importing torch and transformers")
        import torch  # noqa: F401
        import transformers  # noqa: F401

        from llmtui.backends.local import LocalBackend

        backend = LocalBackend.load(options, service.loading)
    except LlmtuiError as exc:
        service.failure = str(exc)
        server.should_exit = True
        return
    except Exception as exc:  # a library's own failure: still one line, never a traceback
        what = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        service.failure = f"cannot load {options.model}: {what[:300]}"
        server.should_exit = True
        return
    service.ready(backend)
    info = backend.info
    print(
        f"llmtui: ready: {info.model.name} on {info.device}, {info.weights}, {info.forward} forward pass",
        file=sys.stderr,
        flush=True,
    )


def _watch_stdin(service: Service) -> None:
    """At EOF on stdin (the parent holding the pipe died, however it died), stop and exit at once."""
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    service.close()
    os._exit(0)
