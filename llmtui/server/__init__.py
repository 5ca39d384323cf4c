"""`llmtui serve`: the engine behind an OpenAI-compatible HTTP API (uvicorn + Starlette).

Importing this package does not import torch or transformers: the engine is imported on the loading
thread, after the socket is bound.
"""

from llmtui.server.main import serve

__all__ = ["serve"]
