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

    Requests are sorted by length and batched (``batch_size``) with left padding, the layout
    ``generate()`` needs for decoder-only models; results come back in the caller's order.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 8,
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

    def describe(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "device": self.device, "batch_size": self.batch_size}

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
        for start in range(0, len(order), self.batch_size):
            batch_idx = order[start : start + self.batch_size]
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
        """One forward pass over prompt + continuation per request; logits at position i predict i+1."""
        import torch

        scored = []
        for req, cont in zip(requests, continuations, strict=True):
            cont = list(cont)
            if not cont:
                scored.append(ScoredContinuation(request_id=req.id, steps=[]))
                continue
            ids = torch.tensor([list(req.prompt_token_ids) + cont], dtype=torch.long, device=self.device)
            logits = self.model(input_ids=ids).logits[0]
            start = len(req.prompt_token_ids) - 1
            logp = torch.log_softmax(logits[start : start + len(cont)].float(), dim=-1)
            steps = []
            for pos, tok in enumerate(cont):
                values, top_ids = torch.topk(logp[pos], top_k) if top_k else (torch.empty(0), torch.empty(0))
                top = {int(i): float(v) for i, v in zip(top_ids.tolist(), values.tolist(), strict=True)}
                steps.append(StepLogprobs(token_id=tok, logprob=float(logp[pos, tok]), top=top))
            scored.append(ScoredContinuation(request_id=req.id, steps=steps))
        return scored

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
        logp = torch.log_softmax(logits[pos][row].float(), dim=-1)
        top = {}
        if top_k:
            values, ids = torch.topk(logp, top_k)
            top = {int(i): float(v) for i, v in zip(ids.tolist(), values.tolist(), strict=True)}
        steps.append(StepLogprobs(token_id=tok, logprob=float(logp[tok]), top=top))
    return steps
