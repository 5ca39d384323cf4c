"""Tiny, real models and tokenizers built inside the tests (fast, and no mocks), and a process helper."""

from __future__ import annotations

import json
import time
from pathlib import Path

SENTENCES = [
    "The capital of France is Paris.",
    "Hello world, this is a small test corpus for a tiny tokenizer.",
    "Tokenizers cut text into pieces; models predict the next piece.",
    "你好，世界。你是谁？我是一个模型。",
    "Emoji 🙂 and tabs\tand newlines\nare text too.",
    "def main():\n    return 42\n",
] * 20

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def byte_level_bpe(vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(SENTENCES, trainer)
    return tok


def sentencepiece_bpe(vocab_size: int = 300):
    """A SentencePiece-style BPE (Metaspace, byte fallback), like Llama 2's and Mistral's."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.Metaspace(), decoders.ByteFallback(), decoders.Fuse()])
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size + 256, special_tokens=["<unk>", "<s>", "</s>", *byte_tokens])
    tok.train_from_iterator(SENTENCES, trainer)
    # As in Llama's tokenizer.json, byte pieces are ordinary vocabulary entries, not added tokens.
    spec = json.loads(tok.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if not t["content"].startswith("<0x")]
    return Tokenizer.from_str(json.dumps(spec))


def wordpiece(vocab_size: int = 300):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    tok.train_from_iterator(SENTENCES, trainer)
    return tok


def with_template(tok, single: str, pair: str, specials: list[str]):
    """The tokenizer with a post-processor that adds special tokens, as a model's tokenizer.json has it."""
    from tokenizers import processors

    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(name, tok.token_to_id(name)) for name in specials]
    )
    return tok


def saved_tokenizers(root: Path) -> dict[str, Path]:
    """Tokenizers of every kind users meet, each saved as a model ships it (tokenizer.json and
    tokenizer_config.json), for comparing llmtui's ids with what transformers' AutoTokenizer reads from the
    same files:

    - byte-level BPE without a BOS (GPT-2, Qwen, SmolLM);
    - SentencePiece with byte fallback whose tokenizer adds a BOS, as Llama 2's and Mistral's (their class);
    - WordPiece that adds [CLS] and [SEP] (BERT, its class);
    - WordPiece whose tokenizer.json also carries padding to 32 and truncation at 8 (sentence-transformers).
    """
    from transformers import PreTrainedTokenizerFast

    sentencepiece = with_template(sentencepiece_bpe(), "<s> $A", "<s> $A <s> $B", ["<s>"])
    bert = with_template(wordpiece(), "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1", ["[CLS]", "[SEP]"])
    padded = with_template(wordpiece(), "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1", ["[CLS]", "[SEP]"])
    padded.enable_padding(length=32, pad_id=padded.token_to_id("[PAD]"), pad_token="[PAD]")
    padded.enable_truncation(max_length=8)
    bert_tokens = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]"}
    kinds = {
        "byte-level BPE": (fast_tokenizer(byte_level_bpe()), {}),
        "SentencePiece, BOS added": (
            PreTrainedTokenizerFast(
                tokenizer_object=sentencepiece, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
            ),
            {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": False},
        ),
        "WordPiece, [CLS]/[SEP]": (
            PreTrainedTokenizerFast(tokenizer_object=bert, **bert_tokens),
            {"tokenizer_class": "BertTokenizer", "do_lower_case": True},
        ),
        "padding and truncation": (PreTrainedTokenizerFast(tokenizer_object=padded, **bert_tokens), {}),
    }
    paths = {}
    for i, (kind, (tokenizer, config)) in enumerate(kinds.items()):
        path = root / f"tokenizer-{i}"
        tokenizer.save_pretrained(path)
        if config:
            saved = json.loads((path / "tokenizer_config.json").read_text())
            (path / "tokenizer_config.json").write_text(json.dumps({**saved, **config}))
        paths[kind] = path
    return paths


def fast_tokenizer(tok, *, chat_template: str | None = CHATML):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def tiny_llama(
    directory: Path,
    *,
    chat_template: str | None = CHATML,
    context: int = 256,
    seed: int = 0,
    architecture: str = "llama",
    tied: bool = False,
    rope_theta: float = 10000.0,
    sharp_attention: float = 1.0,
    sentencepiece: bool = False,
    bos: bool = False,
    head_dim: int = 16,
    rope: dict | None = None,
) -> Path:
    """A 2-layer random decoder with a byte-level BPE tokenizer (``sentencepiece``: a SentencePiece one,
    with byte fallback, as Llama 2's), saved as a normal checkpoint.

    ``architecture``: "llama" (grouped-query attention), "qwen2" (q/k/v biases) or "gemma" (an
    architecture the plain forward pass does not run). Random weights attend almost uniformly, so a token's
    position hardly matters; ``sharp_attention`` scales the query and key projections (attention then picks
    out particular positions, as a trained model's does) and a small ``rope_theta`` turns every rotary
    frequency fast, so that a position off by one changes what the model says. ``bos``: the tokenizer adds
    its BOS (``<|im_start|>``) before every text it encodes with special tokens, as Llama 2's and Mistral's
    do. ``head_dim``: other than hidden_size / heads (16), as Qwen3's and Gemma's are. ``rope``: RoPE
    scaling parameters beside the base (YaRN's, say).
    """
    import torch
    from transformers import AutoModelForCausalLM, GemmaConfig, LlamaConfig, Qwen2Config

    backend = sentencepiece_bpe() if sentencepiece else byte_level_bpe()
    if bos:
        backend = with_template(backend, "<|im_start|> $A", "<|im_start|> $A <|im_start|> $B", ["<|im_start|>"])
    tokenizer = fast_tokenizer(backend, chat_template=chat_template)
    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config, "gemma": GemmaConfig}[architecture]
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=head_dim,
        max_position_embeddings=context,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=tied,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta, **(rope or {})},
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        # Sharpen the random logits a little so distributions are not flat (more like a real model).
        model.lm_head.weight.mul_(8)
        for name, param in model.named_parameters():
            if name.endswith("bias"):  # transformers starts biases at zero, which would test nothing
                param.normal_(0, 0.5)
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                param.mul_(sharp_attention)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


class Intercepted:
    """An engine's forward pass that calls ``before_prefill()`` before its prefill and ``before_step(n)``
    before its n-th decode step (from 1), and hands on ``logits(x)`` of what each returns: where a test
    makes a device fault happen, holds a reply, or changes what the model says."""

    def __init__(self, forward, *, before_prefill=None, before_step=None, logits=None) -> None:
        self.forward = forward
        self.name, self.quantize, self.note = forward.name, forward.quantize, forward.note
        self.before_prefill = before_prefill or (lambda: None)
        self.before_step = before_step or (lambda n: None)
        self.logits = logits or (lambda x: x)

    @classmethod
    def failing(cls, forward, fault: BaseException, at: int) -> Intercepted:
        """One that raises ``fault`` in the prefill (``at`` 0) or at decode step ``at``, as a device fault."""

        def raise_at(n: int = 0) -> None:
            if n == at:
                raise fault

        return cls(forward, before_prefill=raise_at, before_step=raise_at)

    def begin(self, capacity: int):
        inner, outer = self.forward.begin(capacity), self

        class Pass:
            steps = 0

            def prefill(self, ids):
                outer.before_prefill()
                return outer.logits(inner.prefill(ids))

            def step(self, token):
                self.steps += 1
                outer.before_step(self.steps)
                return outer.logits(inner.step(token))

        return Pass()


def gone(pid: int, within: float) -> bool:
    """Whether the process ends within ``within`` seconds (a zombie nobody has reaped yet counts as ended)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def tiny_gguf(path: Path) -> Path:
    """A 2-layer random Llama as a GGUF file (float32 tensors, a GPT-2 style BPE vocabulary), as llama.cpp
    writes them: small enough that converting it takes a second."""
    import gguf
    import numpy as np

    spec = json.loads(byte_level_bpe().to_str())
    vocab = dict(spec["model"]["vocab"])
    vocab.update({t["content"]: t["id"] for t in spec["added_tokens"]})
    tokens = sorted(vocab, key=vocab.get)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in SPECIALS else 1 for t in tokens])
    writer.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in spec["model"]["merges"]])
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (len(tokens), 64), "output_norm.weight": (64,), "output.weight": (len(tokens), 64)}
    for i in range(2):
        shapes |= {
            f"blk.{i}.attn_norm.weight": (64,),
            f"blk.{i}.ffn_norm.weight": (64,),
            f"blk.{i}.attn_q.weight": (64, 64),
            f"blk.{i}.attn_k.weight": (32, 64),
            f"blk.{i}.attn_v.weight": (32, 64),
            f"blk.{i}.attn_output.weight": (64, 64),
            f"blk.{i}.ffn_gate.weight": (128, 64),
            f"blk.{i}.ffn_up.weight": (128, 64),
            f"blk.{i}.ffn_down.weight": (64, 128),
        }
    for name, shape in shapes.items():
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def custom_code_model(source: Path, directory: Path, marker: Path) -> Path:
    """A copy of a tiny model that ships its own Python, as hub models with an ``auto_map`` do: a config
    class of a model type transformers does not know, a model class and a tokenizer class. Each module
    appends its name to ``marker`` when it runs, so a test can tell whether any of it ran."""
    import shutil

    shutil.copytree(source, directory)
    ran = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    modules = {
        "configuration_tiny.py": "from transformers import LlamaConfig\n\n\n"
        "class TinyConfig(LlamaConfig):\n    model_type = 'tinycustom'\n",
        "modeling_tiny.py": "from transformers import LlamaForCausalLM\n\n"
        "from .configuration_tiny import TinyConfig\n\n\n"
        "class TinyForCausalLM(LlamaForCausalLM):\n    config_class = TinyConfig\n",
        "tokenization_tiny.py": "from transformers import PreTrainedTokenizerFast\n\n\n"
        "class TinyTokenizer(PreTrainedTokenizerFast):\n    pass\n",
    }
    for name, code in modules.items():
        (directory / name).write_text(ran + code)
    config = json.loads((directory / "config.json").read_text())
    config.update(
        model_type="tinycustom",
        architectures=["TinyForCausalLM"],
        auto_map={
            "AutoConfig": "configuration_tiny.TinyConfig",
            "AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM",
        },
    )
    (directory / "config.json").write_text(json.dumps(config))
    tokenizer = json.loads((directory / "tokenizer_config.json").read_text())
    tokenizer.update(
        tokenizer_class="TinyTokenizer", auto_map={"AutoTokenizer": [None, "tokenization_tiny.TinyTokenizer"]}
    )
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    return directory
