"""The plain forward pass computes what transformers' does, on every architecture it accepts."""

from __future__ import annotations

import copy
from types import SimpleNamespace

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


def _steps_match(ours: forward.Forward, theirs: forward.Forward, *, capacity: int, steps: int) -> None:
    """The prompt and then ``steps`` decode steps give the same logits (to 1e-4) through both passes, each
    step feeding the reference's greedy token to both."""
    with torch.inference_mode():
        mine, reference = ours.begin(capacity), theirs.begin(capacity)
        a, b = mine.prefill(IDS), reference.prefill(IDS)
        for _ in range(steps):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
            token = b.argmax()
            a, b = mine.step(token), reference.step(token)


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
    assert plain.forward.note == "exact" and plain.weights != "int8"
    assert plain.forward.input_major  # on a CPU
    embedding, head = plain.model.get_input_embeddings().weight, plain.model.get_output_embeddings().weight
    # Tied weights stay one tensor after the re-lay (SmolLM2's would otherwise be kept twice, 113 MB).
    assert (embedding.untyped_storage().data_ptr() == head.untyped_storage().data_ptr()) == tied

    _steps_match(plain.forward, reference.forward, capacity=40, steps=20)
    with torch.inference_mode():
        # The transformers model still works on the re-laid weights (the prompt goes through it).
        full = torch.tensor([IDS])
        torch.testing.assert_close(plain.model(full).logits, reference.model(full).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("head_dim", "dtype", "tolerance"), [(32, "float32", 1e-4), (16, "bfloat16", 2e-2)])
def test_plain_forward_matches_transformers_with_wide_heads_and_in_bfloat16(tmp_path, head_dim, dtype, tolerance):
    """Heads wider than hidden_size / heads (the config's head_dim, not the quotient), and weights kept in
    bfloat16, as on a GPU: the same logits as transformers (bfloat16's own rounding aside)."""
    directory = builders.tiny_llama(tmp_path / "m", head_dim=head_dim, context=64)
    reference = load(str(directory), device="cpu", dtype=dtype, forward="transformers")
    plain = load(str(directory), device="cpu", dtype=dtype, forward="plain")
    assert plain.forward.name == "plain"
    with torch.inference_mode():
        ours, theirs = plain.forward.begin(40), reference.forward.begin(40)
        a, b = ours.prefill(IDS), theirs.prefill(IDS)
        for _ in range(10):
            assert a.dtype == b.dtype == getattr(torch, dtype)
            torch.testing.assert_close(a.float(), b.float(), rtol=tolerance, atol=tolerance * b.abs().max().item())
            token = b.argmax()
            a, b = ours.step(token), theirs.step(token)


@pytest.mark.parametrize(
    "rope",
    [
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},  # scales attention too
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
        {"rope_type": "linear", "factor": 2.0},
    ],
    ids=lambda rope: rope["rope_type"],
)
def test_plain_forward_matches_transformers_with_a_fixed_rope_scaling(tmp_path, rope):
    """RoPE scalings fixed at load time (Qwen2.5's YaRN, Llama 3.1's, linear) run through the plain pass: the
    frequencies are the model's own, and YaRN's attention factor scales the rotation as transformers does."""
    directory = builders.tiny_llama(tmp_path / "m", context=64, rope_theta=100.0, sharp_attention=4.0, rope=rope)
    reference = load(str(directory), device="cpu", forward="transformers")
    plain = load(str(directory), device="cpu", forward="plain")
    assert plain.forward.name == "plain"
    assert (plain.forward.rope_scale != 1.0) == (rope["rope_type"] == "yarn")
    _steps_match(plain.forward, reference.forward, capacity=40, steps=20)


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
    assert not plain.input_major
    _steps_match(plain, reference.forward, capacity=30, steps=10)


def _int8_grid(weight: torch.Tensor) -> torch.Tensor:
    """The weight as int8 codes with one scale per output row (its largest magnitude is 127), the scale
    kept in bf16, read back: what `--quantize int8` promises to compute with, written from that alone."""
    scale = (weight.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-12)
    return (weight / scale).round().clamp(-128, 127) * scale.to(torch.bfloat16).float()


def _bf16_products(model: torch.nn.Module) -> None:
    """Each linear layer's input and product (before its bias) rounded to bf16, as the int8 kernel has them."""

    def round_input(module, args):
        return (args[0].to(torch.bfloat16).float(),)

    def round_product(module, args, out):
        bias = module.bias if module.bias is not None else 0
        return (out - bias).to(torch.bfloat16).float() + bias

    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_pre_hook(round_input)
            module.register_forward_hook(round_product)


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])  # qwen2: biases on q, k and v
def test_int8_weights_compute_with_the_int8_grid_of_every_linear_layer(tmp_path, architecture):
    """The int8 pass reads the prompt with the exact weights and writes the reply with int8 ones. Against
    transformers doing the same (the prompt through the exact model, each step through a copy whose linear
    layers have their weights on the int8 grid and their inputs and products in bf16): the same logits."""
    directory = builders.tiny_llama(tmp_path / "m", architecture=architecture, tied=False, context=64)
    exact = load(str(directory), device="cpu", forward="transformers").model
    gridded = load(str(directory), device="cpu", forward="transformers").model
    with torch.no_grad():
        for module in gridded.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.copy_(_int8_grid(module.weight.float()).to(module.weight.dtype))
    _bf16_products(gridded)
    loaded = load(str(directory), device="cpu", quantize="int8")
    int8 = loaded.forward
    assert isinstance(int8, forward.PlainForward) and int8.note == "int8 weights" and loaded.weights == "int8"
    with torch.inference_mode():
        ours = int8.begin(30)
        a = ours.prefill(IDS)
        out = exact(torch.tensor([IDS]), use_cache=True)
        torch.testing.assert_close(a, out.logits[0, -1])
        grid_cache, exact_cache = out.past_key_values, copy.deepcopy(out.past_key_values)
        for _ in range(10):
            token = a.argmax()
            a = ours.step(token)
            b = gridded(token.view(1, 1), past_key_values=grid_cache, use_cache=True).logits[0, -1]
            c = exact(token.view(1, 1), past_key_values=exact_cache, use_cache=True).logits[0, -1]
            # Within a bfloat16 step or two: a bf16 matmul's rounding depends on its kernel and reduction order,
            # which the CPU and thread count choose (one machine agreed to 1e-4, another to 2**-10 on small logits
            # and 2**-7 on one near 1). The exact weights, off the grid, are outside that.
            torch.testing.assert_close(a, b, rtol=2**-7, atol=2**-8)
            assert not torch.allclose(c, b, rtol=2**-7, atol=2**-8)  # the int8 grid is really another computation


def test_a_config_that_names_no_architecture_goes_through_transformers():
    assert forward.unsupported(SimpleNamespace()) == "the unknown architecture runs through transformers"


def test_the_transformers_pass_asked_for_says_so(tiny_model_dir):
    """`--forward transformers` on a model the plain pass runs: the note says it was asked for, not why."""
    loaded = load(str(tiny_model_dir), device="cpu", forward="transformers")
    assert loaded.forward.name == "transformers" and loaded.forward.note == "asked for"


def test_a_model_the_plain_pass_cannot_run_is_refused_in_one_sentence(tmp_path):
    """Asking for the plain pass, or for int8 weights (which only it computes), on such a model: one sentence
    that says what was asked and why it cannot be, never a silent fall back."""
    directory = builders.tiny_llama(tmp_path / "g", architecture="gemma")
    model = load(str(directory), device="cpu", forward="transformers").model
    reason = "the gemma architecture runs through transformers"
    with pytest.raises(InvalidValue) as plain:
        forward.choose_forward(model, "plain")
    assert str(plain.value) == f"asked for the plain forward pass, which cannot run this model: {reason}"
    with pytest.raises(InvalidValue) as int8:
        forward.choose_forward(model, "auto", "int8")
    assert str(int8.value) == f"int8 weights need the plain forward pass, which cannot run this model: {reason}"


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"rope_parameters": {"rope_type": "dynamic"}}, "its rotary embedding changes with the sequence length"),
        ({"rope_parameters": {"rope_type": "longrope"}}, "its rotary embedding changes with the sequence length"),
        ({"rope_scaling": {"type": "dynamic"}}, "its rotary embedding changes with the sequence length"),
        ({"rope_parameters": {"rope_type": "linear"}}, None),  # a fixed rescale: inv_freq carries it
        ({"rope_parameters": {"rope_type": "llama3"}}, None),
        ({"hidden_act": "gelu"}, "its activation is gelu, not SwiGLU"),
        ({"sliding_window": 16}, "it uses sliding-window attention"),
        ({"sliding_window": 16, "use_sliding_window": False}, None),
        ({"sliding_window": 64}, None),  # a window as long as the context never slides
        ({"mlp_bias": True}, "its MLP has biases"),
        ({}, None),
    ],
)
def test_what_the_plain_pass_cannot_compute_is_named_from_the_config(config, reason):
    """Each config the plain pass would compute wrongly is named: a rotary embedding that changes with the
    sequence length (transformers recomputes its frequencies as the reply grows, the plain pass keeps the
    first), another activation, a sliding window shorter than the context, MLP biases."""
    settings = {"model_type": "llama", "max_position_embeddings": 64} | config
    assert forward.unsupported(SimpleNamespace(**settings)) == reason


def test_what_in_a_loaded_model_the_plain_pass_cannot_run_is_named(tmp_path):
    """Beyond its config, a loaded model the plain pass would compute wrongly: one without transformers'
    Llama layout (no shared rotary embedding), one whose layers accelerate spread over several devices,
    one whose weights another library quantised to integers."""
    directory = builders.tiny_llama(tmp_path / "m", context=64)

    def model():
        return load(str(directory), device="cpu", forward="transformers").model

    assert forward.PlainForward.unsupported(model()) is None
    assert forward.PlainForward.unsupported(SimpleNamespace()) == "its layers are not laid out as transformers' Llama"
    other = model()
    del other.model.rotary_emb
    assert forward.PlainForward.unsupported(other) == "its layers are not laid out as transformers' Llama"
    spread = model()
    spread.model.layers[1].to("meta")
    assert forward.PlainForward.unsupported(spread) == "its layers are spread over several devices"
    quantised = model()
    weight = quantised.lm_head.weight
    quantised.lm_head.weight = torch.nn.Parameter(torch.zeros(weight.shape, dtype=torch.int8), requires_grad=False)
    assert forward.PlainForward.unsupported(quantised) == "its weights are quantised by another library"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_rms_norm_is_transformers_own_bit_for_bit(tmp_path, dtype):
    """The plain pass's RMSNorm against transformers' LlamaRMSNorm on the same rows: each row normalised
    over its own last dimension, in float32 whatever the weights' dtype, then cast back and scaled. The
    decode step hands it one row; these are many, in a batch, so that the axis and the shapes show."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    directory = builders.tiny_llama(tmp_path / "m", context=64)
    plain = load(str(directory), device="cpu", dtype=dtype, forward="plain").forward
    reference = LlamaRMSNorm(64, eps=plain.eps).to(getattr(torch, dtype))
    torch.manual_seed(0)
    with torch.no_grad():
        reference.weight.normal_()
        x = (torch.randn(2, 3, 64) * 4 + 1).to(getattr(torch, dtype))
        assert torch.equal(plain.rms_norm(x, reference.weight), reference(x))
