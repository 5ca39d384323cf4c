from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import builders


def pytest_configure(config) -> None:
    """Under xdist, each worker's torch gets its share of the cores: workers times threads beyond the core
    count only makes every worker slower. (The processes the tests start keep torch's default: the
    benchmark and signal tests need replies that take as long as they take in use.)"""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    """Each test gets its own settings and conversation dirs; the model conversion cache is shared."""
    monkeypatch.setenv("LLMTUI_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("LLMTUI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return builders.tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama")


LONG_CONTEXT = 32_768
# A reply's limit that a test stops long before: 4,000 tokens took under 2 s here, on one thread.
LONG_REPLY = 30_000


@pytest.fixture(scope="session")
def tiny_long_model_dir(tmp_path_factory) -> Path:
    """The same tiny model with room for thousands of tokens: replies that last long enough to interrupt."""
    # A reply of tens of thousands of tokens lasts seconds even on one thread, however fast the tiny model.
    return builders.tiny_llama(tmp_path_factory.mktemp("tiny-long") / "tiny-llama-long", context=LONG_CONTEXT)


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir):
    from llmtui.engine.loader import load

    return load(str(tiny_model_dir), device="cpu")


@pytest.fixture
def tiny_engine(tiny_loaded):
    """A new engine over the shared tiny model for each test (microseconds): an engine built once would
    leave mutation testing (make mutate) counting its constructor to the first test alone."""
    from llmtui.engine.generation import Engine

    return Engine(tiny_loaded)


@pytest.fixture(scope="session")
def default_loaded():
    """The real default model (SmolLM2-135M-Instruct), loaded once per test session."""
    from llmtui.engine.loader import load

    os.environ.pop("HF_HOME", None)
    return load("default", device="cpu")


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """The default model's converted checkpoint (config, safetensors, tokenizer files), made once."""
    from llmtui.engine import specs

    return specs.checkpoint_dir(specs.resolve("default"))


@pytest.fixture(scope="session")
def default_engine(default_loaded):
    from llmtui.engine.generation import Engine

    return Engine(default_loaded)


@pytest.fixture(scope="session")
def default_reference():
    """The default model as transformers loads it, weights untouched: the reference for exactness."""
    from llmtui.engine.loader import load

    return load("default", device="cpu", forward="transformers")


@pytest.fixture(scope="session")
def default_int8_engine():
    from llmtui.engine.generation import Engine
    from llmtui.engine.loader import load

    return Engine(load("default", device="cpu", quantize="int8"))
