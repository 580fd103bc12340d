"""Which two backends ``hf2vllm compare`` runs, and the server side's options (pure helpers).

``compare`` keeps its default (hf vs vllm); ``--server URL`` alone means hf vs server; ``--reference``
and ``--candidate`` pick any two of hf, vllm, server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf2vllm.errors import InputError

BACKEND_KINDS = ("hf", "vllm", "server")


def resolve_sides(reference: str, candidate: str | None, server: str | None) -> tuple[str, str]:
    """``(reference, candidate)`` kinds; a server side needs ``--server`` and ``--server`` needs one."""
    if candidate is None:
        candidate = "server" if server and reference != "server" else "vllm"
    for flag, kind in (("--reference", reference), ("--candidate", candidate)):
        if kind not in BACKEND_KINDS:
            raise InputError(f"{flag} {kind!r}: unknown backend (choose from {', '.join(BACKEND_KINDS)})")
    if "server" in (reference, candidate) and not server:
        raise InputError("a server side needs --server URL (the OpenAI base URL, e.g. http://127.0.0.1:8000/v1)")
    if server and "server" not in (reference, candidate):
        raise InputError(f"--server is given but neither side is the server ({reference} vs {candidate}): "
                         "add --candidate server or --reference server")
    return reference, candidate


def server_options(
    server: str,
    *,
    served_model: str | None = None,
    api_key_env: str | None = None,
    concurrency: int = 64,
    stream: bool = False,
    journal: str | None = None,
    resume: bool = False,
    timeout_s: float = 120.0,
    max_retries: int = 6,
    requests_per_minute: float | None = None,
    tokens_per_minute: float | None = None,
) -> dict[str, Any]:
    """Options for ``create_backend("server", ...)`` from the CLI's flags."""
    if resume and not journal:
        raise InputError("--resume needs --journal PATH (the journal of the run to resume)")
    if journal and not resume and Path(journal).is_file() and Path(journal).stat().st_size > 0:
        # Checked here, before the other side spends minutes generating.
        raise InputError(f"journal {journal} already exists: pass --resume to continue that run, or remove it")
    options: dict[str, Any] = {
        "base_url": server, "served_model": served_model, "api_key_env": api_key_env,
        "max_concurrency": concurrency, "stream": stream, "journal": journal, "resume": resume,
        "timeout_s": timeout_s, "max_retries": max_retries,
    }
    if requests_per_minute:
        options["requests_per_minute"] = requests_per_minute
    if tokens_per_minute:
        options["tokens_per_minute"] = tokens_per_minute
    return options


def client_summary_lines(backends: list[Any]) -> list[str]:
    """One line per server side of a report: requests, retries by reason, answers taken from the journal."""
    lines = []
    for b in backends:
        client = (b.options or {}).get("client") if hasattr(b, "options") else None
        if not client:
            continue
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(client.get("retries_by_reason", {}).items()))
        lines.append(
            f"{b.name}: {client.get('requests', 0)} requests sent, {client.get('retries', 0)} retries"
            + (f" ({reasons})" if reasons else "")
            + f", {client.get('failures', 0)} failed, {client.get('resumed_from_journal', 0)} resumed from the journal"
        )
    return lines
