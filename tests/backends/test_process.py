"""The workstation's engine process: a real `llmtui serve` child on a real Unix socket, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from builders import gone

from llmtui.backends.local import LocalBackend
from llmtui.backends.process import runtime_base, start_engine_process
from llmtui.core.choices import ModelOptions
from llmtui.core.errors import EngineUnavailable, ModelLoadError
from llmtui.core.sampling import SamplingParams
from tests.conftest import LONG_REPLY

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello 龍 world"}]


@pytest.fixture(scope="module")
def engine_process(tiny_long_model_dir):
    # On as many threads as torch has here (under xdist, a share of the cores: see conftest.py): the plain
    # pass cuts its matrices by the thread count, and every bit is to match the engine in this process.
    progress: list[tuple[float, str]] = []
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
        backend = start_engine_process(
            ModelOptions(str(tiny_long_model_dir), device="cpu"), lambda f, w: progress.append((f, w))
        )
    backend.progress_seen = progress
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def local_long(tiny_long_model_dir):
    return LocalBackend.load(ModelOptions(str(tiny_long_model_dir), device="cpu"))


def without_time(events):
    return [replace(e, elapsed=0.0) for e in events]


def test_the_engine_process_replies_exactly_as_the_engine_in_process(engine_process, local_long):
    assert engine_process.progress_seen and all(0.0 <= f <= 1.0 for f, _ in engine_process.progress_seen)
    assert engine_process.info == local_long.info
    prompt = engine_process.render(MESSAGES, reserve=40)
    assert prompt == local_long.render(MESSAGES, reserve=40)
    params = SamplingParams(max_new_tokens=40, top_candidates=12)
    remote, local = engine_process.generate(prompt, params), local_long.generate(prompt, params)
    assert without_time(remote) == without_time(local)  # ids, text, probabilities, candidates: every bit
    assert remote.stats.stop_reason == local.stats.stop_reason
    assert remote.stats.new_tokens == local.stats.new_tokens == 40

    # Branching: keep 7 steps, force the fourth candidate of step 7, go on. Sampled, seeded: the same too.
    kept = [e.token_id for e in remote.events[:7]]
    forced = remote.events[7].candidates[3].token_id
    sampled = replace(params, temperature=0.8, top_k=20, seed=7, max_new_tokens=10)
    branch_remote = list(engine_process.generate(prompt, sampled, prefix=kept, force=forced))
    branch_local = list(local_long.generate(prompt, sampled, prefix=kept, force=forced))
    assert without_time(branch_remote) == without_time(branch_local)
    assert branch_remote[0].index == 7 and branch_remote[0].token_id == forced

    # Scoring a text through the engine process: every step's data, exactly as in-process.
    ids = prompt.ids + tuple(e.token_id for e in remote.events)
    assert engine_process.score(ids, top=5) == local_long.score(ids, top=5)
    # The model lens, too: each layer's top tokens, and neighbours in embedding space.
    assert engine_process.logit_lens(ids, [3, len(ids) - 1], 4) == local_long.logit_lens(ids, [3, len(ids) - 1], 4)
    assert engine_process.neighbours(ids[2], 6) == local_long.neighbours(ids[2], 6)


def test_stopping_a_reply_closes_its_stream_and_the_engine_serves_on(engine_process):
    prompt = engine_process.render(MESSAGES)
    reply = engine_process.generate(prompt, SamplingParams(max_new_tokens=LONG_REPLY))
    for event in reply:
        if event.index == 5:
            reply.stop()
    assert reply.stats.stop_reason == "stopped"
    assert 6 <= len(reply.events) < 100
    assert len(list(engine_process.generate(prompt, SamplingParams(max_new_tokens=3)))) == 3


def test_a_failed_load_is_one_sentence_from_the_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # this test's own: other tests start engines too
    before = set(runtime_base().glob("llmtui-engine-*"))
    with pytest.raises(ModelLoadError, match="no model at") as caught:
        start_engine_process(ModelOptions(str(tmp_path / "nope"), device="cpu"), lambda f, w: None)
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)
    assert set(runtime_base().glob("llmtui-engine-*")) <= before  # its private directory went with it


def test_the_engine_socket_goes_where_its_path_fits(tmp_path, monkeypatch):
    """A runtime or temp dir deep enough that the socket's path would not fit a Unix socket (a test's
    temp dir, a long TMPDIR) is passed over for /tmp, so that the engine can listen."""
    deep = tmp_path / ("d" * 80)
    deep.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    assert runtime_base() == Path("/tmp")
    short = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(short))
        assert runtime_base() == short  # a runtime dir it fits in comes first
    finally:
        short.rmdir()


def test_an_engine_killed_mid_reply_ends_the_reply_with_the_reason_and_keeps_its_tokens(tiny_long_model_dir):
    backend = start_engine_process(ModelOptions(str(tiny_long_model_dir), device="cpu"), lambda f, w: None)
    try:
        reply = backend.generate(backend.render(MESSAGES), SamplingParams(max_new_tokens=LONG_REPLY))
        with pytest.raises(EngineUnavailable, match="killed by SIGKILL"):
            for event in reply:
                if event.index == 5:
                    os.kill(backend.process.pid, signal.SIGKILL)
        assert len(reply.events) >= 6
        assert reply.stats.stop_reason == "error"
    finally:
        backend.close()
    assert not backend.directory.exists()


PARENT = """
import signal, sys, time
signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as under a terminal, whatever this test runs under (nohup ignores it)
from llmtui.backends.process import start_engine_process
from llmtui.core.choices import ModelOptions
backend = start_engine_process(ModelOptions(sys.argv[1], device="cpu"), lambda f, w: None)
print(backend.process.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_the_engine_process_dies_with_its_parent_however_the_parent_dies(tiny_model_dir, sig):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tiny_model_dir)], stdout=subprocess.PIPE)
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)  # alive while its parent is
        parent.send_signal(sig)
        parent.wait(10)
        assert gone(child, within=10), "the engine process outlived the workstation"
    finally:
        parent.kill()


def test_the_engine_process_demands_no_key_a_user_exported_for_a_server_of_their_own(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("LLMTUI_API_KEY", "sk-for-another-server")  # `llmtui serve` would demand it
    backend = start_engine_process(ModelOptions(str(tiny_model_dir), device="cpu"), lambda f, w: None)
    try:
        assert len(list(backend.generate(backend.render(MESSAGES), SamplingParams(max_new_tokens=2)))) == 2
    finally:
        backend.close()
