"""The forward pass the decode loop calls: a prompt once, then one token at a time.

Two implementations behind one small interface (`Forward.begin` -> `Pass`):

- `TransformersForward` calls the transformers model with its `DynamicCache`. It runs any architecture.
- `PlainForward` is a plain, nanoGPT-style decode step for the Llama family (Llama, Mistral, Qwen2,
  SmolLM): a dozen tensor operations per layer instead of transformers' module tree, fused q/k/v and
  gate/up matrices, and a KV cache allocated once per reply and written in place (`DynamicCache`
  concatenates, copying the whole cache at every step). On a CPU it also stores each matrix the way a
  one-row product streams it (input-major), which matters more than anything else there: the weights are
  read once per token and that layout reads them in order. The prompt itself still goes through the
  transformers model (whose weights become views of the same storage, so nothing is held twice).

Both compute in the model's own dtype; `PlainForward` changes only the order of floating-point sums, so
greedy output is the same as transformers' (tests and the benchmark check it). `quantize="int8"` is the
opt-in that changes numerics: each step reads int8 weights with one scale per output row, a quarter of the
bytes, while the prompt still runs at full precision (so int8 holds both copies: 1.25x the memory).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from llmtui.core.choices import check_choices
from llmtui.core.errors import InvalidValue

# Architectures whose decoder layer is exactly: RMSNorm, attention with RoPE (optionally q/k/v biases),
# residual, RMSNorm, SwiGLU MLP, residual. Others (Gemma's scaled norms, Qwen3's q/k norms, Phi's
# parallel blocks...) run through transformers.
PLAIN_ARCHITECTURES = ("llama", "mistral", "qwen2")
# RoPE variants whose frequencies depend on the sequence length at run time.
DYNAMIC_ROPE = ("dynamic", "longrope")


class Pass(Protocol):
    """One reply's forward state: its KV cache and position."""

    def prefill(self, ids: Sequence[int]) -> torch.Tensor:
        """Run the prompt; return the logits for the next token (1-D, over the vocabulary)."""
        ...

    def step(self, token: torch.Tensor) -> torch.Tensor:
        """Append one token (a 0-d or 1-element tensor); return the logits for the next token."""
        ...


class Forward(Protocol):
    name: str  # "plain" or "transformers"
    quantize: str  # "none" or "int8"
    note: str  # why this one, or what it does differently, in a few words (for `/info` and the benchmark)

    def begin(self, capacity: int) -> Pass:
        """A fresh pass for a reply of at most ``capacity`` tokens, prompt included."""
        ...


def choose_forward(model: Any, kind: str = "auto", quantize: str = "none") -> Forward:
    """The forward pass for a loaded model: ``kind`` "auto" takes the plain one wherever it runs.

    Building a `PlainForward` re-lays the model's weights in place; the transformers model keeps working
    on them. InvalidValue when the asked-for combination cannot run this model.
    """
    check_choices(kind, quantize)
    if quantize == "int8" and model.get_input_embeddings().weight.device.type != "cpu":
        raise InvalidValue("int8 weights are for the CPU; on a GPU, bfloat16 (the default there) is the fast choice")
    if kind == "transformers":
        return TransformersForward(model, "asked for")
    reason = unsupported(model.config) or PlainForward.unsupported(model)
    if reason is None:
        return PlainForward(model, quantize)
    if kind == "plain" or quantize != "none":
        raise InvalidValue(
            f"{'int8 weights need' if quantize != 'none' else 'asked for'} the plain forward pass, "
            f"which cannot run this model: {reason}"
        )
    return TransformersForward(model, reason)


def unsupported(config: Any) -> str | None:
    """Why a model with this config cannot use the plain forward pass, or None when it can."""
    kind = getattr(config, "model_type", "")
    if kind not in PLAIN_ARCHITECTURES:
        return f"the {kind or 'unknown'} architecture runs through transformers"
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) in DYNAMIC_ROPE:
        return "its rotary embedding changes with the sequence length"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"its activation is {config.hidden_act}, not SwiGLU"
    window = getattr(config, "sliding_window", None)
    if window and getattr(config, "use_sliding_window", True) and window < config.max_position_embeddings:
        return "it uses sliding-window attention"
    if getattr(config, "mlp_bias", False):
        return "its MLP has biases"
    return None


class TransformersForward:
    """The transformers model's own forward with a DynamicCache: slower, runs anything."""

    name = "transformers"
    quantize = "none"

    def __init__(self, model: Any, note: str = "") -> None:
        self.model = model
        self.note = note
        self.device = model.get_input_embeddings().weight.device

    def begin(self, capacity: int) -> Pass:
        return _TransformersPass(self)


class _TransformersPass:
    def __init__(self, forward: TransformersForward) -> None:
        from transformers import DynamicCache

        self.forward = forward
        self.cache = DynamicCache(config=forward.model.config)

    @torch.inference_mode()
    def prefill(self, ids: Sequence[int]) -> torch.Tensor:
        f = self.forward
        input_ids = torch.tensor([list(ids)], device=f.device)
        out = f.model(input_ids=input_ids, past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1]

    @torch.inference_mode()
    def step(self, token: torch.Tensor) -> torch.Tensor:
        out = self.forward.model(input_ids=token.view(1, 1), past_key_values=self.cache, use_cache=True)
        return out.logits[0, -1]


@dataclass
class _Matrix:
    """A linear layer as the decode step uses it: ``x @ weight + bias``, weight shaped (in, out).

    ``blocks`` views the weight as one column block per CPU thread: MKL runs a one-row product on one
    thread, which cannot saturate memory bandwidth, while a batched product runs each block on its own.
    With ``scale`` set the weight is int8 (out, in) and the product is int8 weights x bf16 activations.
    """

    weight: torch.Tensor
    bias: torch.Tensor | None = None
    blocks: torch.Tensor | None = None
    scale: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ weight + bias + residual`` for one row x of shape (1, in)."""
        if self.scale is not None:
            y = torch._weight_int8pack_mm(x.to(self.scale.dtype), self.weight, self.scale).to(x.dtype)
        elif self.blocks is not None:
            n, _, width = self.blocks.shape
            xs = x.expand(n, 1, x.shape[-1])
            if residual is not None and self.bias is None:
                return torch.baddbmm(residual.view(n, 1, width), xs, self.blocks).view(1, -1)
            y = torch.bmm(xs, self.blocks).view(1, -1)
        elif residual is not None and self.bias is None:
            return torch.addmm(residual, x, self.weight)
        else:
            y = x @ self.weight
        if self.bias is not None:
            y = y + self.bias
        return y if residual is None else y + residual


@dataclass
class _Layer:
    attn_norm: torch.Tensor
    qkv: _Matrix
    out: _Matrix
    mlp_norm: torch.Tensor
    gate_up: _Matrix
    down: _Matrix


class PlainForward:
    """A Llama-family decode step in plain torch (see the module docstring)."""

    name = "plain"

    @staticmethod
    def unsupported(model: Any) -> str | None:
        """What in this loaded model (beyond its config) the plain forward pass cannot run, or None."""
        if getattr(getattr(model, "model", None), "rotary_emb", None) is None:
            return "its layers are not laid out as transformers' Llama"
        if len({p.device for p in model.parameters()}) != 1:
            return "its layers are spread over several devices"
        if any(not p.dtype.is_floating_point for p in model.parameters()):
            return "its weights are quantised by another library"
        return None

    def __init__(self, model: Any, quantize: str = "none", *, input_major: bool | None = None) -> None:
        config = model.config
        inner = model.model
        self.prompt = TransformersForward(model)  # reads the prompt; its cache then seeds the reply's
        self.device = self.prompt.device
        self.dtype = model.get_input_embeddings().weight.dtype
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.inv_freq = inner.rotary_emb.inv_freq.float()
        self.rope_scale = float(inner.rotary_emb.attention_scaling)
        self.quantize = quantize
        self.note = "int8 weights" if quantize == "int8" else "exact"
        # On a CPU a one-row product streams an input-major matrix in order; GPUs' GEMV kernels prefer the
        # transformers layout, which `x @ W.t()` uses without a copy. (Tests run both layouts on the CPU.)
        self.input_major = self.device.type == "cpu" if input_major is None else input_major
        with torch.no_grad():
            self.layers = [self._layer(layer) for layer in inner.layers]
            self.norm = inner.norm.weight
            tied = model.lm_head.weight is inner.embed_tokens.weight  # asked before _fuse re-lays the head
            self.lm_head = self._fuse([model.lm_head])
            if tied and self.lm_head.scale is None:
                # Tied weights stay one tensor: the embedding becomes a view of the re-laid matrix (a row is
                # one gather), not the old copy kept beside it.
                inner.embed_tokens.weight = model.lm_head.weight
            self.embed = inner.embed_tokens.weight

    def _layer(self, layer: Any) -> _Layer:
        attn, mlp = layer.self_attn, layer.mlp
        return _Layer(
            attn_norm=layer.input_layernorm.weight,
            qkv=self._fuse([attn.q_proj, attn.k_proj, attn.v_proj]),
            out=self._fuse([attn.o_proj]),
            mlp_norm=layer.post_attention_layernorm.weight,
            gate_up=self._fuse([mlp.gate_proj, mlp.up_proj]),
            down=self._fuse([mlp.down_proj]),
        )

    def _fuse(self, linears: list[Any]) -> _Matrix:
        """One matrix for several linear layers that read the same input; the layers become views of it."""
        # Within one fused group biases are all or none (Qwen2's q/k/v; Llama's attention_bias).
        bias = torch.cat([lin.bias for lin in linears]) if linears[0].bias is not None else None
        if self.quantize == "int8":
            weight = torch.cat([lin.weight.float() for lin in linears])
            scale = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)
            q = torch.round(weight / scale[:, None]).clamp(-128, 127).to(torch.int8).contiguous()
            return _Matrix(q, bias, scale=scale.to(torch.bfloat16))
        if self.input_major:  # one copy that fuses and transposes at once
            matrix = torch.cat([lin.weight.t() for lin in linears], dim=1)
        elif len(linears) > 1:
            matrix = torch.cat([lin.weight for lin in linears]).t()
        else:
            matrix = linears[0].weight.t()
        blocks = None
        n = _blocks(matrix.shape[1], torch.get_num_threads()) if self.input_major else 1
        if n > 1:
            blocks = matrix.view(matrix.shape[0], n, -1).permute(1, 0, 2)
        start = 0
        for lin in linears:
            end = start + lin.out_features
            lin.weight = torch.nn.Parameter(matrix[:, start:end].t(), requires_grad=False)
            if lin.bias is not None and bias is not None:
                lin.bias = torch.nn.Parameter(bias[start:end], requires_grad=False)
            start = end
        return _Matrix(matrix, bias, blocks)

    def begin(self, capacity: int) -> Pass:
        return _PlainPass(self, capacity)

    def rms_norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # As transformers: normalise in float32, cast back, then scale. (F.rms_norm is slower for one row.)
        h = x if x.dtype == torch.float32 else x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * (h if h.dtype == x.dtype else h.to(x.dtype))


class _PlainPass:
    def __init__(self, forward: PlainForward, capacity: int) -> None:
        f = forward
        self.forward = f
        self.capacity = capacity
        self.length = 0
        shape = (f.kv_heads, capacity, f.head_dim)
        self.keys = [torch.empty(shape, dtype=f.dtype, device=f.device) for _ in f.layers]
        self.values = [torch.empty(shape, dtype=f.dtype, device=f.device) for _ in f.layers]
        # RoPE for every position of this reply, with rotate_half's sign folded into the sine:
        # rotate_half(x) * sin == x.roll(half) * signed_sin.
        positions = torch.arange(capacity, device=f.device, dtype=torch.float32)
        freqs = positions[:, None] * f.inv_freq.to(f.device)[None, :]
        half = freqs.shape[1]
        self.cos = (torch.cat([freqs, freqs], dim=1).cos() * f.rope_scale).to(f.dtype)
        sin = freqs.sin() * f.rope_scale
        self.sin = torch.cat([-sin, sin], dim=1).to(f.dtype)
        self.half = half
        self.scale = 1 / math.sqrt(f.head_dim)
        self.zero = torch.zeros((), dtype=f.dtype, device=f.device)  # baddbmm's ignored input (beta=0)

    @torch.inference_mode()
    def prefill(self, ids: Sequence[int]) -> torch.Tensor:
        prompt = _TransformersPass(self.forward.prompt)
        logits = prompt.prefill(ids)
        n = len(ids)
        for i, layer in enumerate(prompt.cache.layers):
            self.keys[i][:, :n] = layer.keys[0]
            self.values[i][:, :n] = layer.values[0]
        self.length = n
        return logits

    @torch.inference_mode()
    def step(self, token: torch.Tensor) -> torch.Tensor:
        f = self.forward
        pos = self.length
        if pos >= self.capacity:
            raise RuntimeError(f"the KV cache holds {self.capacity} tokens and is full")
        heads, kv_heads, head_dim = f.heads, f.kv_heads, f.head_dim
        qk_rows = heads + kv_heads
        cos, sin = self.cos[pos], self.sin[pos]
        x = f.embed.index_select(0, token.view(1))
        for layer, keys, values in zip(f.layers, self.keys, self.values, strict=True):
            h = f.rms_norm(x, layer.attn_norm)
            qkv = layer.qkv(h)[0]
            qk = qkv[: qk_rows * head_dim].view(qk_rows, head_dim)
            qk = qk * cos + qk.roll(self.half, -1) * sin
            keys[:, pos] = qk[heads:]
            values[:, pos] = qkv[qk_rows * head_dim :].view(kv_heads, head_dim)
            q = qk[:heads].view(kv_heads, heads // kv_heads, head_dim)
            att = torch.baddbmm(self.zero, q, keys[:, : pos + 1].transpose(1, 2), beta=0, alpha=self.scale)
            att = att.softmax(dim=-1)
            y = torch.bmm(att, values[:, : pos + 1]).view(1, heads * head_dim)
            x = layer.out(y, residual=x)
            h = f.rms_norm(x, layer.mlp_norm)
            gate, up = layer.gate_up(h).chunk(2, dim=-1)
            x = layer.down(F.silu(gate) * up, residual=x)
        self.length = pos + 1
        return f.lm_head(f.rms_norm(x, f.norm))[0]


def _blocks(width: int, threads: int) -> int:
    """The most column blocks, at most one per thread, that split ``width`` evenly."""
    return max(n for n in range(1, max(threads, 1) + 1) if width % n == 0)
