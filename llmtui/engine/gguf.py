"""GGUF files -> safetensors checkpoints, converted once and cached.

A GGUF file is dequantised into a safetensors checkpoint under the platform cache dir, so only the first
start pays for it (~30 s here); later starts load in well under a second. The conversion builds in a
temporary directory and renames it into place, so an interrupted one is never used. The cache is private
like llmtui's other dirs: its directories 0700, the checkpoint's files 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from llmtui.core.errors import LlmtuiError, ModelLoadError, first_line
from llmtui.store.files import DIR_MODE, FILE_MODE, cache_dir, private_dir

if TYPE_CHECKING:
    from llmtui.engine.loader import Progress

# Written last into a finished conversion: a directory without it is never used.
_MARKER = "llmtui-converted.json"


def _target(gguf: Path) -> Path:
    stat = gguf.stat()
    # The path, size and mtime name the file's version: a replaced file is converted again.
    key = hashlib.sha256(f"{gguf}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{gguf.stem}-{key}"


def converted_if_present(gguf: Path) -> Path | None:
    """The GGUF file's finished conversion when there is one, else None: converting needs torch, which a
    client (the workstation's UI process) never imports."""
    try:
        target = _target(gguf)
    except OSError:
        return None
    return target if (target / _MARKER).is_file() else None


def converted(gguf: Path, progress: Progress | None = None) -> Path:
    """The safetensors checkpoint of a GGUF file: from the cache, or converted now (once)."""
    target = _target(gguf)
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
    from llmtui.engine.specs import from_pretrained

    quiet_libraries()
    private_dir(target.parent, cache_dir())
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))  # 0700 from the start
    try:
        try:
            # A GGUF file holds no Python, so there is nothing to trust.
            loaded = {"trust_remote_code": False, "gguf_file": gguf.name}
            tokenizer = from_pretrained(AutoTokenizer, gguf.parent, str(gguf), **loaded)
            model = from_pretrained(AutoModelForCausalLM, gguf.parent, str(gguf), dtype=torch.float32, **loaded)
        except LlmtuiError:
            raise
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
        _make_private(tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / _MARKER).is_file():  # not a concurrent conversion that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _make_private(root: Path) -> None:
    """The files transformers wrote get the umask's mode (0644); llmtui created them, so they become 0600
    (and any directory 0700) before the checkpoint is renamed into place."""
    for directory, subdirs, files in os.walk(root):
        for name in subdirs:
            os.chmod(os.path.join(directory, name), DIR_MODE)
        for name in files:
            os.chmod(os.path.join(directory, name), FILE_MODE)
