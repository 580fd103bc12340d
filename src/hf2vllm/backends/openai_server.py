"""The third backend: an OpenAI-compatible server (a running ``vllm serve``), through ``server.client``.

Requests go to ``/v1/completions`` as prompt token ids (the same ids the offline backends get, chat
template applied once by ``hf2vllm.requests``), every sampling field explicit, output ids returned as
ids. Optionally each finished request is journaled (``journal=PATH``) and ``resume=True`` skips the
ids already answered, so a killed run loses nothing and answers nothing twice.

Usage::

    backend = create_backend("server", base_url="http://127.0.0.1:8000/v1", model=path)
    results = backend.generate(prepared_requests, spec)
    backend.describe()["client"]["retries"]      # retries the run needed
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf2vllm.backends.base import Backend, GenerationResult, ProgressCallback, StepLogprobs, register_backend
from hf2vllm.errors import BackendUnavailableError, InputError
from hf2vllm.requests import PreparedRequest
from hf2vllm.server.client import ClientConfig, ServerClient, ServerReply, completion_body
from hf2vllm.server.journal import Journal, run_fingerprint
from hf2vllm.spec import GenerationSpec

BASE_URL_ENV = "HF2VLLM_SERVER_URL"
"""Environment variable read when no base URL is given."""


@register_backend("server")
class OpenAIServerBackend(Backend):
    """A vLLM (or other OpenAI-compatible) server; see the module docstring.

    ``served_model`` is the name the server knows the model by; None asks ``/v1/models`` and takes
    the only model served. ``client`` options go to ``ClientConfig`` (concurrency, timeouts, retries,
    rate limits). ``model``/``dtype`` are what the comparison passes every backend: recorded only.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        model: str | Path | None = None,
        served_model: str | None = None,
        dtype: str | None = None,
        api_key_env: str | None = None,
        stream: bool = False,
        journal: str | Path | None = None,
        resume: bool = False,
        **client: Any,
    ) -> None:
        start = time.perf_counter()
        base_url = base_url or os.environ.get(BASE_URL_ENV)
        if not base_url:
            raise InputError(f"server backend: give --server URL (or set {BASE_URL_ENV})")
        self.config = ClientConfig(base_url=base_url, api_key_env=api_key_env, **client)
        self.config.resolved_key()  # an unset key variable fails now, not after loading the other side
        self.model_path = model
        self.dtype = dtype
        self.stream = stream
        self.journal_path = Path(journal) if journal else None
        self.resume = resume
        self.served_model, self.max_model_len = self._served_model_entry(served_model)
        self.last_stats: dict[str, Any] = {}
        self.latencies: dict[str, dict[str, Any]] = {}
        self.load_seconds = time.perf_counter() - start

    def _served_model_entry(self, name: str | None) -> tuple[str, int | None]:
        """The served model's name and context length from ``/v1/models`` (fails early, with a fix)."""
        from hf2vllm.server.diagnostics import list_models

        models = list_models(self.config)
        names = [str(m.get("id")) for m in models]
        if name is None:
            if len(models) != 1:
                raise InputError(
                    f"server {self.config.public_base_url} serves {', '.join(names) or 'no model'}: name one with --served-model"
                )
            name = names[0]
        if name not in names:
            raise InputError(f"--served-model {name!r}: not served at {self.config.public_base_url} (served: {', '.join(names)})")
        max_len = models[names.index(name)].get("max_model_len")
        return name, int(max_len) if max_len else None

    def describe(self) -> dict[str, Any]:
        return {
            "base_url": self.config.public_base_url,
            "served_model": self.served_model,
            "max_model_len": self.max_model_len,
            "max_concurrency": self.config.max_concurrency,
            "stream": self.stream,
            "rate_limit": {"requests_per_minute": self.config.requests_per_minute,
                           "tokens_per_minute": self.config.tokens_per_minute},
            "journal": str(self.journal_path) if self.journal_path else None,
            "client": self.last_stats,
        }

    def generate(
        self,
        requests: Sequence[PreparedRequest],
        spec: GenerationSpec,
        *,
        progress: ProgressCallback | None = None,
    ) -> list[GenerationResult]:
        journal = None
        if self.journal_path is not None:
            key = run_fingerprint("generate", self.served_model, spec.model_dump(), [r.id for r in requests])
            journal = Journal.open(self.journal_path, run_key=key, resume=self.resume)
        try:
            return asyncio.run(self._generate(requests, spec, journal, progress))
        finally:
            if journal is not None:
                journal.close()

    async def _generate(
        self,
        requests: Sequence[PreparedRequest],
        spec: GenerationSpec,
        journal: Journal | None,
        progress: ProgressCallback | None,
    ) -> list[GenerationResult]:
        done: dict[str, GenerationResult] = {}
        if journal is not None:
            wanted = {r.id for r in requests}
            for rid, payload in journal.done.items():
                if rid in wanted:
                    done[rid] = GenerationResult.model_validate(payload["result"])
            if progress and done:
                progress(len(done))
        top_k = spec.logprobs or 0
        jobs = (
            (r.id, "/completions", completion_body(r.prompt_token_ids, spec, self.served_model, stream=self.stream))
            for r in requests
            if r.id not in done
        )
        async with ServerClient(self.config) as client:
            async for reply in client.run_all(jobs, stream=self.stream):
                assert isinstance(reply, ServerReply)
                result = reply_to_result(reply, top_k, with_logprobs=spec.logprobs is not None)
                timing = {"attempts": reply.attempts, "latency_s": round(reply.latency_s, 4),
                          "ttft_s": None if reply.ttft_s is None else round(reply.ttft_s, 4)}
                if journal is not None:
                    journal.append(result.request_id, {"result": result.model_dump(), **timing})
                self.latencies[result.request_id] = timing
                done[result.request_id] = result
                if progress:
                    progress(1)
            stats = client.stats.model_dump()
        stats["resumed_from_journal"] = journal.resumed if journal is not None else 0
        self.last_stats = stats
        return [done[r.id] for r in requests]


    def score(
        self, requests: Sequence[PreparedRequest], continuations: Sequence[Sequence[int]], *, top_k: int = 5
    ) -> list[Any]:
        """Teacher forcing through the server: ``prompt_logprobs`` over prompt + continuation with
        ``max_tokens=1`` (the same request the offline backend makes of its engine)."""
        return asyncio.run(self._score(requests, continuations, top_k))

    async def _score(
        self, requests: Sequence[PreparedRequest], continuations: Sequence[Sequence[int]], top_k: int
    ) -> list[Any]:
        from hf2vllm.backends.base import ScoredContinuation

        scored = {r.id: ScoredContinuation(request_id=r.id, steps=[]) for r in requests}
        conts = {r.id: list(c) for r, c in zip(requests, continuations, strict=True)}
        jobs = [
            (r.id, "/completions", {"model": self.served_model, "prompt": list(r.prompt_token_ids) + conts[r.id],
                                    "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": top_k})
            for r in requests if conts[r.id]
        ]
        lengths = {r.id: len(r.prompt_token_ids) for r in requests}
        async with ServerClient(self.config) as client:
            async for reply in client.run_all(jobs):
                assert isinstance(reply, ServerReply)
                rid = reply.request_id
                per_position = (reply.body["choices"][0].get("prompt_logprobs") or [])[lengths[rid]:]
                steps = []
                for tok, candidates in zip(conts[rid], per_position, strict=True):
                    entries = {int(t): v for t, v in (candidates or {}).items()}
                    ranked = sorted(entries.items(), key=lambda kv: -float(kv[1]["logprob"]))
                    top = {t: float(v["logprob"]) for t, v in ranked if v.get("rank") is not None and v["rank"] <= top_k}
                    steps.append(StepLogprobs(token_id=tok, logprob=float(entries[tok]["logprob"]), top=top))
                scored[rid] = ScoredContinuation(request_id=rid, steps=steps)
        return [scored[r.id] for r in requests]


def reply_to_result(reply: ServerReply, top_k: int, *, with_logprobs: bool = True) -> GenerationResult:
    """Convert a ``/completions`` reply (token ids returned as ``token_id:N``) into a ``GenerationResult``."""
    choices = reply.body.get("choices") or []
    if not choices:
        raise BackendUnavailableError(f"request {reply.request_id}: the server answered without choices")
    choice = choices[0]
    lp = choice.get("logprobs") or {}
    tokens = lp.get("tokens") or []
    ids_from_logprobs = [token_id_of(t) for t in tokens]
    output_ids = choice.get("token_ids") or ids_from_logprobs
    steps = None
    if with_logprobs and tokens:
        steps = []
        for tok, chosen_lp, top in zip(ids_from_logprobs, lp.get("token_logprobs") or [], lp.get("top_logprobs") or [],
                                       strict=False):
            # The server adds the chosen token to the top-k when it ranks below k: keep the k best only,
            # as the offline backend does (rank <= k).
            ranked = sorted(((token_id_of(t), float(v)) for t, v in (top or {}).items()), key=lambda kv: -kv[1])
            steps.append(StepLogprobs(token_id=tok, logprob=float(chosen_lp), top=dict(ranked[:top_k])))
    return GenerationResult(
        request_id=reply.request_id,
        output_token_ids=[int(t) for t in output_ids],
        text=choice.get("text") or "",
        finish_reason=choice.get("finish_reason"),
        logprobs=steps,
    )


def token_id_of(token: str) -> int:
    """``"token_id:42"`` (vLLM's ``return_tokens_as_token_ids``) -> 42."""
    if isinstance(token, str) and token.startswith("token_id:"):
        return int(token[len("token_id:"):])
    raise BackendUnavailableError(
        f"server returned token {token!r} as text, not as an id: it does not support return_tokens_as_token_ids "
        "(a vLLM extension), so exact token comparison is impossible"
    )
