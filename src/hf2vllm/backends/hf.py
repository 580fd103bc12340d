"""Transformers backend: ``model.generate()`` in left-padded batches on the shared prompt token ids."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf2vllm.backends.base import (
    Backend,
    GenerationResult,
    ProgressCallback,
    ScoredContinuation,
    StepLogprobs,
    register_backend,
)
from hf2vllm.dtypes import resolve_torch_dtype
from hf2vllm.multimodal.hf_generate import generate_vl, load_vl_model
from hf2vllm.multimodal.prepare import is_vision_language, load_processor
from hf2vllm.requests import PreparedRequest
from hf2vllm.spec import GenerationSpec


logger = logging.getLogger(__name__)

PREFILL_CHUNK_TOKENS = 256
"""Prompt tokens per prefill step: one step on one CPU thread takes ~0.5 s for a 135M model, so a stop
request is honoured quickly."""

PREFILL_BUDGET_BYTES = 2 << 30
"""Most KV cache kept for prefilled prompts; prompts beyond it are scored by the full pass as before."""


@dataclass
class PromptPrefix:
    """The model's KV cache over the first ``length`` tokens of one prompt, computed ahead of teacher forcing."""

    cache: Any
    length: int


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads (process-wide), then restore the previous count.

    Two thread pools on two cores spin against each other: on this machine HF's noise pass took 5.8 s
    beside vLLM's shutdown and 2.0 s alone. Leaving the busy core to the other work avoids that."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@register_backend("hf")
class HFBackend(Backend):
    """Hugging Face Transformers ``AutoModelForCausalLM`` on CPU (or CUDA when ``device="cuda"``).

    Requests are sorted by length and batched with left padding, the layout ``generate()`` needs for
    decoder-only models; results come back in the caller's order. A batch holds at most
    ``batch_size`` requests and at most ``max_batch_tokens`` padded positions (width of the longest
    prompt plus ``max_new_tokens``, times rows): short prompts go in large batches, since a decode
    step of 32 rows costs on CPU about what one of 8 does, while a batch of long prompts stays small
    enough that its padding and KV cache do not dominate.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 32,
        max_batch_tokens: int = 16384,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
        device_map: str | dict[str, Any] | None = None,
        max_memory: dict[str, Any] | None = None,
        offload_folder: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from hf2vllm.backends.placement import execution_device, from_pretrained_placement

        start = time.perf_counter()
        self.model_path = Path(model)
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        extra: dict[str, Any] = {}
        if attn_implementation:
            extra["attn_implementation"] = attn_implementation
        # Several devices (or a memory cap): Accelerate places the layers, hf2vllm only asks (backends/placement.py).
        placement = from_pretrained_placement(device_map, max_memory, offload_folder)
        self.max_memory = placement.get("max_memory")
        self._own_offload_folder = placement.get("offload_folder") if placement and not offload_folder else None
        # A vision-language checkpoint needs its processor and image-text model class (multimodal/).
        self.processor = None
        if is_vision_language(model):
            self.processor = load_processor(model, trust_remote_code=trust_remote_code)
            self.model = load_vl_model(
                model, dtype=resolve_torch_dtype(dtype), device=device, trust_remote_code=trust_remote_code,
                placement=placement,
            )
        else:
            self.model = AutoModelForCausalLM.from_pretrained(
                model, dtype=resolve_torch_dtype(dtype), trust_remote_code=trust_remote_code, **extra, **placement
            )
            if not placement:
                self.model = self.model.to(device)
        self.device_map = getattr(self.model, "hf_device_map", None) if placement else None
        if self.device_map:
            self.device = execution_device(self.device_map, device)
        self.model.eval()
        self.pad_token_id = self._pad_token_id()
        torch.set_grad_enabled(False)
        self.load_seconds = time.perf_counter() - start

    def _pad_token_id(self) -> int:
        tok = self.tokenizer
        for candidate in (tok.pad_token_id, tok.eos_token_id, self.model.generation_config.pad_token_id):
            if isinstance(candidate, int):
                return candidate
        return 0

    @property
    def prefers_alone(self) -> bool:
        """On a CPU a forward pass costs its token count, so padding is pure waste and sequences run one by
        one (bundled set, 64 new tokens: 17.9 s batched); an accelerator wants batches."""
        return str(self.device).startswith("cpu")

    def kv_bytes_per_token(self) -> int:
        """Bytes of KV cache one token takes (keys and values, every layer), from the model's config."""
        config = self.model.config.get_text_config() if hasattr(self.model.config, "get_text_config") else self.model.config
        heads = int(getattr(config, "num_attention_heads", 1) or 1)
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or int(getattr(config, "hidden_size", heads)) // heads)
        layers = int(getattr(config, "num_hidden_layers", 1) or 1)
        return 2 * layers * kv_heads * head_dim * self.model.dtype.itemsize

    def prefill_prompts(
        self,
        requests: Sequence[PreparedRequest],
        *,
        stop: threading.Event,
        threads: int,
        max_model_len: int | None = None,
        budget_bytes: int = PREFILL_BUDGET_BYTES,
    ) -> dict[str, PromptPrefix]:
        """Each prompt's KV cache (all its tokens but the last), in chunks of ``PREFILL_CHUNK_TOKENS``,
        with ``threads`` intra-op threads, until ``stop`` is set.

        Meant for a core that would otherwise idle: on a CPU, vLLM's engine load runs on one core for
        ~15 s. ``teacher_force`` then runs only the rest of each sequence (a prompt cut short by ``stop``
        keeps the part done). Prompts are taken in token order so that one sharing the start of the
        previous one (a system prompt, a chat template's header) starts from a copy of its cache, as
        vLLM's own prefix cache does. A cached pass is another computation than one full pass, the same
        split ``generate()`` makes between prefill and decode; the reference's noise is measured against
        it (``parity.noise``). A failure here costs only the head start.
        """
        import torch

        if self.processor is not None:  # image-text models take pixels with the prompt: no split prefill
            return {}
        prefixes: dict[str, PromptPrefix] = {}
        per_token, budget = self.kv_bytes_per_token(), budget_bytes
        previous: tuple[list[int], Any] = ([], None)
        try:
            with torch_threads(threads), torch.inference_mode():
                for req in sorted(requests, key=lambda r: list(r.prompt_token_ids)):
                    ids = list(req.prompt_token_ids[:-1])
                    if stop.is_set():
                        break
                    if not ids or len(ids) * per_token > budget or (max_model_len and len(ids) >= max_model_len):
                        continue
                    done = _shared_start(previous[0], ids)
                    cache = _cache_prefix(previous[1], done) if done else None
                    done = done if cache is not None else 0
                    while done < len(ids) and not stop.is_set():
                        chunk = torch.tensor([ids[done : done + PREFILL_CHUNK_TOKENS]], device=self.device)
                        cache = self._forward(chunk, cache, keep=1).past_key_values
                        done += chunk.shape[1]
                    if done and not _plain_cache(cache):
                        return {}  # sliding-window or recurrent caches: scored by full passes instead
                    if done:
                        prefixes[req.id] = PromptPrefix(cache=cache, length=done)
                        budget -= done * per_token
                        previous = (ids[:done], cache)
        except Exception as err:  # noqa: BLE001 - an optimisation must not fail the run
            logger.warning("prompt prefill stopped (%s: %s); teacher forcing runs full passes", type(err).__name__, err)
            return {}
        return prefixes

    def _forward(self, ids: Any, cache: Any, keep: int | None) -> Any:
        extra: dict[str, Any] = {"past_key_values": cache, "use_cache": True}
        if keep is not None and self.model._supports_logits_to_keep():
            extra["logits_to_keep"] = keep
        return self.model(input_ids=ids, **extra)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "dtype": self.dtype, "device": self.device, "batch_size": self.batch_size,
            "max_batch_tokens": self.max_batch_tokens,
        }
        if self.device_map:
            from hf2vllm.backends.placement import placement_summary

            described["placement"] = placement_summary(self.device_map)
            if self.max_memory:
                described["max_memory"] = {str(k): v for k, v in self.max_memory.items()}
        return described

    def generate_batches(self, requests: Sequence[PreparedRequest], spec: GenerationSpec) -> list[list[int]]:
        """The ``generate()`` calls that ``generate(requests, spec)`` makes, as index lists into ``requests``.

        A batch of this plan given back to ``generate`` runs as that one batch (every prefix of a batch was
        accepted when it was cut), so work split along it gives the same numbers as one call: the Ray
        reference (reference/ray_workers.py) shards by it."""
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_token_ids))
        if self.processor is not None:
            return [[i] for i in order]
        lengths = [len(r.prompt_token_ids) for r in requests]
        return length_batches(order, lengths, spec.max_new_tokens, self.batch_size, self.max_batch_tokens)

    def generate(
        self,
        requests: Sequence[PreparedRequest],
        spec: GenerationSpec,
        *,
        progress: ProgressCallback | None = None,
    ) -> list[GenerationResult]:
        import torch

        if self.processor is not None:
            return self._generate_vl(requests, spec, progress)
        results: dict[int, GenerationResult] = {}
        gen_kwargs = spec.to_hf_generate_kwargs()
        # This backend asks for raw logits itself (below); processed scores would only cost memory.
        gen_kwargs.pop("return_dict_in_generate", None)
        gen_kwargs.pop("output_scores", None)
        if spec.stop_strings:
            gen_kwargs["tokenizer"] = self.tokenizer
        want_scores = spec.logprobs is not None
        for batch_idx in self.generate_batches(requests, spec):
            prompts = [requests[i].prompt_token_ids for i in batch_idx]
            width = max(len(p) for p in prompts)
            input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
            attention = torch.zeros((len(prompts), width), dtype=torch.long)
            for row, ids in enumerate(prompts):
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention[row, width - len(ids) :] = 1
            if spec.seed is not None:
                torch.manual_seed(spec.seed)
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                pad_token_id=self.pad_token_id,
                return_dict_in_generate=True,
                output_logits=want_scores,
                **gen_kwargs,
            )
            sequences = out.sequences[:, width:].tolist()
            for row, i in enumerate(batch_idx):
                tokens = _trim_after_stop(sequences[row], spec, self.pad_token_id)
                step_logprobs = None
                if want_scores:
                    step_logprobs = _logprobs_from_logits(out.logits, row, tokens, spec.logprobs or 0)
                results[i] = GenerationResult(
                    request_id=requests[i].id,
                    output_token_ids=tokens,
                    text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                    finish_reason=_finish_reason(tokens, spec),
                    logprobs=step_logprobs,
                )
            if progress:
                progress(len(batch_idx))
        return [results[i] for i in range(len(requests))]

    def score(
        self, requests: Sequence[PreparedRequest], continuations: Sequence[Sequence[int]], *, top_k: int = 5
    ) -> list[ScoredContinuation]:
        """Forward passes over prompt + continuation (right-padded batches, so every real position
        sees exactly its own prefix); logits at position i predict token i+1."""
        return self.teacher_force(requests, continuations, top_k=top_k)

    def teacher_force(
        self,
        requests: Sequence[PreparedRequest],
        continuations: Sequence[Sequence[int]],
        *,
        top_k: int = 5,
        spec: GenerationSpec | None = None,
        alone: bool | None = None,
        progress: ProgressCallback | None = None,
        prefixes: Mapping[str, PromptPrefix] | None = None,
    ) -> list[ScoredContinuation]:
        """``score`` plus what a greedy verdict needs: with ``spec``, each step's raw top logits and the
        token ``generate()`` would pick there (argmax after the logits processors it builds from the
        spec). ``alone=True`` runs each sequence in a batch of its own (no padding), ``False`` in
        length-sorted padded batches, ``None`` the faster of the two here (``prefers_alone``); the other
        layout gives the same numbers under another batch composition: the reference's own noise.
        ``prefixes`` (from ``prefill_prompts``, used up here) spare an alone pass the prompt part done."""
        import torch

        scored: dict[int, ScoredContinuation] = {}
        rows = [list(req.prompt_token_ids) + list(cont) for req, cont in zip(requests, continuations, strict=True)]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for i in order:
            if not continuations[i]:
                scored[i] = ScoredContinuation(request_id=requests[i].id, steps=[], greedy_token_ids=[])
        todo = [i for i in order if continuations[i]]
        by_itself = self.prefers_alone if alone is None else alone
        cached = [i for i in todo if by_itself and prefixes and _batchable(prefixes.get(requests[i].id))]
        if cached:
            lengths = {i: prefixes[requests[i].id].length for i in cached}  # type: ignore[index]
            for batch in rest_batches(cached, {i: len(rows[i]) - lengths[i] for i in cached}, lengths,
                                      self.batch_size, self.max_batch_tokens):
                caches = [prefixes[requests[i].id] for i in batch]  # type: ignore[index]
                for i, raw in zip(batch, self._rest_of_sequences([rows[i] for i in batch], caches,
                                                                [len(requests[i].prompt_token_ids) for i in batch]),
                                  strict=True):
                    prompt_len = len(requests[i].prompt_token_ids)
                    scored[i] = self._scored(requests[i].id, rows[i][:prompt_len], list(continuations[i]),
                                             raw[: len(continuations[i])], top_k, spec)
                for prefix in caches:
                    prefix.cache = None  # its memory is not needed again
                if progress:
                    progress(len(batch))
            todo = [i for i in todo if i not in lengths]
        batches = (
            [[i] for i in todo] if by_itself
            else length_batches(todo, [len(r) for r in rows], 0, self.batch_size, self.max_batch_tokens)
        )
        for batch in batches:
            width = max(len(rows[i]) for i in batch)
            ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids[row, : len(rows[i])] = torch.tensor(rows[i], dtype=torch.long)
                mask[row, : len(rows[i])] = 1
            # Only positions that predict a continuation token need the vocabulary projection.
            first, extra = 0, {}
            if self.model._supports_logits_to_keep():
                first = min(len(requests[i].prompt_token_ids) for i in batch) - 1
                extra["logits_to_keep"] = width - first
            # Grad mode is per thread (the model may have been loaded on another): say it here.
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **extra).logits
                for row, i in enumerate(batch):
                    prompt_len = len(requests[i].prompt_token_ids)
                    cont = list(continuations[i])
                    start = prompt_len - 1 - first
                    raw = logits[row, start : start + len(cont)].float()
                    scored[i] = self._scored(requests[i].id, rows[i][:prompt_len], cont, raw, top_k, spec)
            if progress:
                progress(len(batch))
        return [scored[i] for i in range(len(requests))]

    def _rest_of_sequences(self, rows: list[list[int]], prefixes: list[PromptPrefix], prompt_lens: list[int]) -> list[Any]:
        """Raw logits from position ``prompt_len - 1`` on, for sequences whose prompt part is already in
        their ``prefixes``' caches: one padded batch, each cache left-padded to the longest, the rest of
        each sequence right-padded, positions given explicitly (the prompts' cached keys sit at theirs)."""
        import torch
        import torch.nn.functional as F

        done = [p.length for p in prefixes]
        longest = max(done)
        rest = [row[n:] for row, n in zip(rows, done, strict=True)]
        width = max(len(r) for r in rest)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), longest + width), dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        for b, (part, n) in enumerate(zip(rest, done, strict=True)):
            ids[b, : len(part)] = torch.tensor(part, dtype=torch.long)
            mask[b, longest - n : longest + len(part)] = 1
            positions[b] = torch.arange(n, n + width)
        layers = []
        for layer in range(len(prefixes[0].cache.layers)):
            keys, values = zip(*((p.cache.layers[layer].keys, p.cache.layers[layer].values) for p in prefixes), strict=True)
            layers.append(tuple(torch.cat([F.pad(t, (0, 0, longest - t.shape[-2], 0)) for t in group])
                                for group in (keys, values)))
        from transformers import DynamicCache

        first = min(p - 1 - n for p, n in zip(prompt_lens, done, strict=True))
        extra: dict[str, Any] = {"logits_to_keep": width - first} if self.model._supports_logits_to_keep() else {}
        with torch.inference_mode():
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                position_ids=positions.to(self.device), past_key_values=DynamicCache(layers),
                                use_cache=True, **extra).logits
        offset = width - logits.shape[1]  # logits start at this fed position
        return [logits[b, p - 1 - n - offset :].float() for b, (p, n) in enumerate(zip(prompt_lens, done, strict=True))]

    def _scored(
        self, request_id: str, prompt: list[int], cont: list[int], raw: Any, top_k: int, spec: GenerationSpec | None
    ) -> ScoredContinuation:
        import torch

        logp = torch.log_softmax(raw, dim=-1)
        steps = []
        k = top_k or (1 if spec is not None else 0)
        values, top_ids = torch.topk(raw, k, dim=-1) if k else (None, None)
        for pos, tok in enumerate(cont):
            top: dict[int, float] = {}
            top_logits = None
            if top_ids is not None and top_k:
                ids_here = top_ids[pos].tolist()
                top = {int(t): float(logp[pos, t]) for t in ids_here}
                if spec is not None:
                    top_logits = {int(t): float(v) for t, v in zip(ids_here, values[pos].tolist(), strict=True)}
            elif spec is not None and values is not None:
                top_logits = {int(top_ids[pos, 0]): float(values[pos, 0])}
            steps.append(StepLogprobs(token_id=tok, logprob=float(logp[pos, tok]), top=top, top_logits=top_logits))
        greedy = None
        if spec is not None:
            greedy = self._greedy_tokens(prompt, cont, raw, spec)
        return ScoredContinuation(request_id=request_id, steps=steps, greedy_token_ids=greedy)

    def _greedy_tokens(self, prompt: list[int], cont: list[int], raw: Any, spec: GenerationSpec) -> list[int]:
        """The token ``generate()`` picks at each position of ``cont`` given the tokens before it."""
        import torch

        processors = self.logits_processors(spec, len(prompt))
        if not processors:
            return [int(t) for t in raw.argmax(dim=-1).tolist()]
        sequence = torch.tensor([prompt + cont], dtype=torch.long, device=raw.device)
        picks = []
        for pos in range(len(cont)):
            scores = processors(sequence[:, : len(prompt) + pos], raw[pos : pos + 1].clone())
            picks.append(int(scores.argmax(dim=-1)))
        return picks

    def logits_processors(self, spec: GenerationSpec, prompt_length: int) -> Any:
        """The ``LogitsProcessorList`` that ``generate()`` builds for ``spec`` on a prompt of this length.

        Built by Transformers' own (private) ``GenerationMixin`` steps, the ones ``generate()`` calls, so
        a greedy verdict applies exactly what HF would: repetition penalty, minimum length before EOS,
        suppressed tokens, sequence bias, and whatever the installed version adds.
        """
        model = self.model
        config, _ = model._prepare_generation_config(None, **spec.to_hf_generate_kwargs())
        model._prepare_special_tokens(config, True, device=model.device, batch_size=1)
        return model._get_logits_processor(
            generation_config=config, input_ids_seq_length=prompt_length, device=model.device
        )

    def _generate_vl(
        self, requests: Sequence[PreparedRequest], spec: GenerationSpec, progress: ProgressCallback | None
    ) -> list[GenerationResult]:
        """VL models: one request at a time with the processor's pixels (see multimodal/hf_generate.py)."""

        def finish(req: PreparedRequest, tokens: list[int], out: Any) -> GenerationResult:
            tokens = _trim_after_stop(tokens, spec, self.pad_token_id)
            steps = None
            if spec.logprobs is not None:
                steps = _logprobs_from_logits(out.logits, 0, tokens, spec.logprobs)
            return GenerationResult(
                request_id=req.id,
                output_token_ids=tokens,
                text=self.tokenizer.decode(tokens, skip_special_tokens=True),
                finish_reason=_finish_reason(tokens, spec),
                logprobs=steps,
            )

        return generate_vl(
            self.model, self.processor, requests, spec,
            pad_token_id=self.pad_token_id, device=self.device, finish=finish, progress=progress,
        )

    def close(self) -> None:
        # Idempotent: tests may free an area's backend early and again at session end.
        self.__dict__.pop("model", None)
        if self._own_offload_folder:
            import shutil

            shutil.rmtree(self._own_offload_folder, ignore_errors=True)


def _shared_start(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two sequences share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _plain_cache(cache: Any) -> bool:
    """A full-attention ``DynamicCache`` (every layer a ``DynamicLayer``): the kind that can be cut and padded."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    return type(cache) is DynamicCache and all(type(layer) is DynamicLayer for layer in cache.layers)


def _batchable(prefix: PromptPrefix | None) -> bool:
    return prefix is not None and prefix.cache is not None and _plain_cache(prefix.cache)


def _cache_prefix(cache: Any, length: int) -> Any:
    """A copy of ``cache`` cut to its first ``length`` tokens, or None where that is not plain to do
    (only a full-attention ``DynamicCache`` is cut; sliding-window and recurrent caches start afresh)."""
    import copy

    if not _plain_cache(cache):
        return None
    copied = copy.deepcopy(cache)
    extra = copied.get_seq_length() - length
    if extra > 0:
        copied.crop(-extra)  # a negative count removes that many tokens (Transformers 4.4x and 5.x alike)
    return copied


def rest_batches(order: Sequence[int], rest: Mapping[int, int], cached: Mapping[int, int], batch_size: int,
                 max_batch_tokens: int) -> list[list[int]]:
    """Batches for scoring the rest of sequences over cached prompts, in order of whole length: at most
    ``batch_size`` rows and ``max_batch_tokens`` padded positions (cache included); at least 3/4 of the
    rest's positions real (what the layers compute, padded to the longest) and 2/3 of cache + rest (each
    cache is padded to the longest too: copied, and attended to).

    >>> rest_batches([0, 1, 2, 3, 4], {0: 65, 1: 60, 2: 900, 3: 27, 4: 50}, {0: 40, 1: 1700, 2: 800, 3: 1600, 4: 45},
    ...              32, 16384)
    [[4, 0], [3], [2], [1]]
    """
    def fits(rows: list[int]) -> bool:
        width, longest = max(rest[j] for j in rows), max(cached[j] for j in rows)
        return (len(rows) <= batch_size and len(rows) * (width + longest) <= max_batch_tokens
                and 4 * sum(rest[j] for j in rows) >= 3 * len(rows) * width
                and 3 * sum(cached[j] + rest[j] for j in rows) >= 2 * len(rows) * (longest + width))

    return _cut(sorted(order, key=lambda j: cached[j] + rest[j]), fits)


def length_batches(
    order: Sequence[int], lengths: Sequence[int], max_new_tokens: int, batch_size: int, max_batch_tokens: int
) -> list[list[int]]:
    """Cut ``order`` (indices sorted by prompt length) into batches of at most ``batch_size`` rows
    and ``max_batch_tokens`` padded positions, where at least half the positions are real tokens
    (a long prompt does not drag short ones through its padding); a request over budget runs alone."""
    def fits(rows: list[int]) -> bool:
        width = max(lengths[j] for j in rows) + max_new_tokens
        real = sum(lengths[j] + max_new_tokens for j in rows)
        return len(rows) <= batch_size and len(rows) * width <= max_batch_tokens and 2 * real >= len(rows) * width

    return _cut(order, fits)


def _cut(order: Sequence[int], fits: Callable[[list[int]], bool]) -> list[list[int]]:
    """``order`` cut into consecutive batches, each grown while ``fits`` accepts it (one row always fits)."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and not fits([*current, i]):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _trim_after_stop(tokens: list[int], spec: GenerationSpec, pad_token_id: int) -> list[int]:
    """Cut a batch row at its own end: generate() keeps padding rows that finished early.

    The stop token itself is kept (vLLM reports it too); only what follows it is padding.
    """
    stops = set(spec.stop_token_ids)
    for pos, tok in enumerate(tokens):
        if tok in stops and pos + 1 >= spec.min_new_tokens:
            return tokens[: pos + 1]
    return tokens


def _finish_reason(tokens: list[int], spec: GenerationSpec) -> str:
    if tokens and tokens[-1] in set(spec.stop_token_ids):
        return "stop"
    return "length" if len(tokens) >= spec.max_new_tokens else "stop"


def _logprobs_from_logits(logits: tuple[Any, ...], row: int, tokens: list[int], top_k: int) -> list[StepLogprobs]:
    """Raw (unprocessed) log-softmax per step, matching vLLM's default ``logprobs_mode="raw_logprobs"``."""
    import torch

    steps = []
    for pos, tok in enumerate(tokens):
        raw = logits[pos][row].float()
        logp = torch.log_softmax(raw, dim=-1)
        top, top_logits = {}, None
        if top_k:
            values, ids = torch.topk(raw, top_k)
            top = {int(i): float(logp[i]) for i in ids.tolist()}
            top_logits = {int(i): float(v) for i, v in zip(ids.tolist(), values.tolist(), strict=True)}
        steps.append(StepLogprobs(token_id=tok, logprob=float(logp[tok]), top=top, top_logits=top_logits))
    return steps
