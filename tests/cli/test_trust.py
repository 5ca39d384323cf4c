"""A model's own Python runs only with --trust-remote-code: without it, one line, never transformers' prompt."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import builders
import pytest

import llmtui


@pytest.fixture(scope="module")
def custom_code(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("custom-code")
    marker = root / "ran"
    return builders.custom_code_model(tiny_model_dir, root / "model", marker), marker


def test_without_the_flag_a_model_that_needs_its_code_is_refused_in_one_line(custom_code):
    model, marker = custom_code
    # stdin closed: transformers' "[y/N]" prompt, if it were asked, would read EOF and say so on stdout.
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "llmtui", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args in (["show", str(model)], ["run", str(model), "x"])
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1
        assert b"[y/N]" not in out + err and b"Traceback" not in err
        assert err.decode().splitlines() == [
            f"llmtui: error: {model} needs to run its own Python code (auto_map in its config); "
            "pass --trust-remote-code if you trust its authors"
        ]
    assert not marker.exists()  # none of the model's code ran


def test_with_the_flag_every_load_passes_it(custom_code):
    """Config, tokenizer and model all get the flag: none of them falls back to asking (which, with pytest
    holding stdin, would fail the load)."""
    from llmtui.engine.catalog import describe
    from llmtui.engine.loader import load

    model, marker = custom_code
    assert describe(str(model), trust_remote_code=True).model_type == "tinycustom"
    loaded = load(str(model), device="cpu", trust_remote_code=True)
    assert type(loaded.model).__name__ == "TinyForCausalLM" and type(loaded.tokenizer).__name__ == "TinyTokenizer"
    assert {line.rpartition(".")[2] for line in marker.read_text().split()} == {
        "configuration_tiny",
        "modeling_tiny",
        "tokenization_tiny",
    }


def test_every_transformers_load_goes_through_the_one_that_passes_the_flag():
    package = Path(llmtui.__file__).parent
    calls = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\.from_pretrained\(", line)
    ]
    assert calls == ["engine/specs.py:" + str(_line_of_the_one_call())]


def _line_of_the_one_call() -> int:
    from llmtui.engine import specs

    lines = Path(specs.__file__).read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if ".from_pretrained(" in line)
