"""The command line, driven as a user drives it: a real subprocess, real stdout/stderr and exit codes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import builders
import pytest


def llmtui(*args: str, input: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "llmtui", *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], err


@pytest.fixture(scope="module")
def bare_tokenizer_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizers")
    bpe = root / "bpe"
    bpe.mkdir()
    builders.byte_level_bpe().save(str(bpe / "tokenizer.json"))
    wp = root / "wordpiece"
    wp.mkdir()
    vocab = json.loads(builders.wordpiece().to_str())["model"]["vocab"]
    (wp / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n")
    return bpe, wp


def test_version():
    proc = llmtui("--version")
    assert proc.returncode == 0 and proc.stdout.decode().startswith("llmtui ")


def test_run_streams_text_and_json(tiny_model_dir):
    proc = llmtui("run", str(tiny_model_dir), "Hello", "--max-new-tokens", "8", "-v", "--quantize", "int8")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip()
    assert "new tokens 8" in proc.stderr.decode()
    assert "plain forward pass, int8 weights" in proc.stderr.decode()

    proc = llmtui(
        "run",
        str(tiny_model_dir),
        "-",
        "--json",
        "--max-new-tokens",
        "5",
        "--top-candidates",
        "3",
        "--temperature",
        "0.9",
        "--seed",
        "3",
        input=b"Hello from stdin",
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    tokens, stats = lines[:-1], lines[-1]
    assert len(tokens) == 5
    for i, t in enumerate(tokens):
        assert t["type"] == "token" and t["index"] == i
        assert {"token_id", "text", "prob", "sampled_prob", "rank", "entropy", "candidates"} <= set(t)
        assert len(t["candidates"]) == 3 and set(t["candidates"][0]) == {"token_id", "piece", "prob"}
    assert stats == {**stats, "type": "stats", "new_tokens": 5, "stop_reason": "max_tokens"}
    assert {"prompt_tokens", "ttft_s", "tokens_per_second"} <= set(stats)


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (["run", "no-such-org/no-model", "hi"], None, ["no-such-org/no-model", "cache"]),
        (["run", "./missing-dir", "hi"], None, ["does not exist"]),
        (["run", "default", ""], None, ["empty"]),
        (["run", "default", "-"], b"   \n", ["empty"]),
        (["run", "default", "hi", "--temperature", "-1"], None, ["temperature"]),
        (["run", "default", "hi", "--top-p", "2"], None, ["top_p"]),
        (["run", "default", "hi", "--seed", "18446744073709551616"], None, ["seed must be from"]),
        (["run", "default", "hi", "--max-new-tokens", "abc"], None, ["max-new-tokens"]),
        (["run", "default", "hi", "--quantize", "int4"], None, ["--quantize", "int4"]),
        (["run", "default", "hi", "--forward", "transformers", "--quantize", "int8"], None, ["int8", "plain"]),
        (["tokenize", "-"], b"\xff\xfe bad", ["UTF-8"]),
        (["tokenize", ""], None, ["empty"]),
        (["show", "/definitely/not/here"], None, ["does not exist"]),
        (["bogus-verb"], None, ["is not a command", "chat", "Hugging Face cache"]),
        (["--config", "x.toml", "./no-such-model"], None, ["is not a command", "does not exist"]),
    ],
)
def test_bad_input_is_one_line_without_traceback(args, stdin, words):
    assert_one_line_error(llmtui(*args, input=stdin), *words)


def test_tokenize_errors_on_models(tmp_path, tiny_model_dir):
    assert_one_line_error(llmtui("tokenize", "--model", str(tmp_path), "x"), "tokenizer")
    assert_one_line_error(llmtui("tokenize", "--model", str(tiny_model_dir), "--ids", "1 99999"), "out of range")
    assert_one_line_error(llmtui("tokenize", "--model", str(tiny_model_dir), "--ids", "1 x"), "whole numbers")


def test_tokenize_json_and_table(tiny_model_dir):
    proc = llmtui("tokenize", "--model", str(tiny_model_dir), "--json", "Hello 你好\n")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["count"] == len(out["tokens"]) and out["chars"] == 9 and out["bytes"] == 13
    assert set(out["tokens"][0]) == {"index", "token_id", "piece", "display", "start", "end", "special"}
    from transformers import AutoTokenizer

    assert [t["token_id"] for t in out["tokens"]] == AutoTokenizer.from_pretrained(tiny_model_dir)("Hello 你好\n")[
        "input_ids"
    ]

    table = llmtui("tokenize", "--model", str(tiny_model_dir), "a b").stdout.decode()
    assert "INDEX" in table and "PIECE" in table and "chars/token" in table


def test_tokenize_bare_tokenizer_dirs_and_compare(bare_tokenizer_dirs):
    bpe, wp = bare_tokenizer_dirs
    proc = llmtui("tokenize", "--model", str(bpe), "--compare", str(wp), "--json", "Hello world")
    assert proc.returncode == 0, proc.stderr
    both = json.loads(proc.stdout)
    assert [b["tokenizer"] for b in both] == [str(bpe), str(wp)]
    assert all(b["count"] > 0 for b in both)


def test_tokenize_ids(tiny_model_dir):
    proc = llmtui("tokenize", "--model", str(tiny_model_dir), "--ids", "--json", "1,2 3")
    assert proc.returncode == 0, proc.stderr
    assert [t["token_id"] for t in json.loads(proc.stdout)["tokens"]] == [1, 2, 3]


def test_list_and_show(tiny_model_dir):
    proc = llmtui("config", "set", "model_dirs", json.dumps([str(tiny_model_dir.parent)]))
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(llmtui("list", "--json").stdout)
    assert any(e["spec"] == str(tiny_model_dir) for e in listed)
    shown = json.loads(llmtui("show", str(tiny_model_dir), "--json").stdout)
    assert shown["architecture"] == "LlamaForCausalLM" and shown["context_length"] == 256
    text = llmtui("show", str(tiny_model_dir)).stdout.decode()
    assert "chat template" in text and "<|im_end|>" in text
    assert shown["forward"] == "plain" and "forward pass    plain" in text


def test_models_the_plain_pass_cannot_run(tmp_path):
    gemma = builders.tiny_llama(tmp_path / "gemma", architecture="gemma")
    assert "transformers: the gemma architecture" in llmtui("show", str(gemma)).stdout.decode()
    assert_one_line_error(
        llmtui("run", str(gemma), "Hello", "--forward", "plain"), "cannot run this model", "gemma architecture"
    )


def test_config_path_set_show(private_dirs):
    path = llmtui("config", "path").stdout.decode().strip()
    assert path == str(private_dirs / "config" / "settings.toml")
    assert llmtui("config", "set", "sampling.temperature", "0.4").returncode == 0
    assert_one_line_error(llmtui("config", "set", "sampling.top_p", "7"), "top_p")
    assert_one_line_error(llmtui("config", "set", "no.such", "1"), "unknown setting")
    assert llmtui("config", "set", "quantize", "int8").returncode == 0
    assert_one_line_error(llmtui("config", "set", "quantize", "int4"), "none or int8")
    assert_one_line_error(llmtui("config", "set", "forward", "fast"), "auto, plain or transformers")
    shown = llmtui("config", "show").stdout.decode()
    assert "temperature = 0.4" in shown
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


@pytest.mark.model
def test_run_default_model_json():
    proc = llmtui("run", "default", "What is the capital of France?", "--json", "--max-new-tokens", "20", timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    text = "".join(t["text"] for t in lines[:-1])
    assert "Paris" in text
    assert lines[-1]["stop_reason"] == "eos"


def test_history_actions_and_their_own_options(tmp_path):
    messages = {"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}]}
    imported = llmtui("history", "import", "-", input=json.dumps(messages).encode())
    assert imported.returncode == 0, imported.stderr
    cid = imported.stdout.decode().strip()
    listed = json.loads(llmtui("history", "list", "--json", "--search", "there").stdout)
    assert [s["id"] for s in listed] == [cid]
    assert "Hello!" in llmtui("history", "show", cid).stdout.decode()
    out = tmp_path / "export.json"
    assert llmtui("history", "export", cid, "--format", "openai", "-o", str(out)).returncode == 0
    assert json.loads(out.read_text())["messages"][-1]["content"] == "Hello!"
    assert "Hello!" in llmtui("history", "replay", cid, "--speed", "0").stdout.decode()
    assert llmtui("history", "rm", cid).returncode == 0
    assert llmtui("history", "list", "--json").stdout.strip() == b"[]"
    # A missing id is bad input (1, one line); another action's option is a malformed command line (2).
    for action in ("show", "export", "rm"):
        proc = llmtui("history", action)
        assert proc.returncode == 1
        assert_one_line_error(proc, f"usage: llmtui history {action} ID")
    proc = llmtui("history", "list", "--format", "json")
    assert proc.returncode == 2
    assert_one_line_error(proc, "unrecognized arguments: --format")


def test_config_usage_errors():
    proc = llmtui("config", "set", "sampling.temperature")
    assert proc.returncode == 1
    assert_one_line_error(proc, "usage: llmtui config set KEY VALUE")
    proc = llmtui("config", "frobnicate")
    assert proc.returncode == 2
    assert_one_line_error(proc, "invalid choice")


def test_score_prints_every_token_and_the_perplexity(tiny_model_dir):
    text = "The capital of France is Paris. " * 100  # past the tiny model's context: windows, and a note
    proc = llmtui("score", str(tiny_model_dir), "-", "--json", "--top", "3", "--stride", "100", input=text.encode())
    assert proc.returncode == 0, proc.stderr.decode()
    *tokens, stats = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [t["index"] for t in tokens] == list(range(1, len(tokens) + 1))
    assert all(t["type"] == "token" and len(t["candidates"]) == 3 for t in tokens)
    nll = [-math.log(t["prob"]) for t in tokens]
    assert stats["type"] == "stats" and stats["tokens"] == len(tokens) and stats["windows"] > 1
    assert math.isclose(stats["perplexity"], math.exp(sum(nll) / len(nll)), rel_tol=1e-9)
    assert "windows" in proc.stderr.decode()
    table = llmtui("score", str(tiny_model_dir), "Paris is lovely")
    assert table.returncode == 0 and "perplexity" in table.stdout.decode().splitlines()[-1]
    assert_one_line_error(llmtui("score", str(tiny_model_dir), "x y", "--top", "21"), "--top")


def test_embed_and_lens_print_json_for_scripts(tiny_model_dir):
    texts = ["I sat on the river bank.", "I put money in the bank."]
    proc = llmtui("embed", str(tiny_model_dir), *texts, "--word", "bank", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["word"] == "bank" and result["dim"] == 64 and len(result["similarity"]) == 2
    near = json.loads(llmtui("embed", str(tiny_model_dir), "--neighbors", "id:42", "-k", "3", "--json").stdout)
    assert near["token_id"] == 42 and len(near["input"]) == 3
    proc = llmtui("lens", str(tiny_model_dir), "The river bank", "--position", "0", "--position", "-1", "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    steps = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [s["type"] for s in steps] == ["lens", "lens"] and steps[0]["index"] == 0
    assert len(steps[1]["layers"]) == 3  # the embeddings, then 2 blocks
    assert_one_line_error(llmtui("embed", str(tiny_model_dir)), "--neighbors")
