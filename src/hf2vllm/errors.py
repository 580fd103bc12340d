"""Errors that carry a user-facing message. The CLI prints the message on one line and exits 2."""

from __future__ import annotations


class HF2VLLMError(Exception):
    """Base class: ``str(err)`` is the one-line message shown to the user."""

    exit_code = 2


class InputError(HF2VLLMError):
    """A file, flag or value given by the user is malformed (names the file/line/parameter)."""


class ModelNotFoundError(HF2VLLMError):
    """A model path or name does not resolve to a checkpoint."""


class ContextLengthError(HF2VLLMError):
    """A request does not fit the model's context window (names the request and its token count)."""


class UnsupportedParameterError(HF2VLLMError):
    """A generation parameter has no exact vLLM equivalent (names it and the nearest vLLM feature)."""


class BackendUnavailableError(HF2VLLMError):
    """A backend's library or server is missing or unreachable (says how to get it)."""


class ParityGateError(HF2VLLMError):
    """Parity fell below a gate the user set (``--min-exact-match``): exit code 1, not a usage error."""

    exit_code = 1


def one_line(message: str) -> str:
    """``message`` on one line, with anything shaped like a credential masked (checks.looks_like_secret)."""
    from hf2vllm.checks import mask_secrets

    return mask_secrets(" ".join(message.split()))


def save_traceback(err: BaseException) -> str:
    """Write ``err``'s traceback (credentials masked) to ``state_dir()``/last-error.log; its path."""
    import tempfile
    import traceback
    from pathlib import Path

    from hf2vllm.checks import mask_secrets
    from hf2vllm.models import state_dir

    text = mask_secrets("".join(traceback.format_exception(err)))
    for folder in (state_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "last-error.log"
            path.write_text(text, encoding="utf-8")
            return str(path)
        except OSError:
            continue
    return "(nowhere: no writable folder)"
