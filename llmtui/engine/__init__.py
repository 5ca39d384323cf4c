"""The engine: resolving, converting, loading and describing models; generation. It knows nothing of Textual.

specs (model specs and tokenizers) and gguf (the conversion cache) import neither torch nor transformers
at module level, and tokenizer.json never needs them: the UI process uses these.
"""

import os

# Set before transformers, huggingface_hub or tqdm are imported: tqdm reads its switch at import time.
# The hub is never asked for anything (models resolve from local files only), and progress bars from
# the libraries would scribble over the TUI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quiet_libraries() -> None:
    """Keep library chatter (progress bars, advisory warnings) off a user's terminal."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module="transformers")
    warnings.filterwarnings("ignore", module="torch")
