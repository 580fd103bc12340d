"""A fast async client for OpenAI-compatible servers (vLLM first): bounded concurrency, retries with
backoff that honour ``Retry-After``, optional client-side rate limits, streaming latency timings.

Usage::

    import asyncio
    from hf2vllm.server.client import ClientConfig, ServerClient

    async def main() -> None:
        config = ClientConfig(base_url="http://127.0.0.1:8000/v1", api_key_env="VLLM_API_KEY")
        async with ServerClient(config) as client:
            bodies = [{"model": "m", "prompt": [1, 2, 3], "max_tokens": 16} for _ in range(1000)]
            async for reply in client.run_all(
                ((f"req-{i}", "/completions", body) for i, body in enumerate(bodies)), stream=True
            ):
                print(reply.request_id, reply.ttft_s, reply.body["choices"][0]["text"])
        print(client.stats)      # attempts, retries by reason

``ServerReply.body`` always has the shape of a non-streamed response, also for streamed requests (the
chunks are merged), so callers parse one shape. ``completion_body(request, spec, model)`` builds the
``/completions`` body of a ``PreparedRequest`` (prompt token ids, every sampling field explicit).

Retries: HTTP 429 and 5xx, dropped connections and timeouts are retried up to ``max_retries`` times,
waiting ``Retry-After`` when the server sends it and exponential backoff with full jitter otherwise.
Other 4xx answers fail at once (a retry cannot fix a bad request). Rate limits (requests/min,
tokens/min) are off by default: a self-hosted vLLM queues requests itself and a client-side limit only
slows it down; turn them on for hosted APIs that bill or throttle per minute.

The API key is sent as ``Authorization: Bearer`` and never appears in a log line, error or report:
every message built here passes through ``redact()`` and names the server by ``public_base_url``.
Credentials inside the URL (``http://user:key@host/v1``) are sent as HTTP Basic auth (for a proxy in
front of the server; vLLM's own ``--api-key`` wants the Bearer key of ``api_key_env``) and are never
shown either; giving both is refused, since both would set the one Authorization header.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from pydantic import BaseModel, Field, SecretStr
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from hf2vllm.checks import api_key_env as checked_key_env
from hf2vllm.checks import mask_secrets, public_url, url_secrets
from hf2vllm.errors import BackendUnavailableError, InputError

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""Statuses worth retrying: throttling, overload and gateway failures (409: vLLM's duplicate-id race)."""

MAX_RETRY_AFTER_S = 300.0
"""Longest ``Retry-After`` honoured; a server asking for more is treated as down."""


class ClientConfig(BaseModel):
    """Where the server is and how hard to push it."""

    base_url: str = Field(description="OpenAI base URL, e.g. http://127.0.0.1:8000/v1")
    api_key: SecretStr | None = Field(None, description="Key (prefer api_key_env); never logged.")
    api_key_env: str | None = Field(None, description="Environment variable holding the key.")
    timeout_s: float = Field(120.0, gt=0, description="Whole-request timeout, per attempt.")
    connect_timeout_s: float = Field(10.0, gt=0)
    max_concurrency: int = Field(64, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(6, ge=0, description="Retries after the first attempt.")
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    requests_per_minute: float | None = Field(None, gt=0, description="Client-side limit; None = off.")
    tokens_per_minute: float | None = Field(None, gt=0, description="Client-side limit; None = off.")

    def resolved_key(self) -> str | None:
        key = None
        if self.api_key is not None:
            key = self.api_key.get_secret_value() or None
        elif self.api_key_env:
            checked_key_env(self.api_key_env)
            key = os.environ.get(self.api_key_env)
        if key and url_secrets(self.base_url):
            raise InputError(
                f"URL {self.public_base_url} carries credentials (user:key@) and an API key is given too: give the "
                "key one way (--api-key-env for vLLM's --api-key; URL credentials go as HTTP Basic auth)"
            )
        return key

    @property
    def public_base_url(self) -> str:
        """The base URL as it may be shown: without credentials."""
        return public_url(self.base_url)

    def secrets(self) -> list[str]:
        """Every credential this config carries (the key; URL user and password of 6+ characters, as a
        shorter one would mask ordinary words): ``redact`` masks them in every message."""
        key = self.api_key.get_secret_value() if self.api_key is not None else None
        if key is None and self.api_key_env:
            key = os.environ.get(self.api_key_env)
        return [s for s in (key, *(u for u in url_secrets(self.base_url) if len(u) >= 6)) if s]

    @property
    def root_url(self) -> str:
        """The server root (``/health``, ``/metrics`` live there), i.e. the base URL without ``/v1``."""
        url = self.base_url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url


class RetryStats(BaseModel):
    """What the client did beyond one attempt per request: goes into run summaries."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    failures: int = 0
    retries_by_reason: dict[str, int] = Field(default_factory=dict)
    retry_wait_s: float = 0.0

    def count_retry(self, reason: str, wait_s: float) -> None:
        self.retries += 1
        self.retries_by_reason[reason] = self.retries_by_reason.get(reason, 0) + 1
        self.retry_wait_s = round(self.retry_wait_s + wait_s, 3)


class ServerReply(BaseModel):
    """One request's final answer with its timings (all seconds, ``time.perf_counter`` based)."""

    request_id: str
    status: int
    body: dict[str, Any] = Field(description="Response JSON; streamed chunks merged into the same shape.")
    attempts: int = 1
    latency_s: float = Field(description="Send of the final attempt to its last byte.")
    ttft_s: float | None = Field(None, description="Streaming: time to the first content chunk.")
    itl_s: list[float] = Field(default_factory=list, description="Streaming: gaps between content chunks.")
    chunk_tokens: list[int] = Field(default_factory=list, description="Streaming: tokens carried per chunk.")


class ServerRequestError(BackendUnavailableError):
    """A request failed for good (non-retryable answer, or retries exhausted). Message is redacted."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = "http", body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.body = body


class _Retryable(Exception):
    def __init__(self, reason: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret replaced by ``***`` (also its Bearer form), then anything else shaped
    like a credential (``checks.mask_secrets``: URL userinfo, key-shaped words, key variables' values)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return mask_secrets(text)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_wait(attempt: int, initial_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max, initial * 2**(attempt-1))]."""
    cap = min(max_s, initial_s * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(0, cap)


def completion_body(
    prompt_token_ids: list[int], spec: Any, model: str, *, stream: bool = False
) -> dict[str, Any]:
    """``/v1/completions`` body for token-id prompts from a ``GenerationSpec``.

    Every sampling field is explicit (``spec.to_openai()``): a server fills omitted fields from the
    model's ``generation_config.json``. Token ids come back as ``token_id:N`` strings so the output ids
    are exact, not re-tokenised text.
    """
    if hasattr(spec, "to_openai"):
        fields = dict(spec.to_openai(len(prompt_token_ids))["completions"])
    else:  # pragma: no cover - older spec without the translation helper
        fields = _fallback_fields(spec)
    # logprobs=0 still returns the chosen token per position: that is how a stream carries token ids.
    fields.setdefault("logprobs", 0)
    fields.pop("n", None)  # one choice per request; n>1 sampling is a separate request each
    body: dict[str, Any] = {
        "model": model,
        "prompt": list(prompt_token_ids),
        **fields,
        "return_tokens_as_token_ids": True,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    else:
        body["return_token_ids"] = True
    return body


def _fallback_fields(spec: Any) -> dict[str, Any]:
    v = spec.to_vllm_sampling_kwargs()
    fields = {k: v[k] for k in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "min_tokens",
                                 "stop_token_ids", "ignore_eos", "skip_special_tokens") if k in v}
    fields["max_tokens"] = v["max_tokens"]
    if v.get("seed") is not None:
        fields["seed"] = v["seed"]
    if v.get("logprobs") is not None:
        fields["logprobs"] = v["logprobs"]
    if v.get("stop"):
        fields["stop"] = v["stop"]
        fields["include_stop_str_in_output"] = True
    return fields


def estimated_tokens(body: dict[str, Any]) -> int:
    """Tokens a request may cost, for the tokens/min limit: prompt (ids, or chars/4) + max tokens."""
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt_tokens = len(prompt)
    elif isinstance(prompt, str):
        prompt_tokens = len(prompt) // 4 + 1
    else:
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4 + 1
    return prompt_tokens + int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)


@dataclass
class _StreamMerge:
    """Accumulates SSE chunks into one non-streamed-shaped body."""

    chat: bool
    text: list[str] = field(default_factory=list)
    tokens: list[Any] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[Any] = field(default_factory=list)
    chat_logprobs: list[Any] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, chunk: dict[str, Any]) -> int:
        """Merge one chunk; returns how many tokens it carried (0 for role/usage-only chunks)."""
        if not self.meta:
            self.meta = {k: chunk.get(k) for k in ("id", "object", "created", "model")}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        carried = 0
        for choice in chunk.get("choices") or []:
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            if choice.get("token_ids"):
                self.token_ids.extend(choice["token_ids"])
            lp = choice.get("logprobs")
            if self.chat:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    self.text.append(delta["content"])
                    carried = max(carried, 1)
                if lp and lp.get("content"):
                    self.chat_logprobs.extend(lp["content"])
                    carried = len(lp["content"])
            else:
                if choice.get("text"):
                    self.text.append(choice["text"])
                    carried = max(carried, 1)
                if lp and lp.get("tokens"):
                    self.tokens.extend(lp["tokens"])
                    self.token_logprobs.extend(lp.get("token_logprobs") or [])
                    self.top_logprobs.extend(lp.get("top_logprobs") or [])
                    carried = len(lp["tokens"])
        return carried

    def body(self) -> dict[str, Any]:
        text = "".join(self.text)
        choice: dict[str, Any] = {"index": 0, "finish_reason": self.finish_reason}
        if self.chat:
            choice["message"] = {"role": "assistant", "content": text}
            choice["logprobs"] = {"content": self.chat_logprobs} if self.chat_logprobs else None
        else:
            choice["text"] = text
            choice["logprobs"] = (
                {"tokens": self.tokens, "token_logprobs": self.token_logprobs, "top_logprobs": self.top_logprobs}
                if self.tokens else None
            )
        if self.token_ids:
            choice["token_ids"] = self.token_ids
        return {**self.meta, "choices": [choice], "usage": self.usage}


class ServerClient:
    """Async client over one aiohttp session (see module docstring). Use as ``async with``."""

    def __init__(self, config: ClientConfig, *, seed: int | None = None) -> None:
        self.config = config
        self.stats = RetryStats()
        self._key = config.resolved_key()
        self._rng = random.Random(seed)
        self._session: Any = None
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._request_limiter: Any = None
        self._token_limiter: Any = None
        if config.requests_per_minute or config.tokens_per_minute:
            from aiolimiter import AsyncLimiter

            if config.requests_per_minute:
                self._request_limiter = AsyncLimiter(config.requests_per_minute, 60.0)
            if config.tokens_per_minute:
                self._token_limiter = AsyncLimiter(config.tokens_per_minute, 60.0)

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> ServerClient:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.config.max_concurrency, limit_per_host=0, ttl_dns_cache=300)
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._session = aiohttp.ClientSession(
            connector=connector, headers=headers, json_serialize=json.dumps, raise_for_status=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def redact(self, text: str) -> str:
        return redact(text, self.config.secrets())

    def url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + "/" + path.lstrip("/")

    # ------------------------------------------------------------------ requests
    async def get_json(self, path: str, *, root: bool = False) -> tuple[int, Any]:
        """One GET (no retries: used for probing). ``root=True`` resolves against the server root."""
        import aiohttp

        url = (self.config.root_url.rstrip("/") + "/" + path.lstrip("/")) if root else self.url(path)
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s, sock_connect=self.config.connect_timeout_s)
        try:
            async with self._session.get(url, timeout=timeout) as resp:
                text = await resp.text()
        except (asyncio.TimeoutError, TimeoutError):
            raise BackendUnavailableError(
                f"GET {public_url(url)}: no answer within {self.config.timeout_s:g} s; check the address or "
                "that the server is up") from None
        except aiohttp.ClientError as err:
            reason = err.os_error if isinstance(err, aiohttp.ClientConnectorError) else f"{type(err).__name__}: {err}"
            raise BackendUnavailableError(self.redact(
                f"GET {public_url(url)}: cannot connect ({reason}); start the server (hf2vllm serve) or fix the "
                "host/port")) from None
        try:
            return resp.status, json.loads(text)
        except json.JSONDecodeError:
            return resp.status, text

    async def post(
        self, path: str, body: dict[str, Any], *, request_id: str, stream: bool | None = None
    ) -> ServerReply:
        """POST ``body`` to ``path`` (relative to the base URL) with retries; returns the final reply."""
        stream = bool(body.get("stream")) if stream is None else stream
        if stream and not body.get("stream"):
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        self.stats.requests += 1
        attempts = 0

        async def one_attempt() -> ServerReply:
            nonlocal attempts
            attempts += 1
            self.stats.attempts += 1
            await self._throttle(body)
            async with self._semaphore:
                return await self._attempt(path, body, request_id, stream)

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self.config.max_retries + 1),
            wait=self._wait,
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            reply = await retrying(one_attempt)
        except _Retryable as retry:
            self.stats.failures += 1
            raise ServerRequestError(
                self.redact(f"request {request_id}: {retry} (gave up after {attempts} attempts)"), reason=retry.reason
            ) from None
        except ServerRequestError:
            self.stats.failures += 1
            raise
        reply.attempts = attempts
        return reply

    def _wait(self, state: RetryCallState) -> float:
        """``Retry-After`` when the server sent one, else exponential backoff with full jitter."""
        err = state.outcome.exception() if state.outcome else None
        if isinstance(err, _Retryable) and err.retry_after_s is not None:
            if err.retry_after_s > MAX_RETRY_AFTER_S:
                # A server asking for minutes is down for this run: give up now instead of hanging.
                raise err
            return err.retry_after_s
        return backoff_wait(state.attempt_number, self.config.backoff_initial_s, self.config.backoff_max_s, self._rng)

    def _count_retry(self, state: RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self.stats.count_retry(err.reason if isinstance(err, _Retryable) else "other", wait)

    async def _throttle(self, body: dict[str, Any]) -> None:
        if self._request_limiter is not None:
            await self._request_limiter.acquire()
        if self._token_limiter is not None:
            cost = min(estimated_tokens(body), int(self._token_limiter.max_rate))
            await self._token_limiter.acquire(cost)

    async def _attempt(self, path: str, body: dict[str, Any], request_id: str, stream: bool) -> ServerReply:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s, sock_connect=self.config.connect_timeout_s)
        start = time.perf_counter()
        try:
            async with self._session.post(
                self.url(path), data=json.dumps(body), headers={"X-Request-Id": request_id}, timeout=timeout
            ) as resp:
                if resp.status != 200:
                    text = await resp.text()
                    self._raise_for(resp.status, text, resp.headers.get("Retry-After"), request_id)
                if stream:
                    return await self._read_stream(resp, request_id, start, chat="chat" in path)
                data = await resp.json(loads=json.loads, content_type=None)
                return ServerReply(
                    request_id=request_id, status=resp.status, body=data, latency_s=time.perf_counter() - start
                )
        except (asyncio.TimeoutError, TimeoutError):
            raise _Retryable("timeout", f"no complete answer within {self.config.timeout_s:g} s") from None
        except aiohttp.ClientConnectorError as err:
            raise _Retryable("connection", f"cannot connect to {self.config.public_base_url}: {err.os_error}") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as err:
            raise _Retryable("connection", self.redact(f"connection dropped: {type(err).__name__}: {err}")) from None

    def _raise_for(self, status: int, text: str, retry_after: str | None, request_id: str) -> None:
        detail = self.redact(_error_message(text))
        if status in RETRYABLE_STATUS or status >= 500:
            reason = "429" if status == 429 else ("5xx" if status >= 500 else str(status))
            raise _Retryable(reason, f"HTTP {status}: {detail}", parse_retry_after(retry_after))
        raise ServerRequestError(
            f"request {request_id}: HTTP {status} from {self.config.public_base_url}: {detail}", status=status,
            body=self.redact(text),
        )

    async def _read_stream(self, resp: Any, request_id: str, start: float, *, chat: bool) -> ServerReply:
        merge = _StreamMerge(chat=chat)
        ttft: float | None = None
        last: float | None = None
        gaps: list[float] = []
        per_chunk: list[int] = []
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            chunk = json.loads(payload)
            if "error" in chunk and not chunk.get("choices"):
                raise _Retryable("stream-error",
                                 self.redact(f"error inside stream: {_error_message(json.dumps(chunk))}"))
            carried = merge.add(chunk)
            if carried:
                now = time.perf_counter()
                if ttft is None:
                    ttft = now - start
                elif last is not None:
                    gaps.append(now - last)
                last = now
                per_chunk.append(carried)
        if merge.finish_reason is None:
            # The stream ended without a finish reason: the connection was cut mid-answer.
            raise _Retryable("connection", "stream ended before the answer finished")
        return ServerReply(
            request_id=request_id, status=resp.status, body=merge.body(), latency_s=time.perf_counter() - start,
            ttft_s=ttft, itl_s=gaps, chunk_tokens=per_chunk,
        )

    # ------------------------------------------------------------------ many requests
    async def run_all(
        self,
        jobs: Iterable[tuple[str, str, dict[str, Any]]],
        *,
        stream: bool = False,
        return_exceptions: bool = False,
    ) -> AsyncIterator[ServerReply | ServerRequestError]:
        """Send ``(request_id, path, body)`` jobs, at most ``max_concurrency`` in flight, yielding replies
        as they finish. Jobs are pulled lazily, so a list of millions never becomes millions of tasks.
        With ``return_exceptions`` a failed request yields its ``ServerRequestError`` instead of raising.
        """
        iterator: Iterator[tuple[str, str, dict[str, Any]]] = iter(jobs)
        pending: set[asyncio.Task[ServerReply]] = set()
        window = self.config.max_concurrency * 2  # keep the semaphore fed without unbounded task growth

        def refill() -> None:
            while len(pending) < window:
                try:
                    rid, path, body = next(iterator)
                except StopIteration:
                    return
                pending.add(asyncio.ensure_future(self.post(path, body, request_id=rid, stream=stream)))

        refill()
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    pending.discard(task)
                    err = task.exception()
                    if err is not None:
                        if return_exceptions and isinstance(err, ServerRequestError):
                            yield err
                            continue
                        raise err
                    yield task.result()
                refill()
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task


def _error_message(text: str) -> str:
    """The human part of an OpenAI-style error body, shortened to one line."""
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            err = data.get("error", data)
            if isinstance(err, dict):
                text = str(err.get("message") or err.get("detail") or err)
            else:
                text = str(err)
    except (json.JSONDecodeError, TypeError):
        pass
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."
