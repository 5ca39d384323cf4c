"""CI runs the benchmark suite only in quick mode, to check that every benchmark still runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_quick_bench_runs_every_suite(tiny_long_model_dir, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--model", str(tiny_long_model_dir), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parent.parent,
        env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    figures = {f["name"]: f for f in result["figures"]}
    names = list(figures)
    for expected in (
        "engine decode, transformers forward",
        "engine decode, plain forward (exact)",
        "engine decode, plain forward, int8 weights",
        "start to first paint",
        "vocabulary search, 150,000 tokens",
        "render one token at token 10,000",
    ):
        assert expected in names
    assert all(f["baseline"] > 0 and f["value"] > 0 for f in result["figures"] if f["baseline_name"])
    # The exact mode's promise, checked on every CI run: the same greedy tokens as transformers.
    exact = figures["engine decode, plain forward (exact)"]["extra"]
    assert exact["greedy_agreement"] == 1.0 and exact["max_abs_dp"] < 1e-3
    assert figures["engine decode, plain forward, int8 weights"]["extra"]["max_abs_dp"] > 0
