"""llmtui: a terminal chat workstation for local language models."""

__version__ = "0.1.0"
