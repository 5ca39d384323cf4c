"""Loading a model for chat: the device, the dtype, the weights, and the forward pass the decode loop calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmtui.core.choices import DTYPES, MODEL_CHOICES, check_choices
from llmtui.core.errors import LlmtuiError, ModelLoadError, OutOfMemory, UnsupportedModel, first_line
from llmtui.core.info import ModelInfo
from llmtui.engine import quiet_libraries
from llmtui.engine.catalog import model_info
from llmtui.engine.specs import ModelSource, checkpoint_dir, from_pretrained, load_transformers_tokenizer, resolve

# How a slow step reports: the fraction done, and what it is doing.
Progress = Callable[[float, str], None]


def _no_progress(fraction: float, what: str) -> None:
    pass


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


def choose_device(device: str = "auto") -> str:
    """The device to load on: CUDA when available, else the CPU; validates explicit choices."""
    import torch

    if not MODEL_CHOICES["device"].allows(device):
        raise ModelLoadError(f"unknown device {device!r}: use {MODEL_CHOICES['device'].words}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if not torch.cuda.is_available():
        raise ModelLoadError(f"device {device} was asked for, but no CUDA GPU is available here")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ModelLoadError(f"device {device} does not exist: {torch.cuda.device_count()} GPU(s) found")
    return device


def choose_dtype(dtype: str, device: str) -> Any:
    """bf16 on GPUs that support it (fp16 on older ones), fp32 on the CPU, unless overridden."""
    import torch

    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use {MODEL_CHOICES['dtype'].words}")
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
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
    check_choices(forward, quantize)  # before paying for the load, and for importing torch
    progress(0.0, "resolving model")
    source = resolve(spec)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from llmtui.engine.forward import choose_forward

    quiet_libraries()
    path = checkpoint_dir(source, progress)
    progress(0.5, "reading config")
    try:
        config = from_pretrained(AutoConfig, path, spec, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        raise ModelLoadError(f"cannot read the config of {spec}: {first_line(exc)}") from None
    except OSError as exc:
        raise ModelLoadError(f"{spec} is not a model directory: {first_line(exc)}") from None
    if getattr(config, "is_encoder_decoder", False):
        raise UnsupportedModel(
            f"{spec} is an encoder-decoder model ({config.model_type}); llmtui chats with "
            "decoder-only models, so use it with `llmtui tokenize` only"
        )
    target = choose_device(device)
    torch_dtype = choose_dtype(dtype, target)
    progress(0.6, "loading tokenizer")
    tokenizer = load_transformers_tokenizer(path, spec, trust_remote_code=trust_remote_code)
    progress(0.7, f"loading weights ({torch_dtype})".replace("torch.", ""))
    # accelerate spreads a model larger than one GPU over all of them; an explicit cuda:N pins it.
    device_map: Any = None
    if target == "cuda" and device == "auto":
        device_map = "auto"
    elif target.startswith("cuda"):
        device_map = {"": target}
    try:
        model = from_pretrained(
            AutoModelForCausalLM,
            path,
            spec,
            trust_remote_code=trust_remote_code,
            dtype=torch_dtype,
            device_map=device_map,
        )
    except LlmtuiError:
        raise
    except torch.OutOfMemoryError:
        raise OutOfMemory(f"{spec} does not fit in {target} memory; try a smaller model or dtype") from None
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc) or "does not recognize" in str(exc):
            raise UnsupportedModel(f"{spec} ({config.model_type}) is not a causal language model") from None
        raise ModelLoadError(f"cannot load {spec}: {first_line(exc)}") from None
    except Exception as exc:  # bad files surface as many types (SafetensorError, OSError, KeyError, ...)
        raise ModelLoadError(f"cannot load the weights of {spec}: {first_line(exc)}") from None
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
    info = model_info(source, path, config, tokenizer, model=model)
    return LoadedModel(source, model, tokenizer, embed_device, torch_dtype, info, decoder)
