"""`llmtui serve` as a process: the socket is bound before the model loads, /health reports the load,
SIGTERM ends a reply in flight and the process, a load failure is one line and status 1, and with
--watch-stdin the process dies with the parent that holds its stdin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest


def _serve(*args: str, stdin=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "llmtui", "serve", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )


def _wait_for(path, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1].decode()
        assert time.monotonic() < deadline, "the socket was never bound"
        time.sleep(0.01)


def test_serve_binds_at_once_reports_loading_serves_and_stops_on_sigterm(tiny_long_model_dir, tmp_path):
    sock = tmp_path / "engine.sock"
    proc = _serve(str(tiny_long_model_dir), "--uds", str(sock), "--device", "cpu")
    try:
        _wait_for(sock, proc)
        assert sock.stat().st_mode & 0o777 == 0o600  # a private channel
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://engine", timeout=30)
        # Torch is still importing: the server answers, and says how far the load is.
        first = client.get("/health")
        assert first.status_code == 503 and first.json()["status"] == "loading"
        assert {"progress", "detail"} <= set(first.json()) and first.headers["Retry-After"]
        early = client.post("/v1/completions", json={"prompt": "Hi"})
        assert early.status_code == 503 and early.json()["error"]["code"] == "model_loading"
        deadline = time.monotonic() + 120
        while client.get("/health").status_code != 200:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        # A long reply streams; SIGTERM ends it within a step, closes the stream properly, and exits 0.
        body = {"prompt": "Hello", "max_tokens": 3000, "stream": True}
        with client.stream("POST", "/v1/completions", json=body) as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("data: {"):
                    break
            proc.send_signal(signal.SIGTERM)
            rest = [line[len("data: ") :] for line in lines if line.startswith("data: ")]
        assert rest[-1] == "[DONE]"
        stats = json.loads(rest[-2])["llmtui"]["stats"]
        assert stats["stop_reason"] == "stopped" and stats["new_tokens"] < 3000
        assert proc.wait(30) == 0
        assert not sock.exists()
        err = proc.stderr.read().decode()
        assert "Traceback" not in err and "POST /v1/completions 200" in err
    finally:
        proc.kill()
        proc.wait()


def test_a_model_that_cannot_load_is_one_line_and_status_1(tmp_path):
    proc = _serve(str(tmp_path / "no-such-model"), "--uds", str(tmp_path / "s.sock"))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("llmtui: error: ") and "no-such-model" in lines[-1]
    assert "Traceback" not in err.decode()


@pytest.mark.parametrize(
    ("flags", "says"), [(("--port", "99999"), "--port must be from 0 to 65535"), (("--uds", "/"), "cannot listen on /")]
)
def test_a_socket_that_cannot_be_bound_is_one_line_and_status_1(flags, says):
    proc = _serve("default", *flags)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.decode().splitlines() == [err.decode().strip()] and err.decode().startswith(f"llmtui: error: {says}")


def test_watch_stdin_exits_when_the_parent_goes(tiny_model_dir, tmp_path):
    """The workstation holds the child's stdin: at EOF (the parent died however it died) the child exits."""
    sock = tmp_path / "engine.sock"
    proc = _serve(str(tiny_model_dir), "--uds", str(sock), "--watch-stdin", stdin=subprocess.PIPE)
    try:
        _wait_for(sock, proc)
        assert proc.poll() is None
        proc.stdin.close()
        started = time.monotonic()
        proc.wait(10)
        assert time.monotonic() - started < 5
    finally:
        proc.kill()
        proc.wait()
