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
) -> Path:
    """A 2-layer random decoder with a byte-level BPE tokenizer, saved as a normal checkpoint.

    ``architecture``: "llama" (grouped-query attention), "qwen2" (q/k/v biases) or "gemma" (an
    architecture the plain forward pass does not run).
    """
    import torch
    from transformers import AutoModelForCausalLM, GemmaConfig, LlamaConfig, Qwen2Config

    tokenizer = fast_tokenizer(byte_level_bpe(), chat_template=chat_template)
    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config, "gemma": GemmaConfig}[architecture]
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=context,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        # Sharpen the random logits a little so distributions are not flat (more like a real model).
        model.lm_head.weight.mul_(8)
        for name, param in model.named_parameters():
            if name.endswith("bias"):  # transformers starts biases at zero, which would test nothing
                param.normal_(0, 0.5)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


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
