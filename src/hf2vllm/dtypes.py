"""Dtype names shared by both backends, so "float32" means the same thing on each side."""

from __future__ import annotations

from typing import Any

from hf2vllm.errors import InputError

DTYPES = ("float32", "bfloat16", "float16")
_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


def normalise_dtype(name: str) -> str:
    """Canonical dtype name; an unknown name raises ``InputError`` listing the valid ones."""
    canonical = _ALIASES.get(name.lower(), name.lower())
    if canonical not in DTYPES:
        raise InputError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return canonical


def resolve_torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, normalise_dtype(name))
