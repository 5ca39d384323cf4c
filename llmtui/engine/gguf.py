"""GGUF files -> safetensors checkpoints, converted once and cached.

A GGUF file is dequantised into a safetensors checkpoint under the platform cache dir, so only the first
start pays for it (~30 s here); later starts load in well under a second. The conversion builds in a
temporary directory and renames it into place, so an interrupted one is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from llmtui.core.errors import ModelLoadError, first_line

if TYPE_CHECKING:
    from llmtui.engine.loader import Progress

# Written last into a finished conversion: a directory without it is never used.
_MARKER = "llmtui-converted.json"


def cache_dir() -> Path:
    """Where converted checkpoints live (``LLMTUI_CACHE_DIR`` overrides the platform cache dir)."""
    override = os.environ.get("LLMTUI_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("llmtui"))


def converted(gguf: Path, progress: Progress | None = None) -> Path:
    """The safetensors checkpoint of a GGUF file: from the cache, or converted now (once)."""
    stat = gguf.stat()
    # The path, size and mtime name the file's version: a replaced file is converted again.
    key = hashlib.sha256(f"{gguf}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"{gguf.stem}-{key}"
    if (target / _MARKER).is_file():
        return target
    if progress is not None:
        progress(0.05, "converting GGUF to safetensors (first start only)")
    _convert(gguf, target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF file into ``target`` atomically: build in a temporary sibling, then rename."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmtui.engine import quiet_libraries

    quiet_libraries()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot read the GGUF file {gguf}: {first_line(exc)}") from None
        # transformers refuses to save a GGUF-loaded model until the quantizer marker is cleared;
        # the weights are already dequantised to float32, so nothing is lost.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps({"source": str(gguf)}))
        try:
            tmp.rename(target)
        except OSError:
            if not (target / _MARKER).is_file():  # not a concurrent conversion that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
