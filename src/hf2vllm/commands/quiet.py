"""Environment defaults for commands that load models: offline, and engine logs kept quiet."""

from __future__ import annotations

import os


def quiet_model_libraries(verbose: bool = False) -> None:
    """Forbid hub access (hf2vllm never downloads) and keep library chatter out of the output.

    Set before vLLM/Transformers are imported: vLLM reads its logging level once at import, and the
    engine's worker processes inherit the environment.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if not verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
