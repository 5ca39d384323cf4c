"""Typed failures. Each carries a one-sentence message fit to show a user as it is."""


class LlmtuiError(Exception):
    """Base of every error llmtui reports to a user instead of a traceback."""


class ModelNotFound(LlmtuiError):
    """A model spec names nothing that can be loaded from this machine."""


class ModelLoadError(LlmtuiError):
    """The model was found but could not be loaded (bad files, wrong format)."""


class UnsupportedModel(LlmtuiError):
    """The model loads, but llmtui cannot chat with it (architecture, task)."""


class OutOfMemory(LlmtuiError):
    """The device ran out of memory while loading or generating."""


class GenerationError(LlmtuiError):
    """Generation failed for a reason other than memory (CUDA error, bad input)."""


class ContextOverflow(LlmtuiError):
    """The newest message alone does not fit in the model's context."""


class InvalidValue(LlmtuiError):
    """A setting or option has a value out of its range or of the wrong type."""


class EngineUnavailable(LlmtuiError):
    """The engine process or server cannot be reached, or stopped (the reply in flight is kept as partial)."""


def first_line(exc: BaseException) -> str:
    """The first line of a library's exception message (at most 300 characters), to quote in one of ours."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
