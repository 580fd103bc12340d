"""Run load profiles against an OpenAI-compatible server and measure every request from its stream.

Usage::

    workload = workload_from_requests(load_requests(path), max_tokens=64)
    report = asyncio.run(run_serve(ServeOptions(url="http://127.0.0.1:8000/v1", concurrency=[1, 4]), workload))

Requests go through ``hf2vllm.server.client.ServerClient`` with retries off (a retried request would
mix two attempts into one latency). Each load level first sends ``warmup_requests`` that are not
measured, then at most ``max_requests``; no new request starts after ``time_cap_s``, so a run stops by
itself even against a slow server.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.bench.metrics import saturation_load, summarise_load_point, throughput_knee
from hf2vllm.bench.schema import SLO, LoadPointResult, RequestTiming, ServeReport
from hf2vllm.bench.serve.profiles import LoadProfile, arrival_offsets
from hf2vllm.checks import public_url
from hf2vllm.requests import ChatRequest


class WorkItem(BaseModel):
    """One request to send: endpoint path and body (without ``model``/``stream``, added per run)."""

    path: str = Field(description='"/completions" or "/chat/completions"')
    body: dict[str, Any]


class ServeOptions(BaseModel):
    url: str = Field(description="OpenAI base URL, e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(None, description="Served model name; None = the first one /models lists.")
    api_key_env: str | None = None
    concurrency: list[int] = Field(default_factory=list, description="Closed-loop levels.")
    rates: list[float] = Field(default_factory=list, description="Open-loop mean requests/s (inf allowed).")
    burstiness: float = Field(1.0, gt=0)
    max_requests: int = Field(32, ge=1, description="Measured requests per load level.")
    warmup_requests: int = Field(2, ge=0)
    time_cap_s: float = Field(120.0, gt=0, description="No new request starts after this long, per level.")
    request_timeout_s: float = Field(300.0, gt=0)
    slo: SLO = Field(default_factory=SLO)
    slo_attainment_target: float = Field(0.9, gt=0, le=1)
    seed: int = 0

    def profiles(self) -> list[LoadProfile]:
        levels = [LoadProfile(kind="concurrency", value=c) for c in self.concurrency]
        levels += [LoadProfile(kind="rate", value=r, burstiness=self.burstiness) for r in self.rates]
        return levels


def workload_from_requests(requests: Sequence[ChatRequest], *, max_tokens: int, fixed_output_length: bool = True,
                           temperature: float = 0.0) -> list[WorkItem]:
    """Chat requests go to ``/chat/completions``, plain prompts to ``/completions`` (the server templates).

    ``fixed_output_length`` sends vLLM's ``ignore_eos`` so every answer is exactly ``max_tokens`` long.
    """
    items = []
    for req in requests:
        common: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
        if fixed_output_length:
            common["ignore_eos"] = True
        if req.messages is not None:
            items.append(WorkItem(path="/chat/completions", body={"messages": req.messages, **common}))
        else:
            items.append(WorkItem(path="/completions", body={"prompt": req.prompt, **common}))
    return items


def _timing_from_reply(reply: Any, sent: float, origin: float) -> RequestTiming:
    start = sent - origin
    ttft = reply.ttft_s
    times: list[float] = []
    if ttft is not None:
        times.append(start + ttft)
        for gap in reply.itl_s:
            times.append(times[-1] + gap)
    usage = (reply.body or {}).get("usage") or {}
    output_tokens = int(usage.get("completion_tokens") or sum(reply.chunk_tokens))
    return RequestTiming(
        start=start,
        first_token=None if ttft is None else start + ttft,
        end=start + reply.latency_s,
        token_times=times,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=output_tokens,
    )


class _Sender:
    def __init__(self, client: Any, model: str, items: Sequence[WorkItem]) -> None:
        self.client = client
        self.model = model
        self.items = items
        self.counter = 0

    async def send(self, index: int, origin: float, tag: str) -> RequestTiming:
        item = self.items[index % len(self.items)]
        self.counter += 1
        body = {"model": self.model, **item.body, "stream": True, "stream_options": {"include_usage": True}}
        sent = time.perf_counter()
        try:
            reply = await self.client.post(item.path, body, request_id=f"bench-{tag}-{self.counter}", stream=True)
        except Exception as err:  # noqa: BLE001 - a failed request is a data point, not a crash
            now = time.perf_counter()
            return RequestTiming(start=sent - origin, end=now - origin, ok=False,
                                 error=self.client.redact(str(err))[:300])
        return _timing_from_reply(reply, sent, origin)


async def _closed_loop(sender: _Sender, concurrency: int, count: int, cap_s: float, first_index: int,
                       progress: Callable[[int], None]) -> tuple[list[RequestTiming], float, bool]:
    origin = time.perf_counter()
    next_index = 0
    timings: list[RequestTiming] = []
    capped = False

    async def worker() -> None:
        nonlocal next_index, capped
        while next_index < count:
            if time.perf_counter() - origin > cap_s:
                capped = True
                return
            index = next_index
            next_index += 1
            timings.append(await sender.send(first_index + index, origin, "c"))
            progress(1)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return timings, time.perf_counter() - origin, capped


async def _open_loop(sender: _Sender, rate: float, burstiness: float, count: int, cap_s: float, first_index: int,
                     seed: int, progress: Callable[[int], None]) -> tuple[list[RequestTiming], float, bool]:
    origin = time.perf_counter()
    tasks = []
    capped = False
    for index, offset in enumerate(arrival_offsets(count, rate, burstiness, seed)):
        if offset > cap_s:
            capped = True
            break
        delay = offset - (time.perf_counter() - origin)
        if delay > 0:
            await asyncio.sleep(delay)

        async def one(i: int = index) -> RequestTiming:
            timing = await sender.send(first_index + i, origin, "r")
            progress(1)
            return timing

        tasks.append(asyncio.ensure_future(one()))
    timings = list(await asyncio.gather(*tasks))
    return timings, time.perf_counter() - origin, capped


async def resolve_model_name(client: Any) -> str:
    status, data = await client.get_json("/models")
    if status != 200 or not isinstance(data, dict) or not data.get("data"):
        from hf2vllm.errors import BackendUnavailableError

        fix = {401: "the server wants an API key: --api-key-env VAR with VAR holding it",
               403: "the key was rejected: --api-key-env VAR with VAR holding the server's key"}.get(
            status, "check the base URL (it ends in /v1), or pass --model")
        raise BackendUnavailableError(f"{client.config.public_base_url}/models answered {status}; {fix}")
    return str(data["data"][0]["id"])


async def run_load_point(client: Any, model: str, items: Sequence[WorkItem], profile: LoadProfile,
                         options: ServeOptions, progress: Callable[[int], None] | None = None) -> tuple[LoadPointResult, list[RequestTiming]]:
    """Warm up, then measure one load level; returns its summary and the raw per-request timings."""
    sender = _Sender(client, model, items)
    tick = progress or (lambda _n: None)
    if options.warmup_requests:
        warm_conc = int(profile.value) if profile.kind == "concurrency" else min(options.warmup_requests, 4)
        await _closed_loop(sender, max(1, min(warm_conc, options.warmup_requests)), options.warmup_requests,
                           options.time_cap_s, 0, lambda _n: None)
    # Measured requests start again from the first item, as `vllm bench serve` does after its warm-ups.
    first = 0
    if profile.kind == "concurrency":
        timings, _, capped = await _closed_loop(sender, int(profile.value), options.max_requests,
                                                       options.time_cap_s, first, tick)
    else:
        timings, _, capped = await _open_loop(sender, profile.value, profile.burstiness, options.max_requests,
                                                     options.time_cap_s, first, options.seed, tick)
    # Duration is first start to last end of the measured requests (vLLM's definition), not loop set-up.
    result = summarise_load_point(
        timings, profile=profile.kind, load=profile.value,
        burstiness=profile.burstiness if profile.kind == "rate" else None,
        slo=options.slo, stopped_by_time_cap=capped,
    )
    result.errors = distinct_errors(timings)
    return result, timings


_REQUEST_ID = re.compile(r"^request \S+: ")
_GAVE_UP = re.compile(r" \(gave up after \d+ attempts?\)$")


def distinct_errors(timings: Sequence[RequestTiming]) -> dict[str, int]:
    """The failed requests' errors without their request ids, most frequent first: the HTTP status and the
    server's message, so 32 identical 500s are one line."""
    from hf2vllm.checks import mask_secrets

    counts: dict[str, int] = {}
    for timing in timings:
        if not timing.ok:
            text = mask_secrets(_GAVE_UP.sub("", _REQUEST_ID.sub("", timing.error or "unknown error")))
            counts[text] = counts.get(text, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def failure_summary(report: ServeReport) -> tuple[int, int, dict[str, int]]:
    """(failed, sent, distinct errors with counts) over every load level of ``report``."""
    failed = sum(p.failed for p in report.points)
    sent = sum(p.requests for p in report.points)
    errors: dict[str, int] = {}
    for point in report.points:
        for text, count in point.errors.items():
            errors[text] = errors.get(text, 0) + count
    return failed, sent, dict(sorted(errors.items(), key=lambda item: -item[1]))


async def run_serve(
    options: ServeOptions,
    items: Sequence[WorkItem],
    *,
    prompt_source: str = "",
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    on_point: Callable[[LoadPointResult], None] | None = None,
    keep_timings: dict[str, list[RequestTiming]] | None = None,
) -> ServeReport:
    """Every load level of ``options`` in order (concurrency levels, then rates)."""
    from hf2vllm.server.client import ClientConfig, ServerClient

    if not items:
        from hf2vllm.errors import InputError

        raise InputError("serve benchmark: the workload is empty")
    profiles = options.profiles()
    if not profiles:
        from hf2vllm.errors import InputError

        raise InputError("serve benchmark: give at least one --concurrency or --rate level")
    widest = max([int(p.value) for p in profiles if p.kind == "concurrency"] + [options.max_requests, 1])
    config = ClientConfig(base_url=options.url, api_key_env=options.api_key_env, max_retries=0,
                          timeout_s=options.request_timeout_s, max_concurrency=max(widest, 1))
    points: list[LoadPointResult] = []
    async with ServerClient(config, seed=options.seed) as client:
        model = options.model or await resolve_model_name(client)
        for profile in profiles:
            tick = progress(profile.label, options.max_requests) if progress else None
            point, timings = await run_load_point(client, model, items, profile, options, tick)
            points.append(point)
            if keep_timings is not None:
                keep_timings[profile.label] = timings
            if on_point:
                on_point(point)
    max_tokens = int(items[0].body.get("max_tokens", 0))
    # Saturation compares loads of one kind: the open-loop rates when there are any (that is how
    # capacity is usually stated), else the concurrency levels.
    kind = "rate" if any(p.profile == "rate" for p in points) else "concurrency"
    same_kind = [p for p in points if p.profile == kind]
    return ServeReport(
        url=public_url(options.url),
        model=model,
        prompt_source=prompt_source,
        output_tokens_per_request=max_tokens,
        warmup_requests=options.warmup_requests,
        slo=options.slo,
        slo_attainment_target=options.slo_attainment_target,
        points=points,
        saturation_profile=kind,
        saturation_load=saturation_load(same_kind, options.slo_attainment_target) if not options.slo.is_empty() else None,
        throughput_knee_load=throughput_knee(same_kind),
    )

