"""Transformers backend: ``model.generate()`` in left-padded batches on the shared prompt token ids."""

from __future__ import annotations

import time
from collections.abc import Sequence
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
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

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
        # A vision-language checkpoint needs its processor and image-text model class (multimodal/).
        self.processor = None
        if is_vision_language(model):
            self.processor = load_processor(model, trust_remote_code=trust_remote_code)
            self.model = load_vl_model(
                model, dtype=resolve_torch_dtype(dtype), device=device, trust_remote_code=trust_remote_code
            )
        else:
            self.model = AutoModelForCausalLM.from_pretrained(
                model, dtype=resolve_torch_dtype(dtype), trust_remote_code=trust_remote_code, **extra
            ).to(device)
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

    def describe(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype, "device": self.device, "batch_size": self.batch_size,
            "max_batch_tokens": self.max_batch_tokens,
        }

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
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_token_ids))
        results: dict[int, GenerationResult] = {}
        gen_kwargs = spec.to_hf_generate_kwargs()
        # This backend asks for raw logits itself (below); processed scores would only cost memory.
        gen_kwargs.pop("return_dict_in_generate", None)
        gen_kwargs.pop("output_scores", None)
        if spec.stop_strings:
            gen_kwargs["tokenizer"] = self.tokenizer
        want_scores = spec.logprobs is not None
        lengths = [len(r.prompt_token_ids) for r in requests]
        for batch_idx in length_batches(order, lengths, spec.max_new_tokens, self.batch_size, self.max_batch_tokens):
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
    ) -> list[ScoredContinuation]:
        """``score`` plus what a greedy verdict needs: with ``spec``, each step's raw top logits and the
        token ``generate()`` would pick there (argmax after the logits processors it builds from the
        spec). ``alone=True`` runs each sequence in a batch of its own (no padding), ``False`` in
        length-sorted padded batches, ``None`` the faster of the two here (``prefers_alone``); the other
        layout gives the same numbers under another batch composition: the reference's own noise."""
        import torch

        scored: dict[int, ScoredContinuation] = {}
        rows = [list(req.prompt_token_ids) + list(cont) for req, cont in zip(requests, continuations, strict=True)]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for i in order:
            if not continuations[i]:
                scored[i] = ScoredContinuation(request_id=requests[i].id, steps=[], greedy_token_ids=[])
        todo = [i for i in order if continuations[i]]
        batches = (
            [[i] for i in todo] if (self.prefers_alone if alone is None else alone)
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


def length_batches(
    order: Sequence[int], lengths: Sequence[int], max_new_tokens: int, batch_size: int, max_batch_tokens: int
) -> list[list[int]]:
    """Cut ``order`` (indices sorted by prompt length) into batches of at most ``batch_size`` rows
    and ``max_batch_tokens`` padded positions, where at least half the positions are real tokens
    (a long prompt does not drag short ones through its padding); a request over budget runs alone."""
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        rows = [*current, i]
        width = max(lengths[j] for j in rows) + max_new_tokens
        real = sum(lengths[j] + max_new_tokens for j in rows)
        if current and (len(rows) > batch_size or len(rows) * width > max_batch_tokens or 2 * real < len(rows) * width):
            batches.append(current)
            rows = [i]
        current = rows
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
