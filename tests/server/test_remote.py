"""The workstation's client of a server at a URL (`--url`): `llmtui serve` over a real socket, for full
fidelity and for the generic OpenAI path; faults from a real server process killed mid-reply, and from a
tiny Starlette app under uvicorn that answers as a broken or busy server would."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from llmtui.backends.client import ClientBackend
from llmtui.backends.http import Endpoint, plain_text_warning
from llmtui.backends.local import LocalBackend
from llmtui.backends.logprobs import entropy_lower_bound
from llmtui.backends.openai import OpenAIBackend, connect, list_models
from llmtui.backends.served_tokenizer import server_tokenize
from llmtui.core.choices import ModelOptions
from llmtui.core.errors import EngineUnavailable, InvalidValue, LlmtuiError
from llmtui.core.sampling import SamplingParams
from llmtui.core.wire import EXTENSION
from tests.conftest import LONG_REPLY
from tests.server.conftest import ThreadServer
from tests.server.fake import CALLS, fake_app, serve_app

KEY = "sk-remote-secret-4242"
MESSAGES = [{"role": "user", "content": "你好 world"}]


@pytest.fixture(scope="module")
def tiny_local(tiny_model_dir):
    return LocalBackend.load(ModelOptions(str(tiny_model_dir), device="cpu"))


@pytest.fixture(scope="module")
def tiny_served(tiny_local):
    server = ThreadServer(tiny_local, api_key=KEY)
    yield server
    server.close()


def timeless(events):
    return [dataclasses.replace(e, elapsed=0.0) for e in events]


def test_llmtui_serve_at_a_url_is_the_full_fidelity_client(tiny_served, tiny_local):
    backend = connect(Endpoint(tiny_served.url, key=KEY))
    assert isinstance(backend, ClientBackend)  # the extension is there: every figure, token ids, branching
    prompt = backend.render(MESSAGES, reserve=30)
    params = SamplingParams(max_new_tokens=30, top_candidates=5)
    remote = backend.generate(prompt, params)
    local = tiny_local.generate(tiny_local.render(MESSAGES, reserve=30), params)
    assert timeless(remote) == timeless(local)
    backend.close()


def test_the_generic_openai_path_gives_what_the_server_sends_and_nothing_made_up(tiny_served, tiny_local):
    endpoint = Endpoint(tiny_served.url, key=KEY)
    entry = {**list_models(endpoint)[0], "id": "tiny", "owned_by": "someone"}
    del entry[EXTENSION]  # as a server without llmtui's extension
    backend = OpenAIBackend(endpoint, entry)
    backend.model_id = list_models(endpoint)[0]["id"]  # the server's id; "tiny" keeps its tokenizer off this machine
    assert backend.view is None
    prompt = backend.render(MESSAGES, reserve=40)
    assert prompt.ids == tiny_local.render(MESSAGES, reserve=40).ids  # the server's /tokenize with messages
    params = SamplingParams(max_new_tokens=40, top_candidates=5)
    remote = list(backend.generate(prompt, params))
    local = list(tiny_local.generate(tiny_local.render(MESSAGES, reserve=40), params))
    assert len(remote) == len(local) == 40
    # The text of every step, from the tokens' bytes: a character split over tokens shows whole on its last.
    assert [e.text for e in remote] == [e.text for e in local]
    assert any(e.text == "" for e in local), "the tiny model's reply splits no character: the test tests nothing"
    for r, lo in zip(remote, local, strict=True):
        assert r.prob == pytest.approx(lo.prob, rel=1e-5)  # exp(logprob) of the same raw distribution
        assert r.rank == lo.rank
        assert r.sampled_prob is None  # OpenAI's API does not carry it: unknown, not invented
        assert r.token_id is None  # llmtui serve's standard logprobs carry no id; neither do we
        assert [c.prob for c in r.candidates] == pytest.approx([c.prob for c in lo.candidates[:5]], rel=1e-5)
        # The entropy from the top 5 is a lower bound of the true one, and marked as such.
        assert r.entropy_bound and r.entropy <= lo.entropy + 1e-6
    # Without ids from the server, a reply cannot be continued: the key says so, nothing else starts.
    assert "did not say which tokens it wrote" in backend.extend_refusal([e.token_id for e in remote])
    with pytest.raises(InvalidValue, match="did not say which tokens it wrote"):
        backend.generate(prompt, params, prefix=[e.token_id for e in remote])

    # Branching through /v1/completions over token ids: the prompt's ids (the server's /tokenize), the
    # kept tokens, the forced one; the same tokens and probabilities as the engine in-process.
    kept = [e.token_id for e in local[:7]]
    forced = local[7].candidates[3].token_id
    branch_params = SamplingParams(max_new_tokens=12, top_candidates=5)
    branch = list(backend.generate(prompt, branch_params, prefix=kept, force=forced))
    local_prompt = tiny_local.render(MESSAGES, reserve=40)
    expected = list(tiny_local.generate(local_prompt, branch_params, prefix=kept, force=forced))
    assert branch[0].index == 7 and branch[0].token_id == forced and branch[0].prob is None  # the user's choice
    assert "".join(e.text for e in branch) == "".join(e.text for e in expected)
    assert [e.prob for e in branch[1:]] == pytest.approx([e.prob for e in expected[1:]], rel=1e-5)
    # The legacy format keys the top by text: where tokens shown alike collapse, the rank is unknown, not guessed.
    assert all(b.rank in (e.rank, None) for b, e in zip(branch[1:], expected[1:], strict=True))
    backend.close()


def test_a_server_that_echoes_log_probabilities_scores_a_text(tiny_served, tiny_local):
    endpoint = Endpoint(tiny_served.url, key=KEY)
    entry = {k: v for k, v in list_models(endpoint)[0].items() if k != EXTENSION}
    backend = OpenAIBackend(endpoint, {**entry, "id": "tiny"})  # no tokenizer here: the server's text
    backend.model_id = entry["id"]
    assert backend.capabilities.scoring
    ids = tiny_local.render([{"role": "user", "content": "你好, the capital of France is Paris."}]).ids
    local = tiny_local.score(ids, 5)
    remote = backend.score(ids, 5)
    assert [e.index for e in remote] == [e.index for e in local]
    assert [e.token_id for e in remote] == list(ids[1:])
    assert [e.prob for e in remote] == pytest.approx([e.prob for e in local], rel=1e-5)
    assert [e.text for e in remote] == [e.text for e in local]  # a character split over tokens, whole on its last
    # The echoed top is keyed by text and holds the prompt's own token wherever it ranks: no rank, no
    # entropy bound can be read from it, and none is made up.
    assert all(e.rank is None and e.entropy is None for e in remote)
    # Windows of the context, as the engine scores a long text: the same probabilities.
    long = (ids * 8)[: tiny_local.info.context_length * 2]
    assert [e.prob for e in backend.score(long, 2, stride=16)] == pytest.approx(
        [e.prob for e in tiny_local.score(long, 2, stride=16)], rel=1e-5
    )
    backend.close()


def test_a_server_that_gives_no_prompt_log_probabilities_says_it_cannot_score(fake_url):
    endpoint = Endpoint(fake_url)
    backend = OpenAIBackend(endpoint, {"id": "plain", "owned_by": "someone"})
    with pytest.raises(LlmtuiError, match="cannot score"):
        backend.score([1, 2, 3, 4], 5)
    backend.close()


def test_the_entropy_bound_holds_and_is_exact_when_the_top_holds_everything():
    probs = [0.5, 0.25, 0.125, 0.0625, 0.0625]
    exact = -sum(p * __import__("math").log(p) for p in probs)
    assert entropy_lower_bound(probs) == pytest.approx(exact)
    assert entropy_lower_bound(probs[:3]) <= exact


def test_the_server_tokenizer_says_whose_it_is(tiny_served, tiny_local):
    backend = connect(Endpoint(tiny_served.url, key=KEY))
    found = server_tokenize(backend, backend.model_id, "Hello 龍")
    assert list(found.ids) == tiny_local.view.tokenize("Hello 龍").ids
    assert backend.model_id in found.whose and "127.0.0.1" in found.whose
    backend.close()


# -- faults --------------------------------------------------------------------------------------------------


def test_a_wrong_or_missing_key_is_one_sentence_that_never_quotes_the_key(tiny_served):
    for key in (None, "sk-wrong-key-never-shown"):
        with pytest.raises(InvalidValue) as caught:
            connect(Endpoint(tiny_served.url, key=key))
        message = str(caught.value)
        assert "401" in message and "API key" in message
        assert "sk-wrong-key-never-shown" not in message and KEY not in message
    assert "sk-" not in repr(Endpoint(tiny_served.url, key=KEY))


def test_an_unknown_model_names_what_the_server_serves(tiny_served):
    with pytest.raises(InvalidValue, match=r"has no model 'nope'; it serves '"):
        connect(Endpoint(tiny_served.url, key=KEY), "nope")


def test_connection_refused_and_an_unknown_host_are_one_sentence():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(EngineUnavailable, match="refused the connection"):
        connect(Endpoint(f"http://127.0.0.1:{port}"))
    with pytest.raises(EngineUnavailable, match=r"cannot find the host of the server at no-such-host\.invalid"):
        connect(Endpoint("http://no-such-host.invalid"))


def test_tls_certificates_are_verified(tmp_path):
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a self-signed certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make = ("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-days", "1")
    subprocess.run([*make, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    unverified = r"TLS certificate of the server at 127\.0\.0\.1:\d+ could not be verified"
    with (
        serve_app(fake_app(), ssl_certfile=str(cert), ssl_keyfile=str(key)) as url,
        pytest.raises(EngineUnavailable, match=unverified),
    ):
        connect(Endpoint(url))


def test_plain_http_to_another_host_is_warned_of_loopback_is_not():
    assert plain_text_warning("http://gpu-box.example:8000") is not None
    assert "unencrypted" in plain_text_warning("http://10.0.0.7:8000")
    for quiet in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "https://gpu-box:443"):
        assert plain_text_warning(quiet) is None


@pytest.fixture(scope="module")
def fake_url():
    with serve_app(fake_app()) as url:
        yield url


def _reply(url: str, model: str, read_seconds: float = 5.0):
    backend = connect(Endpoint(url, read_seconds=read_seconds), model)
    return backend.generate(backend.render(MESSAGES), SamplingParams(max_new_tokens=10))


def test_a_server_without_log_probabilities_streams_text_and_no_made_up_numbers(fake_url):
    reply = _reply(fake_url, "nolog")
    events = list(reply)
    assert "".join(e.text for e in events) == "Hello there, friend"
    assert all(e.prob is None and e.entropy is None and e.rank is None and e.token_id is None for e in events)
    assert reply.stats.stop_reason == "eos"


def test_a_server_that_refuses_log_probabilities_is_asked_again_without(fake_url):
    reply = _reply(fake_url, "refuses-logprobs")
    assert "".join(e.text for e in reply) == "Hello there, friend"
    assert all(e.prob is None for e in reply.events) and CALLS["refuses-logprobs"] == 2


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("stall", "sent nothing for 1 s: the stream stalled"),
        ("garbage", "sent a reply llmtui cannot read"),
        ("drop", "closed the connection before the reply was complete"),
    ],
)
def test_a_fault_mid_stream_is_one_sentence_and_keeps_the_partial_reply(fake_url, model, says):
    reply = _reply(fake_url, model, read_seconds=1.0)
    seen = []
    started = time.monotonic()
    with pytest.raises(LlmtuiError, match=says):
        for event in reply:
            seen.append(event.text)
    assert time.monotonic() - started < 10  # never a hang
    assert "".join(seen) == "Hello there,"
    assert [e.text for e in reply.events] == seen
    assert reply.stats.stop_reason == "error"


def test_busy_servers_retry_after_is_honoured_before_the_first_token_else_one_sentence(fake_url):
    started = time.monotonic()
    assert "".join(e.text for e in _reply(fake_url, "busy")) == "Hello there, friend"
    assert time.monotonic() - started >= 0.3 and CALLS["busy"] == 2
    with pytest.raises(EngineUnavailable, match=r"is busy \(429: overloaded\); it asks to retry in 3600 s"):
        list(_reply(fake_url, "overloaded"))
    with pytest.raises(LlmtuiError, match=r"failed \(500: CUDA error: an illegal memory access\)"):
        list(_reply(fake_url, "fail"))


def test_a_real_server_killed_mid_reply_ends_it_with_the_reason_and_keeps_its_tokens(tiny_long_model_dir):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "LLMTUI_API_KEY": KEY}
    command = [sys.executable, "-m", "llmtui", "serve", str(tiny_long_model_dir), "--device", "cpu"]
    server = subprocess.Popen([*command, "--port", str(port)], env=env, stderr=subprocess.DEVNULL)
    try:
        endpoint = Endpoint(f"http://127.0.0.1:{port}", key=KEY)
        deadline = time.monotonic() + 60
        while True:
            try:
                backend = connect(endpoint)
                break
            except LlmtuiError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
        reply = backend.generate(backend.render(MESSAGES), SamplingParams(max_new_tokens=LONG_REPLY))
        with pytest.raises(EngineUnavailable, match="closed the connection before the reply was complete"):
            for event in reply:
                if event.index == 5:
                    os.kill(server.pid, signal.SIGKILL)
        assert len(reply.events) >= 6 and reply.stats.stop_reason == "error"
    finally:
        server.kill()
        server.wait()


# -- the command line --------------------------------------------------------------------------------------


def llmtui(*args: str, key: str | None = KEY) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LLMTUI_REMOTE_API_KEY"}
    if key is not None:
        env["LLMTUI_REMOTE_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "llmtui", *args], capture_output=True, text=True, env=env, timeout=120)


def test_the_verbs_with_a_url_and_a_key_that_appears_nowhere(tiny_served, tiny_local):
    url = tiny_served.url
    model = list_models(Endpoint(url, key=KEY))[0]["id"]
    listed = llmtui("list", "--url", url)
    assert listed.returncode == 0 and model in listed.stdout and "256" in listed.stdout
    shown = llmtui("show", model, "--url", url)
    assert shown.returncode == 0 and "context length  256" in shown.stdout and "vocabulary" in shown.stdout
    cut = llmtui("tokenize", "Hello 龍", "--url", url, "--json")
    assert json.loads(cut.stdout)["tokenizer"] == f"the tokenizer of {model} at {url.removeprefix('http://')}"
    assert [t["token_id"] for t in json.loads(cut.stdout)["tokens"]] == tiny_local.view.tokenize("Hello 龍").ids
    ran = llmtui("run", model, "Hi", "--url", url, "--max-new-tokens", "5", "--json")
    assert ran.returncode == 0, ran.stderr
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["token"] * 5 + ["stats"]
    assert all(line["prob"] is not None for line in lines[:5])  # llmtui serve: every figure
    scored = llmtui("score", model, "Hello world, hello 龍", "--url", url, "--json")
    assert scored.returncode == 0, scored.stderr
    steps = [json.loads(line) for line in scored.stdout.splitlines()]
    expected = tiny_local.score(tiny_local.view.tokenize("Hello world, hello 龍").ids, 5)
    assert [s["prob"] for s in steps[:-1]] == pytest.approx([e.prob for e in expected], rel=1e-5)
    assert steps[-1]["type"] == "stats"
    for proc in (listed, shown, cut, ran, scored):
        assert KEY not in proc.stdout + proc.stderr
    wrong = llmtui("run", model, "Hi", "--url", url, "--api-key", "sk-wrong-never-shown")
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr
    assert "401" in wrong.stderr and "sk-wrong-never-shown" not in wrong.stderr
    plain = llmtui("list", "--url", "http://192.0.2.1:9", "--timeout", "1", key=None)  # TEST-NET: never answers
    assert plain.returncode == 1 and "unencrypted" in plain.stderr and "Traceback" not in plain.stderr


def test_a_server_named_in_the_settings(tiny_served, tmp_path):
    model = list_models(Endpoint(tiny_served.url, key=KEY))[0]["id"]
    config = tmp_path / "settings.toml"
    config.write_text(
        f'[servers.box]\nurl = "{tiny_served.url}"\nkey = "{KEY}"\nmodel = "{model}"\n\n'
        '[servers.bad]\nurl = "ftp://nowhere"\n'
    )
    ran = llmtui("--config", str(config), "tokenize", "Hello", "--server", "box", "--json", key=None)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["tokenizer"].startswith(f"the tokenizer of {model} at 127.0.0.1:")
    assert "servers.bad.url must be an http:// or https:// URL" in ran.stderr and "line 7" in ran.stderr
    shown = llmtui("--config", str(config), "config", "show", key=None)
    assert tiny_served.url in shown.stdout and KEY not in shown.stdout + shown.stderr
    missing = llmtui("--config", str(config), "list", "--server", "nope", key=None)
    assert missing.returncode == 1 and "no server 'nope' in the settings" in missing.stderr
