"""Describing models: what `llmtui show` says of one (ModelInfo), which ones `llmtui list` finds, and the
fingerprint that ties a saved conversation to the weights that wrote it. No weights are loaded here."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

from llmtui.core.errors import ModelLoadError, ModelNotFound, first_line
from llmtui.core.info import ModelEntry, ModelInfo
from llmtui.engine import quiet_libraries
from llmtui.engine.specs import (
    DEFAULT_SPEC,
    ModelSource,
    checkpoint_dir,
    default_gguf,
    from_pretrained,
    load_transformers_tokenizer,
    resolve,
)

_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")
# Where configs keep the context length, most common first.
_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def describe(spec: str, *, trust_remote_code: bool = False) -> ModelInfo:
    """What `llmtui show` prints, read from config, tokenizer and weight headers (no weights loaded)."""
    source = resolve(spec)  # before importing transformers: a missing model is said at once
    from transformers import AutoConfig

    quiet_libraries()
    path = checkpoint_dir(source)
    try:
        config = from_pretrained(AutoConfig, path, spec, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the config of {spec}: {first_line(exc)}") from None
    tokenizer = load_transformers_tokenizer(path, spec, trust_remote_code=trust_remote_code)
    return model_info(source, path, config, tokenizer)


def model_info(source: ModelSource, path: Path, config: Any, tokenizer: Any, model: Any = None) -> ModelInfo:
    """A model's ModelInfo from its config and tokenizer; the parameters are counted from ``model`` when it
    is loaded, else from the safetensors headers."""
    from llmtui.engine.forward import unsupported

    if model is not None:
        params: int | None = sum(p.numel() for p in model.parameters())
    else:
        params = count_parameters(path)
    special = {n: str(getattr(tokenizer, n)) for n in _SPECIAL_TOKENS if getattr(tokenizer, n, None) is not None}
    special_ids = {n: int(tokenizer.convert_tokens_to_ids(t)) for n, t in special.items()}
    context = next((getattr(config, a) for a in _CONTEXT_ATTRS if isinstance(getattr(config, a, None), int)), None)
    weights = weight_files(path)
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
        fingerprint=fingerprint(weights),
        forward=unsupported(config) or "plain",
    )


def weight_files(path: Path) -> list[Path]:
    """A checkpoint's weight files: its safetensors, else its PyTorch .bin files."""
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    return [f for f in files if f.is_file()]


def count_parameters(path: Path) -> int | None:
    """The parameters in a checkpoint's safetensors files, from their headers; None without safetensors."""
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


def fingerprint(files: list[Path]) -> str:
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
                entries.append(ModelEntry(str(c), arch, sum(f.stat().st_size for f in weight_files(c)), "directory"))
    return entries


def _hf_cache_entries() -> list[ModelEntry]:
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir()
    except Exception:  # an unreadable or foreign cache lists nothing rather than failing `list`
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
    from llmtui.store.files import StoreError, parse_json, read_regular

    file = Path(path) / "config.json"
    try:
        config = parse_json(read_regular(file, 16 << 20), str(file))  # a config.json is a few kilobytes
    except (OSError, StoreError):
        return None
    if not isinstance(config, dict):
        return None
    archs = config.get("architectures") or [config.get("model_type", "unknown")]
    return str(archs[0]) if isinstance(archs, list) and archs else None
