"""One interface for every inference backend (Transformers, offline vLLM, an OpenAI-compatible server).

Lifecycle: ``create_backend(kind, **options)`` loads the model (``load_seconds`` records how long);
``generate(requests, spec)`` answers prepared requests in order; ``close()`` frees the engine. A
comparison never knows which backend it talks to. Register a new backend with
``@register_backend("name")`` on a ``Backend`` subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from hf2vllm.errors import InputError
from hf2vllm.requests import PreparedRequest
from hf2vllm.spec import GenerationSpec

ProgressCallback = Callable[[int], None]
"""Called with the number of requests just finished (for progress bars)."""


class StepLogprobs(BaseModel):
    """Logprobs at one generated position: the chosen token's and the top alternatives'."""

    token_id: int
    logprob: float
    top: dict[int, float] = Field(default_factory=dict, description="token id -> logprob, best first")
    top_logits: dict[int, float] | None = Field(
        None, description="Raw logits of the same top tokens (teacher-forced reference only): the dtype's resolution "
        "at the logit's size bounds how close two tokens can be told apart."
    )


class GenerationResult(BaseModel):
    """What one backend produced for one request."""

    request_id: str
    output_token_ids: list[int]
    text: str
    finish_reason: str | None = Field(
        None, description='"stop" (a stop token/string), "length", or "context_length" (prompt did not fit)'
    )
    logprobs: list[StepLogprobs] | None = None
    prompt_token_ids: list[int] | None = Field(
        None, description="The prompt ids the backend actually used, when it tokenised the text itself."
    )


class ScoredContinuation(BaseModel):
    """Teacher-forced logprobs of a given continuation: one ``StepLogprobs`` per continuation token,
    each computed with the prompt and all earlier continuation tokens as context."""

    request_id: str
    steps: list[StepLogprobs]
    greedy_token_ids: list[int] | None = Field(
        None, description="Per position, the token greedy decoding would pick there: argmax after the logits "
        "processors generate() applies (repetition penalty, minimum length, suppressed tokens)."
    )


class Backend(ABC):
    """Base class of all backends; see the module docstring for the lifecycle."""

    kind: ClassVar[str]
    load_seconds: float = 0.0

    @abstractmethod
    def generate(
        self,
        requests: Sequence[PreparedRequest],
        spec: GenerationSpec,
        *,
        progress: ProgressCallback | None = None,
    ) -> list[GenerationResult]:
        """Answer ``requests`` (same order) with the settings of ``spec``."""

    def score(
        self, requests: Sequence[PreparedRequest], continuations: Sequence[Sequence[int]], *, top_k: int = 5
    ) -> list[ScoredContinuation]:
        """Teacher-forced scoring: the logprob of each continuation token given the prompt and the
        continuation before it (raw log-softmax, no sampling processors), with ``top_k`` alternatives.

        Backends that cannot score raise ``UnsupportedParameterError``.
        """
        from hf2vllm.errors import UnsupportedParameterError

        raise UnsupportedParameterError(f"the {self.kind!r} backend cannot score continuations (teacher forcing)")

    @classmethod
    def check_available(cls) -> None:
        """Raise ``BackendUnavailableError`` (saying how to install) before any slow work starts."""

    def describe(self) -> dict[str, Any]:
        """Load options worth recording in a report (dtype, device, engine settings)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the model/engine; the backend is unusable afterwards."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_REGISTRY: dict[str, Callable[..., Backend]] = {}
_MODULES = {
    "hf": "hf2vllm.backends.hf",
    "vllm": "hf2vllm.backends.vllm_offline",
    "server": "hf2vllm.backends.openai_server",
    "record": "hf2vllm.backends.recorded",
}


def register_backend(kind: str) -> Callable[[type[Backend]], type[Backend]]:
    def decorator(cls: type[Backend]) -> type[Backend]:
        cls.kind = kind
        _REGISTRY[kind] = cls
        return cls

    return decorator


def register_backend_module(kind: str, module: str) -> None:
    """Declare where a backend lives so it is imported (lazily) only when used."""
    _MODULES[kind] = module


def backend_class(kind: str) -> type[Backend]:
    """The class registered as ``kind`` (imported on first use); an unknown kind lists the known ones."""
    if kind not in _REGISTRY and kind in _MODULES:
        import importlib

        importlib.import_module(_MODULES[kind])
    if kind not in _REGISTRY:
        known = ", ".join(sorted(set(_REGISTRY) | set(_MODULES)))
        raise InputError(f"unknown backend {kind!r}; known backends: {known}")
    return _REGISTRY[kind]  # type: ignore[return-value]


def create_backend(kind: str, **options: Any) -> Backend:
    """Instantiate a registered backend with its options."""
    cls = backend_class(kind)
    cls.check_available()
    return cls(**options)
