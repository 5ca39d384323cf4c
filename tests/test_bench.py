"""CI runs the benchmark suite only in quick mode, to check that every benchmark still runs and that what
the table claims comes from the code: the marks, the exactness, the baselines it compares against."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import Figure, Target, below, note, ratio_at_least

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.xdist_group("bench")  # one worker runs the quick bench, once, for all of these


@pytest.fixture(scope="module")
def quick_bench(tiny_long_model_dir, tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--model", str(tiny_long_model_dir), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text()), proc.stdout


def test_quick_bench_runs_every_suite(quick_bench):
    result, _ = quick_bench
    figures = {f["name"]: f for f in result["figures"]}
    for expected in (
        "engine decode, transformers forward",
        "engine decode, plain forward (exact)",
        "engine decode, plain forward, int8 weights",
        "engine decode (plain) vs memory-bandwidth bound",
        "engine decode (plain) vs memory-bandwidth bound, read",
        "start to first paint",
        "keypress to screen while streaming, p95",
        "render one token at token 10,000",
        "decode rate inside the app",
        "UI process CPU while a reply streams",
        "vocabulary search, 150,000 tokens",
        "history: list 500 conversations",
        "decode through the workstation's client (completions over token ids)",
        "time to first token through llmtui serve",
        "synthetic qwen2-0.5b (cut down), float32: decode, 8 tokens forced",
        "synthetic qwen2-0.5b (cut down), float32: decode after the first token vs the bandwidth bound, read",
        "synthetic qwen2-0.5b (cut down), float32: decode after the first token vs the bandwidth bound, copy",
    ):
        assert expected in figures
    assert any(name.startswith("time to first token") for name in figures)
    assert any(name.startswith("inspector: longest UI stall") for name in figures)
    assert any(name.startswith("open a ") and name.endswith("conversation: first screen") for name in figures)
    assert all(f["baseline"] > 0 and f["value"] > 0 for f in result["figures"] if f["baseline_name"])
    keys = {"name", "value", "unit", "baseline_name", "baseline", "higher_is_better", "target", "extra", "ratio", "met"}
    assert all(set(f) == keys for f in result["figures"])


def test_exactness_limit_passes_the_plain_pass_and_fails_int8(quick_bench):
    # The exact mode's promise, checked on every CI run: the same greedy tokens as transformers, within a
    # limit that int8 weights (which do change the numbers) exceed.
    figures = {f["name"]: f for f in quick_bench[0]["figures"]}
    exact = figures["engine decode, plain forward (exact)"]["extra"]
    assert exact["greedy_agreement"] == 1.0 and exact["max_abs_dp"] < exact["exact_limit"]
    int8 = figures["engine decode, plain forward, int8 weights"]["extra"]
    assert int8["max_abs_dp"] > int8["exact_limit"]
    assert next(f for f in quick_bench[0]["figures"] if f["name"].startswith("  plain: greedy"))["met"] is True


def test_free_running_greedy_replies_are_transformers(quick_bench):
    (identity,) = [f for f in quick_bench[0]["figures"] if f["name"].startswith("greedy replies as transformers'")]
    assert identity["extra"]["engine_forward"] == "plain"
    assert identity["value"] == identity["extra"]["prompts"] == 3 and identity["met"] is True
    assert identity["extra"]["tokens"] > 3  # every prompt's reply compared, not only its first token


def test_the_app_is_compared_with_the_engine_alone_on_the_same_tokens(quick_bench):
    figures = {f["name"]: f for f in quick_bench[0]["figures"]}
    decode = figures["decode rate inside the app"]
    assert decode["baseline_name"] == "engine alone, its own process"
    assert decode["extra"]["same_tokens"] is True
    assert decode["extra"]["start_backend"] == "llmtui.backends.process:start_engine_process"
    cpu = figures["UI process CPU while a reply streams"]
    assert 0 < cpu["extra"]["event_loop_thread_cores"] <= cpu["value"]


def test_the_server_is_compared_with_the_engine_in_process_on_the_same_tokens(quick_bench):
    figures = {f["name"]: f for f in quick_bench[0]["figures"]}
    streamed = next(f for name, f in figures.items() if name.startswith("decode streamed through llmtui serve"))
    assert streamed["baseline_name"] == "the same engine in-process, as llmtui run decodes"
    assert streamed["extra"]["same_greedy_tokens"] is True


def test_every_mark_in_the_table_is_its_figures_comparison(quick_bench):
    result, table = quick_bench
    rows = table.splitlines()
    marked = 0
    for f in result["figures"]:
        name = f["name"]
        (line,) = [r for r in rows if r.startswith(name) and r[len(name) :].startswith("  ")]
        mark = {True: " ✓", False: " ✗", None: ""}[f["met"]]
        assert line.endswith(f"{f['target']}{mark}"), line
        marked += f["met"] is not None
    assert table.count("✓") + table.count("✗") == marked  # no mark without a comparison behind it


def test_targets_compare_in_code():
    fast = Figure("f", 0.96, "x", "base", 1.0, target=ratio_at_least(0.95))
    slow = Figure("f", 0.94, "x", "base", 1.0, target=ratio_at_least(0.95))
    assert fast.met is True and slow.met is False
    assert Figure("p", 49.0, "ms", "", 0.0, target=below(50, "ms")).met is True
    assert Figure("p", 50.0, "ms", "", 0.0, target=below(50, "ms")).met is False
    assert Figure("n", 1.0, "", "", 0.0, target=note("opt-in")).met is None
    assert Figure("n", 1.0, "", "", 0.0).to_dict()["target"] == ""
    assert Target("t", lambda f: f.value > 2).met(Figure("v", 3.0, "", "", 0.0)) is True


def test_the_synthetic_bound_is_the_bytes_a_step_reads(quick_bench):
    figures = [f for f in quick_bench[0]["figures"] if f["name"].startswith("synthetic ")]
    speed, *bounds = figures
    assert speed["baseline_name"] == "transformers generate (greedy, eager)"
    extra = speed["extra"]
    shape = extra["shape"]
    assert shape["num_hidden_layers"] == 2 and shape["hidden_size"] == 896  # the real width, fewer layers
    for bound, kind in zip(bounds, ("read", "copy"), strict=True):
        step_bytes = (extra["weight_read_MB"] + extra["kv_read_MB"]) * 1e6
        assert bound["baseline"] == pytest.approx(extra["bandwidth_GBps"][kind] * 1e9 / step_bytes)


def _meta(name: str, dtype: str = "bfloat16"):
    import torch

    from bench import synthetic

    return synthetic._meta_model(synthetic.SHAPES[name], getattr(torch, dtype))


def test_synthetic_shapes_read_every_weight_but_an_untied_input_embedding():
    from bench.common import read_bytes

    tied, untied = _meta("qwen2-0.5b"), _meta("llama-3-8b")
    assert read_bytes(tied) == 2 * sum(p.numel() for p in tied.parameters())  # bf16; the head is the embedding
    embedding = untied.get_input_embeddings().weight.numel()
    assert read_bytes(untied) == 2 * (sum(p.numel() for p in untied.parameters()) - embedding)
    assert 7.4e9 < sum(p.numel() for p in untied.parameters()) < 8.1e9  # Llama 3 8B's parameter count


def test_a_shape_that_does_not_fit_is_refused_in_one_line_before_allocating(monkeypatch):
    import torch

    from bench import synthetic

    model = _meta("llama-3-8b", "float32")
    monkeypatch.setattr(synthetic, "_available_memory", lambda: 24 << 30)
    args = ("llama-3-8b", model, synthetic.SHAPES["llama-3-8b"], torch.float32, torch.device("cpu"), 64, False)
    with pytest.raises(SystemExit) as refused:
        synthetic._check_fits(*args)
    (line,) = str(refused.value).splitlines()
    assert "needs about" in line and "try --dtype bfloat16" in line
    monkeypatch.setattr(synthetic, "_available_memory", lambda: 1 << 40)
    synthetic._check_fits(*args)  # a terabyte would do
