"""The engine: loading, generation, tokenization. It knows nothing of Textual."""

import os

# Set before transformers, huggingface_hub or tqdm are imported: tqdm reads its switch at import time.
# The hub is never asked for anything (models resolve from local files only), and progress bars from
# the libraries would scribble over the TUI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
