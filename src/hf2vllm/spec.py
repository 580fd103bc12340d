"""``GenerationSpec``: one neutral description of generation settings, shared by every backend.

Each backend turns the spec into its own arguments (``to_hf_generate_kwargs`` for Transformers'
``generate()``, ``to_vllm_sampling_kwargs`` for ``vllm.SamplingParams``), so a comparison runs both
sides from the same resolved values instead of from each library's defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GenerationSpec(BaseModel):
    """Effective generation settings, with every default resolved (nothing left to a library)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(64, ge=1)
    min_new_tokens: int = Field(0, ge=0)
    do_sample: bool = False
    temperature: float = Field(1.0, ge=0.0)
    top_k: int | None = Field(None, ge=1, description="None means no top-k filtering.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0)
    stop_token_ids: list[int] = Field(default_factory=list, description="Every token that ends generation.")
    stop_strings: list[str] = Field(default_factory=list)
    seed: int | None = None
    logprobs: int | None = Field(None, ge=0, description="Top-k logprobs to return per generated token.")

    @classmethod
    def greedy(cls, max_new_tokens: int = 64, stop_token_ids: list[int] | None = None) -> GenerationSpec:
        return cls(max_new_tokens=max_new_tokens, do_sample=False, stop_token_ids=list(stop_token_ids or []))

    def to_hf_generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.generate()`` that override the model's generation_config."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens or None,
            "do_sample": self.do_sample,
            "repetition_penalty": self.repetition_penalty,
            "eos_token_id": list(self.stop_token_ids) or None,
        }
        if self.do_sample:
            # Transformers' own default is top_k=50; None here must mean "off", so say 0 explicitly.
            kwargs.update(temperature=self.temperature, top_k=self.top_k or 0, top_p=self.top_p,
                          min_p=self.min_p or None)
        else:
            # Greedy: clear sampling knobs that a model's generation_config may have set, so
            # Transformers neither warns nor applies them.
            kwargs.update(temperature=None, top_k=None, top_p=None, min_p=None)
        if self.stop_strings:
            kwargs["stop_strings"] = list(self.stop_strings)
        return {k: v for k, v in kwargs.items() if v is not None or k in {"temperature", "top_k", "top_p", "min_p"}}

    def to_vllm_sampling_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``vllm.SamplingParams`` giving the same behaviour as the HF side."""
        kwargs: dict[str, Any] = {
            "max_tokens": self.max_new_tokens,
            "min_tokens": self.min_new_tokens,
            "temperature": self.temperature if self.do_sample else 0.0,
            "top_k": (self.top_k or -1) if self.do_sample else -1,
            "top_p": self.top_p if self.do_sample else 1.0,
            "min_p": self.min_p if self.do_sample else 0.0,
            "repetition_penalty": self.repetition_penalty,
            "stop_token_ids": list(self.stop_token_ids),
            "seed": self.seed,
            "logprobs": self.logprobs,
            # The HF side decides stopping from stop_token_ids alone; vLLM must not add the
            # tokenizer's eos on its own, or a model whose eos is not in the list stops early.
            "ignore_eos": bool(self.stop_token_ids),
            "skip_special_tokens": True,
        }
        if self.stop_strings:
            kwargs["stop"] = list(self.stop_strings)
            kwargs["include_stop_str_in_output"] = True
        return kwargs
