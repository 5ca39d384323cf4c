"""The plain forward pass computes what transformers' does, on every architecture it accepts."""

from __future__ import annotations

import pytest
import torch

from llmtui.core.errors import InvalidValue
from llmtui.core.sampling import SamplingParams
from llmtui.engine import forward
from llmtui.engine.generation import Engine
from llmtui.engine.loader import load
from tests import builders

IDS = [5, 17, 42, 99, 3, 250, 7, 61, 120, 8]


@pytest.fixture
def threads():
    """Set torch's thread count for one test; the column blocks of the plain pass depend on it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("architecture", "tied"), [("llama", False), ("llama", True), ("qwen2", False), ("qwen2", True)]
)
@pytest.mark.parametrize("thread_count", [1, 2])
def test_plain_forward_matches_transformers(tmp_path, threads, architecture, tied, thread_count):
    threads(thread_count)
    directory = builders.tiny_llama(tmp_path / "m", architecture=architecture, tied=tied, context=64)
    reference = load(str(directory), device="cpu", forward="transformers")
    plain = load(str(directory), device="cpu", forward="plain")
    assert plain.forward.name == "plain" and reference.forward.name == "transformers"
    assert plain.forward.input_major  # on a CPU

    with torch.inference_mode():
        ours, theirs = plain.forward.begin(40), reference.forward.begin(40)
        a, b = ours.prefill(IDS), theirs.prefill(IDS)
        for _ in range(20):  # each step feeds the reference's greedy token to both
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
            token = b.argmax()
            a, b = ours.step(token), theirs.step(token)
        # The transformers model still works on the re-laid weights (the prompt goes through it).
        full = torch.tensor([IDS])
        torch.testing.assert_close(plain.model(full).logits, reference.model(full).logits, rtol=1e-4, atol=1e-4)


def test_other_architectures_fall_back_to_transformers(tmp_path):
    directory = builders.tiny_llama(tmp_path / "g", architecture="gemma")
    loaded = load(str(directory), device="cpu")
    assert loaded.forward.name == "transformers"
    assert "gemma" in loaded.forward.note
    assert "gemma" in loaded.info.forward
    engine = Engine(loaded)
    events = list(engine.generate(engine.render([{"role": "user", "content": "hi"}]), SamplingParams(max_new_tokens=5)))
    assert len(events) >= 1
    with pytest.raises(InvalidValue, match="cannot run this model: the gemma architecture"):
        load(str(directory), device="cpu", forward="plain")


def test_bad_choices_are_refused_before_loading(tiny_model_dir):
    with pytest.raises(InvalidValue, match="unknown forward 'fast'"):
        load(str(tiny_model_dir), device="cpu", forward="fast")
    with pytest.raises(InvalidValue, match="unknown quantize 'int4'"):
        load(str(tiny_model_dir), device="cpu", quantize="int4")
    with pytest.raises(InvalidValue, match="int8 weights need the plain forward pass"):
        load(str(tiny_model_dir), device="cpu", forward="transformers", quantize="int8")


@pytest.mark.parametrize(("width", "threads", "blocks"), [(49152, 2, 2), (960, 3, 3), (7, 4, 1), (10, 4, 2), (8, 0, 1)])
def test_column_blocks_split_evenly(width, threads, blocks):
    assert forward._blocks(width, threads) == blocks


@pytest.mark.model
def test_int8_weights_stay_close_to_the_exact_distribution(default_engine, default_int8_engine):
    """Opt-in int8 moves probabilities a little, never far: the same bound the benchmark reports."""
    prompt = default_engine.render([{"role": "user", "content": "What is the capital of France?"}])
    exact = list(default_engine.generate(prompt, SamplingParams(max_new_tokens=16)))
    forced = [e.token_id for e in exact]
    # Teacher-force the exact reply through the int8 pass so both see the same context at every step.
    with torch.inference_mode():
        pass_ = default_int8_engine.forward.begin(len(prompt.ids) + len(forced) + 1)
        logits = pass_.prefill(prompt.ids)
        drift = []
        for event in exact:
            probs = logits.float().softmax(-1)
            drift.append(abs(probs[event.token_id].item() - event.prob))
            logits = pass_.step(torch.tensor(event.token_id))
    assert default_int8_engine.loaded.weights == "int8"
    assert max(drift) < 0.2, drift
    assert max(drift) > 0  # the int8 pass is really another computation


def test_plain_forward_in_the_gpu_layout_matches_transformers(tmp_path):
    """GPUs keep transformers' (out, in) layout; run that path here, where there is no GPU."""
    directory = builders.tiny_llama(tmp_path / "m", architecture="qwen2", tied=True, context=64)
    reference = load(str(directory), device="cpu", forward="transformers")
    model = load(str(directory), device="cpu", forward="transformers").model
    plain = forward.PlainForward(model, input_major=False)
    with torch.inference_mode():
        ours, theirs = plain.begin(30), reference.forward.begin(30)
        a, b = ours.prefill(IDS), theirs.prefill(IDS)
        for _ in range(10):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
            a, b = ours.step(b.argmax()), theirs.step(b.argmax())
