from __future__ import annotations

import json

import pytest

from llmtui.core.errors import ModelLoadError, ModelNotFound, UnsupportedModel
from llmtui.engine import catalog, loader, specs


def test_unknown_hub_id_names_the_id_and_the_cache(tmp_path):
    with pytest.raises(ModelNotFound, match="someone/nothing-here"):
        specs.resolve("someone/nothing-here")


def test_missing_path_is_reported():
    with pytest.raises(ModelNotFound, match="does not exist"):
        specs.resolve("./no/such/dir")


def test_non_gguf_file_is_refused(tmp_path):
    f = tmp_path / "weights.txt"
    f.write_text("x")
    with pytest.raises(ModelNotFound, match=r"not a \.gguf"):
        specs.resolve(str(f))


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError):
        loader.load(str(tmp_path), device="cpu")


def test_corrupt_weights_are_a_load_error(tmp_path, tiny_model_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"\x00not a safetensors file")
    with pytest.raises(ModelLoadError):
        loader.load(str(broken), device="cpu")


def test_encoder_decoder_models_are_refused_clearly(tmp_path):
    from transformers import T5Config

    T5Config(d_model=32, num_layers=1, num_heads=2, d_ff=64, vocab_size=100).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModel, match="encoder-decoder"):
        loader.load(str(tmp_path), device="cpu")


def test_unknown_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-arch"}))
    with pytest.raises((UnsupportedModel, ModelLoadError)):
        loader.load(str(tmp_path), device="cpu")


def test_cuda_asked_for_without_a_gpu(tiny_model_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        loader.load(str(tiny_model_dir), device="cuda")


def test_bad_device_and_dtype_names():
    with pytest.raises(ModelLoadError, match="unknown device"):
        loader.choose_device("tpu")
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        loader.choose_dtype("int3", "cpu")


def test_cpu_defaults_to_float32(tiny_loaded):
    import torch

    assert tiny_loaded.dtype == torch.float32 and str(tiny_loaded.device) == "cpu"


def test_describe_reads_headers_without_weights(tiny_model_dir, tiny_loaded):
    info = catalog.describe(str(tiny_model_dir))
    assert info.architecture == "LlamaForCausalLM"
    assert info.parameters == tiny_loaded.info.parameters
    assert info.context_length == 256
    assert info.special_tokens["eos_token"] == "<|im_end|>"
    assert info.chat_template and info.fingerprint.startswith("sha256:")


def test_hub_ids_resolve_from_the_local_cache(tmp_path, monkeypatch, tiny_model_dir):
    """A model laid out as the HF cache lays it out is found by its id, offline."""
    import shutil

    hub = tmp_path / "hf" / "hub"
    snapshot = hub / "models--acme--tiny" / "snapshots" / "abc123"
    shutil.copytree(tiny_model_dir, snapshot)
    (hub / "models--acme--tiny" / "refs").mkdir(parents=True)
    (hub / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    source = specs.resolve("acme/tiny")
    assert source.kind == "hub" and source.path == snapshot
    listed = [e.spec for e in catalog.list_models()]
    assert "acme/tiny" in listed


def test_model_dirs_are_listed(tiny_model_dir):
    entries = catalog.list_models([str(tiny_model_dir.parent)])
    assert any(e.spec == str(tiny_model_dir) and e.architecture == "LlamaForCausalLM" for e in entries)


def test_gguf_conversion_is_atomic_and_cached(tmp_path, monkeypatch):
    """An interrupted conversion leaves nothing that a later start would use."""
    monkeypatch.setenv("LLMTUI_CACHE_DIR", str(tmp_path / "cache"))
    source = specs.resolve("default")

    def boom(*a, **k):
        raise KeyboardInterrupt

    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    with pytest.raises(KeyboardInterrupt):
        specs.checkpoint_dir(source)
    leftovers = list((tmp_path / "cache" / "models").iterdir())
    assert leftovers == []  # the temporary directory was removed, no target was created


@pytest.mark.model
def test_default_model_loads_from_the_conversion_cache(default_loaded):
    assert default_loaded.info.architecture == "LlamaForCausalLM"
    assert default_loaded.info.vocab_size == 49152
    assert default_loaded.info.context_length == 8192
    assert "<|im_start|>" in default_loaded.info.chat_template
    assert (specs.checkpoint_dir(specs.resolve("default")) / "model.safetensors").is_file()


def test_resolving_and_reading_tokenizer_json_never_import_torch(tiny_model_dir):
    """The UI process resolves specs and reads tokenizers, and must never import torch or transformers."""
    import subprocess
    import sys

    code = (
        "import sys; from llmtui.engine import specs; "
        "assert specs.resolve(sys.argv[1]).kind == 'directory'; "
        "assert specs.load_tokenizer(sys.argv[1]).get_vocab_size() > 0; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code, str(tiny_model_dir)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["[]"]
