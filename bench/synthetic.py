"""Decode speed on models of real architectures' shapes with random weights: `python -m bench --synthetic NAME`.

Weights cannot be downloaded here, and speed depends on shapes, not on values: each shape below is the
published config.json of the model it is named after (hidden size, layers, heads, key/value heads, MLP
width, vocabulary, RoPE base, tied embeddings). Every reply is forced to the same number of new tokens (the
engine is given no end-of-sequence token; `generate` gets min_new_tokens), and llmtui's plain forward pass
is compared with transformers' `generate` on the same weights, and with the memory-bandwidth bound: the
bytes one decode step reads (every weight it multiplies by, and the KV cache so far) over the bandwidth
measured in the same run, reading (as a step does) and copying. Exactness is not measured here (random
weights give near-flat distributions): the decode suite checks it on a real model.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Figure, Target, bandwidths, best_of_both, note, read_bytes, sync

# From each model's config.json on the Hugging Face hub (Qwen/Qwen2-0.5B, Qwen/Qwen2.5-7B,
# meta-llama/Meta-Llama-3-8B). Context lengths are left at the architecture's default: a reply here is short.
SHAPES: dict[str, dict[str, Any]] = {
    "qwen2-0.5b": {
        "model_type": "qwen2",
        "hidden_size": 896,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "intermediate_size": 4864,
        "vocab_size": 151936,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
    "qwen2.5-7b": {
        "model_type": "qwen2",
        "hidden_size": 3584,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
    },
    "llama-3-8b": {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
    },
}
QUICK = "qwen2-0.5b"  # what `--quick` runs, cut down to QUICK_CUT: it only checks that the suite runs, in seconds
QUICK_CUT = {"num_hidden_layers": 2, "vocab_size": 4096}
PROMPT = 32  # prompt tokens: enough for a KV cache that is read, few enough that the weights dominate


class DoesNotFit(SystemExit):
    """A shape that cannot fit the device's memory: one line, exit status 1, before anything is allocated."""


def run(args: argparse.Namespace) -> list[Figure]:
    """Decode figures on the synthetic model ``args.synthetic`` (QUICK, cut down, with --quick)."""
    import torch

    from llmtui.core.events import decode_rate
    from llmtui.core.sampling import SamplingParams
    from llmtui.engine.generation import Engine
    from llmtui.engine.loader import choose_device, choose_dtype

    name = args.synthetic or QUICK
    shape = dict(SHAPES[name])
    if args.quick:
        shape.update(QUICK_CUT)
    device = torch.device(choose_device(args.device))
    dtype = choose_dtype(args.dtype, device.type)
    n = 8 if args.quick else (args.tokens or (256 if device.type == "cuda" else 64))
    compile_baseline = args.compile

    model = _meta_model(shape, dtype)
    weight_bytes = read_bytes(model)
    _check_fits(name, model, shape, dtype, device, n, compile_baseline)

    started = time.perf_counter()
    model = _materialise(model, shape, device)
    built_s = time.perf_counter() - started
    # The baseline runs on weights as transformers lays them; on the CPU the plain pass re-lays its own in
    # place (input-major), so it gets a copy. On a GPU the layout stays transformers' and one copy serves both.
    reference = copy.deepcopy(model) if device.type == "cpu" else model
    engine = Engine(_loaded(name, model, device, dtype))
    engine.eos_ids = frozenset()  # forced length: no token ends a reply
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, shape["vocab_size"], (PROMPT,), generator=generator).tolist()
    prompt = _prompt(ids, engine.context_length)
    prompt_ids = torch.tensor([ids], device=device)

    decode_rates: list[float] = []

    def ours() -> float:
        generation = engine.generate(prompt, SamplingParams(max_new_tokens=n, top_candidates=10))
        start = time.perf_counter()
        count = sum(1 for _ in generation)
        sync(device)
        elapsed = time.perf_counter() - start
        decode_rates.append(decode_rate(generation.events))
        return elapsed / count

    def generate(**options: Any) -> float:
        sync(device)
        start = time.perf_counter()
        out = reference.generate(
            prompt_ids,
            do_sample=False,
            max_new_tokens=n,
            min_new_tokens=n,
            top_k=None,
            top_p=None,
            temperature=None,
            pad_token_id=0,
            **options,
        )
        sync(device)
        return (time.perf_counter() - start) / (out.shape[1] - PROMPT)

    repeat = 1 if args.quick else 3
    with torch.inference_mode():
        per_token, per_token_generate = best_of_both(ours, generate, repeat, warm=not args.quick)
        compiled = None
        if compile_baseline:
            compiled = _compiled_generate(generate, device, repeat)
    size = min(weight_bytes, 1 << 30)  # a read the size of the weights, up to 1 GiB: far past every cache
    bandwidth = bandwidths(device, size, 3 if args.quick else 7)

    kv_per_position = 2 * shape["num_hidden_layers"] * shape["num_key_value_heads"] * _head_dim(shape)
    kv_per_position *= dtype.itemsize
    # The step at position p reads p + 1 positions of the cache; the decode after the first token covers
    # positions PROMPT + 1 to PROMPT + n - 1.
    kv_bytes = kv_per_position * (PROMPT + 1 + n / 2)
    step_bytes = weight_bytes + kv_bytes
    rate = max(decode_rates)
    on_gpu = device.type == "cuda"
    label = f"synthetic {name}" + (" (cut down)" if args.quick else "") + f", {str(dtype)[6:]}"
    extra = {
        "shape": shape,
        "dtype": str(dtype)[6:],
        "new_tokens": n,
        "prompt_tokens": PROMPT,
        "weight_read_MB": weight_bytes / 1e6,
        "kv_read_MB": kv_bytes / 1e6,
        "build_s": built_s,
        "bandwidth_GBps": {kind: value / 1e9 for kind, value in bandwidth.items()},
        "buffer_MB": size / 1e6,
    }
    at_small = name == "qwen2-0.5b"
    speed_target = "GPU bf16: ≥ 3 at 0.5B" if at_small else "GPU bf16: reported"
    bound_target = "GPU bf16: ≥ 0.25 at 0.5B" if at_small else "GPU bf16: ≥ 0.6 at 7-8B"
    gpu_bf16 = on_gpu and dtype == torch.bfloat16 and not args.quick

    def target(text: str, limit: float | None) -> Target:
        return Target(text, lambda f: f.ratio >= limit) if gpu_bf16 and limit is not None else note(text)

    figures = [
        Figure(
            f"{label}: decode, {n} tokens forced",
            1 / per_token,
            "tok/s",
            "transformers generate (greedy, eager)",
            1 / per_token_generate,
            target=target(speed_target, 3.0 if at_small else None),
            extra=extra,
        )
    ]
    if compiled is not None:
        rate_compiled, compile_s = compiled
        figures.append(
            Figure(
                f"{label}: decode vs generate with a static cache, torch.compile",
                1 / per_token,
                "tok/s",
                f"generate, static cache, compiled (compile {compile_s:.0f} s)",
                rate_compiled,
                target=note("opt-in: --compile"),
                extra={**extra, "compile_s": compile_s},
            )
        )
    for kind, value in bandwidth.items():
        figures.append(
            Figure(
                f"{label}: decode after the first token vs the bandwidth bound, {kind}",
                rate,
                "tok/s",
                f"{kind} bandwidth / bytes read per step",
                value / step_bytes,
                target=target(bound_target, 0.25 if at_small else 0.6) if kind == "read" else None,
                extra=extra,
            )
        )
    return figures


def _head_dim(shape: dict[str, Any]) -> int:
    return shape["hidden_size"] // shape["num_attention_heads"]


def _config(shape: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    kind = shape["model_type"]
    values = {k: v for k, v in shape.items() if k != "model_type"}
    # Not in the shape: no sliding window (Qwen2's config names one and leaves it off), ids for generate.
    return AutoConfig.for_model(kind, **values, use_sliding_window=False, bos_token_id=0, eos_token_id=None)


def _meta_model(shape: dict[str, Any], dtype: Any) -> Any:
    """The model with every tensor on the meta device: its layout without any memory or initialisation."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(_config(shape), dtype=dtype)


def _materialise(model: Any, shape: dict[str, Any], device: Any) -> Any:
    """Memory for every weight on ``device``, filled at random (no per-module initialisation), with the
    buffers the meta device could not hold computed again."""
    import torch

    model = model.to_empty(device=device)
    with torch.no_grad():
        generator = torch.Generator(device=device).manual_seed(0)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=generator)
    inner = model.model
    inner.rotary_emb = type(inner.rotary_emb)(model.config).to(device)
    if shape["tie_word_embeddings"]:
        model.lm_head.weight = inner.embed_tokens.weight  # to_empty gives each module a tensor of its own
    return model.eval()


def _check_fits(name: str, model: Any, shape: dict[str, Any], dtype: Any, device: Any, n: int, compiled: bool) -> None:
    """Refuse, in one line, a shape whose weights, caches and buffers would not fit the device's memory."""
    import torch

    weights = sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())
    copies = 2 if device.type == "cpu" else 1  # the baseline's copy on the CPU (see run)
    kv = 2 * shape["num_hidden_layers"] * shape["num_key_value_heads"] * _head_dim(shape) * dtype.itemsize
    caches = kv * (PROMPT + n) * (3 if compiled else 2)  # llmtui's, generate's, the static one's
    buffers = 2 * min(weights, 1 << 30)  # the bandwidth test's source and target
    # Re-laying the largest matrix (the output head) holds it twice for a moment.
    relay = shape["vocab_size"] * shape["hidden_size"] * dtype.itemsize
    need = weights * copies + caches + buffers + relay + (1 << 30)  # and a GiB for activations and torch
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        where = f"is free on {torch.cuda.get_device_name(device)}"
    else:
        free = _available_memory()
        where = "of memory is available"
    if need > free:
        held = f"{copies} copies of {weights / 2**30:.1f} GiB" if copies > 1 else f"{weights / 2**30:.1f} GiB"
        smaller = " (try --dtype bfloat16)" if dtype == torch.float32 else ""
        raise DoesNotFit(
            f"python -m bench: error: the synthetic {name} in {str(dtype)[6:]} needs about {need / 2**30:.1f} GiB "
            f"({held} of weights, with caches and buffers), but only {free / 2**30:.1f} GiB {where}{smaller}"
        )


def _available_memory() -> int:
    """Bytes of memory the kernel says can be had without swapping."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _tokenizer(vocab: int) -> Any:
    """A word-level tokenizer with one piece per id of the vocabulary: the decode loop needs pieces."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    pieces = {f"t{i}": i for i in range(vocab)}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(pieces, unk_token="t0")))


def _loaded(name: str, model: Any, device: Any, dtype: Any) -> Any:
    """The synthetic model as the loader would give it, with the plain forward pass."""
    from llmtui.engine.catalog import model_info
    from llmtui.engine.forward import choose_forward
    from llmtui.engine.loader import LoadedModel
    from llmtui.engine.specs import ModelSource

    tokenizer = _tokenizer(model.config.vocab_size)
    with tempfile.TemporaryDirectory() as empty:
        source = ModelSource(f"synthetic:{name}", "directory", Path(empty), f"synthetic {name}")
        info = model_info(source, Path(empty), model.config, tokenizer, model=model)
    return LoadedModel(source, model, tokenizer, device, dtype, info, choose_forward(model, "plain"))


def _prompt(ids: list[int], context: int) -> Any:
    from llmtui.core.prompt import Prompt

    return Prompt(text="", ids=tuple(ids), templated=True, dropped_turns=0, context_length=context)


def _compiled_generate(generate: Any, device: Any, repeat: int) -> tuple[float, float]:
    """transformers' fastest decode: generate with a static cache and its forward compiled. (On the CPU
    transformers compiles only when told to, and CUDA graphs, reduce-overhead's, are for GPUs.)
    Returns (tokens/s, seconds the first call took: mostly compiling)."""
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True, mode="reduce-overhead" if device.type == "cuda" else "default")
    config._compile_all_devices = True
    options = {"cache_implementation": "static", "compile_config": config}
    start = time.perf_counter()
    generate(**options)
    compile_s = time.perf_counter() - start
    return 1 / min(generate(**options) for _ in range(repeat)), compile_s
