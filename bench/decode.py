"""The engine's decode rate against bare `model.generate`, its exactness, and the memory-bandwidth bound."""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import Figure, Target, bandwidths, load, note, ratio_at_least, read_bytes, sync


def run(args: argparse.Namespace) -> list[Figure]:
    """Decode figures for every forward pass this model runs (transformers, plain, int8)."""
    import torch

    from llmtui.core.sampling import SamplingParams
    from llmtui.engine.generation import Engine

    figures: list[Figure] = []
    # The baseline runs on weights exactly as transformers loads them; the plain forward pass re-lays its own.
    reference = load(args.model, args.device, args.dtype, forward="transformers")
    loaded = load(args.model, args.device, args.dtype)
    model = reference.model
    engines = {"transformers": Engine(reference)}
    if loaded.forward.name == "plain":
        engines["plain"] = Engine(loaded)
        if loaded.device.type == "cpu":
            engines["int8"] = Engine(load(args.model, args.device, args.dtype, quantize="int8"))
    engine = engines.get("plain", engines["transformers"])
    n = 8 if args.quick else 64
    prompt = engine.render([{"role": "user", "content": "Tell me a long story about a dragon who learns to code."}])
    ids = torch.tensor([prompt.ids], device=loaded.device)

    def bare() -> float:
        sync(loaded.device)
        start = time.perf_counter()
        out = model.generate(
            ids, do_sample=False, max_new_tokens=n, min_new_tokens=n, top_k=None, top_p=None, temperature=None
        )
        sync(loaded.device)
        return (out.shape[1] - ids.shape[1]) / (time.perf_counter() - start)

    # The engine stops at EOS; a stop string that never occurs does not change that, so compare rates.
    def ours(which: Engine) -> float:
        generation = which.generate(prompt, SamplingParams(max_new_tokens=n, top_candidates=10))
        start = time.perf_counter()
        count = sum(1 for _ in generation)
        sync(loaded.device)
        return count / (time.perf_counter() - start)

    with torch.inference_mode():
        bare(), [ours(e) for e in engines.values()]  # warm-up
        repeat = 1 if args.quick else 3
        rates_bare: list[float] = []
        rates: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(repeat):  # interleaved, so drift in the machine's speed hits all alike
            rates_bare.append(bare())
            for name, e in engines.items():
                rates[name].append(ours(e))
        continuation = model.generate(ids, do_sample=False, max_new_tokens=n, min_new_tokens=n)[0, ids.shape[1] :]
        reference_probs = _teacher_forced(engines["transformers"], prompt.ids, continuation)
    on_gpu = loaded.device.type == "cuda"
    targets = {
        "transformers": ratio_at_least(0.95, "≥ 0.95 (streaming overhead)"),
        "plain": ratio_at_least(1.3, "≥ 1.3 on GPU") if on_gpu else ratio_at_least(1.5, "≥ 1.5 on CPU"),
        "int8": note("opt-in"),
    }
    labels = {
        "transformers": "engine decode, transformers forward",
        "plain": "engine decode, plain forward (exact)",
        "int8": "engine decode, plain forward, int8 weights",
    }
    # The exact pass only reorders floating-point sums: in float32 that moves a probability by far less
    # than 1e-4 (int8 weights move it by more); 16-bit formats round every product to 3 significant digits.
    limit = 1e-4 if loaded.dtype == torch.float32 else 2e-2
    for name, e in engines.items():
        probs = reference_probs if name == "transformers" else _teacher_forced(e, prompt.ids, continuation)
        agree = sum(int(p.argmax() == r.argmax()) for p, r in zip(probs, reference_probs, strict=True))
        drift = max(float((p - r).abs().max()) for p, r in zip(probs, reference_probs, strict=True))
        extra = {"greedy_agreement": agree / len(probs), "max_abs_dp": drift, "exact_limit": limit}
        figures.append(
            Figure(
                labels[name],
                max(rates[name]),
                "tok/s",
                "bare model.generate (greedy)",
                max(rates_bare),
                target=targets[name],
                extra=extra,
            )
        )
        if name == "plain":
            exact = Target(
                f"all, largest |Δp| {drift:.2g} < {limit:g}",
                lambda f, drift=drift: f.value == 1.0 and drift < limit,
            )
        else:
            exact = note(f"reported: largest |Δp| {drift:.2g}")
        if name != "transformers":
            figures.append(
                Figure(
                    f"  {name}: greedy tokens as transformers', teacher-forced over {len(probs)} steps",
                    agree / len(probs),
                    "",
                    "",
                    0.0,
                    target=exact,
                    extra=extra,
                )
            )
    best_rate = max(rates.get("plain", rates["transformers"]))

    # The memory-bandwidth bound: every decode step reads every weight once. A copy reads and writes; a
    # sum only reads, as a decode step does, so the read bound is the one a step can approach. The read is
    # of the weights' size (at least 64 MB, past every cache; at most 1 GiB).
    weight_bytes = read_bytes(model)
    size = min(max(weight_bytes, 64 << 20), 1 << 30)
    measured = bandwidths(loaded.device, size, 3 if args.quick else 7)
    for kind in ("copy", "read"):
        bandwidth = measured[kind]
        figures.append(
            Figure(
                f"engine decode ({engine.forward.name}) vs memory-bandwidth bound"
                + (", read" if kind == "read" else ""),
                best_rate,
                "tok/s",
                f"{kind} bandwidth / weight bytes",
                bandwidth / weight_bytes,
                extra={
                    "bandwidth_GBps": bandwidth / 1e9,
                    "read_GBps": measured["read"] / 1e9,
                    "copy_GBps": measured["copy"] / 1e9,
                    "weight_MB": weight_bytes / 1e6,
                    "buffer_MB": size / 1e6,
                },
            )
        )
    return figures


def _teacher_forced(engine: Any, prompt: tuple[int, ...], continuation: Any) -> list[Any]:
    """The raw next-token distribution at every step of a fixed continuation, through this engine's pass."""
    forward = engine.forward.begin(len(prompt) + len(continuation) + 1)
    logits = forward.prefill(prompt)
    probs = []
    for token in continuation:
        probs.append(logits.float().softmax(-1).cpu())
        logits = forward.step(token)
    return probs
