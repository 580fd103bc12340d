"""Helpers of the server tests (imported by name: pytest puts this directory on sys.path)."""

from __future__ import annotations

from typing import Any


def server_backend(server: Any, **options: Any):  # type: ignore[no-untyped-def]
    """An ``OpenAIServerBackend`` on a running server (a ``VLLMServer``) or a base URL."""
    from hf2vllm.backends.base import create_backend

    base_url = server.base_url if hasattr(server, "base_url") else str(server)
    return create_backend("server", base_url=base_url, **options)
