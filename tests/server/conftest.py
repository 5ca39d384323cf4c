"""`llmtui serve` driven as clients drive it: a real uvicorn server on a real socket, real client libraries."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

API_KEY = "sk-test-0123456789"


class ThreadServer:
    """The server's ASGI app under a real uvicorn, on a real socket, in a thread of the test process."""

    def __init__(self, backend=None, *, api_key: str | None = API_KEY, max_queue: int = 8) -> None:
        import uvicorn

        from llmtui.server.app import Service, create_app

        self.service = Service(api_key=api_key, max_queue=max_queue)
        if backend is not None:
            self.service.ready(backend)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(create_app(self.service), lifespan="off", log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)

    def idle(self, timeout: float = 10) -> None:
        """Wait until no reply runs and none waits."""
        deadline = time.monotonic() + timeout
        while self.service.decoder.busy:
            assert time.monotonic() < deadline, "the model thread is still busy"
            time.sleep(0.01)

    def close(self) -> None:
        self.service.close()
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="session")
def default_backend(default_engine):
    from llmtui.backends.local import LocalBackend

    return LocalBackend(default_engine)


@pytest.fixture(scope="session")
def served(default_backend) -> Iterator[ThreadServer]:
    """The default model served with an API key and room for one waiting request."""
    server = ThreadServer(default_backend, max_queue=1)
    yield server
    server.close()


@pytest.fixture(scope="session")
def client(served):
    """The OpenAI client library, as any application would use it (no retries: a 503 is what we test)."""
    import openai

    return openai.OpenAI(base_url=f"{served.url}/v1", api_key=API_KEY, max_retries=0, timeout=60)


@pytest.fixture
def http(served):
    """httpx for the raw cases, with the key."""
    import httpx

    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as c:
        yield c
