"""Inference backends behind one interface: see ``hf2vllm.backends.base``."""

from hf2vllm.backends.base import Backend, GenerationResult, StepLogprobs, create_backend, register_backend

__all__ = ["Backend", "GenerationResult", "StepLogprobs", "create_backend", "register_backend"]
