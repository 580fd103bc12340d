"""``GenerationSpec``: one neutral description of generation settings, shared by every backend.

A spec holds *effective* values: every default already resolved, nothing left to a library. Each side
gets its arguments from it (``to_hf()`` for Transformers' ``generate()``, ``to_vllm()`` for
``vllm.SamplingParams``, ``to_openai()`` for a vLLM server), so a comparison runs both sides from the
same values instead of from each library's defaults. ``from_hf()`` resolves what ``generate()`` would
use (kwargs > the model's ``generation_config.json`` > Transformers' defaults read from the installed
library); ``from_vllm()`` resolves what vLLM would do with a ``SamplingParams``. The classification of
every parameter lives in ``hf2vllm.generation_params``.

Independence from vLLM's own ``generation_config`` defaulting (``"auto"``, the default, vs ``"vllm"``):
``to_vllm()``/``to_openai()`` state every sampling field explicitly, and they send ``ignore_eos=True``
plus the complete Transformers eos list as ``stop_token_ids``. vLLM's ``"auto"`` defaults then have no
field left to fill, and the eos ids vLLM adds from the tokenizer and ``generation_config.json`` (it does
so in *both* modes) no longer stop generation, so the tokens are the same in both modes.

Usage::

    spec = GenerationSpec.from_hf({"max_new_tokens": 32, "do_sample": True}, model="path/to/model")
    SamplingParams(**spec.to_vllm())     # same distribution, HF's implicit top_k=50 included
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hf2vllm.errors import InputError, UnsupportedParameterError
from hf2vllm.generation_params import HF_RULES, VLLM_LOGIT_BIAS_FLOOR, VLLM_MAX_TEMPERATURE

if TYPE_CHECKING:
    from hf2vllm.translation import Translation

# Greedy decoding ignores these; canonical() resets them so equal behaviour means equal specs.
_SAMPLING_NEUTRAL = {"temperature": 1.0, "top_k": None, "top_p": 1.0, "min_p": 0.0}


class GenerationSpec(BaseModel):
    """Effective generation settings, with every default resolved (nothing left to a library).

    Length: ``max_new_tokens`` caps generated tokens. ``max_length``/``min_length`` (when set) count the
    prompt, as Transformers' ``max_length``/``min_length`` do; they replace ``max_new_tokens``/
    ``min_new_tokens`` and are resolved per prompt by ``for_prompt()``.
    """

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(64, ge=1)
    min_new_tokens: int = Field(0, ge=0)
    max_length: int | None = Field(None, ge=1, description="Total length cap (prompt included); replaces max_new_tokens.")
    min_length: int | None = Field(None, ge=0, description="Total minimum length (prompt included).")
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0.0)
    top_k: int | None = Field(None, ge=1, description="None means no top-k filtering.")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    min_p: float = Field(0.0, ge=0.0, le=1.0)
    repetition_penalty: float = Field(1.0, gt=0.0)
    stop_token_ids: list[int] = Field(default_factory=list, description="Every token that ends generation.")
    stop_strings: list[str] = Field(default_factory=list)
    suppress_token_ids: list[int] = Field(default_factory=list, description="Tokens never generated.")
    bad_words_ids: list[list[int]] = Field(
        default_factory=list, description="Multi-token banned sequences (Transformers only)."
    )
    logit_bias: dict[int, float] = Field(default_factory=dict, description="Additive per-token bias.")
    n: int = Field(1, ge=1, description="Samples per prompt (num_return_sequences).")
    seed: int | None = None
    logprobs: int | None = Field(None, ge=0, description="Top-k logprobs to return per generated token.")

    @model_validator(mode="after")
    def _consistent(self) -> GenerationSpec:
        if self.n > 1 and not self.do_sample:
            raise ValueError("n > 1 needs do_sample=True (Transformers refuses num_return_sequences > 1 for greedy)")
        if any(len(seq) < 2 for seq in self.bad_words_ids):
            raise ValueError("bad_words_ids holds multi-token sequences only; single tokens go to suppress_token_ids")
        return self

    # ------------------------------------------------------------------ construction
    @classmethod
    def greedy(cls, max_new_tokens: int = 64, stop_token_ids: list[int] | None = None) -> GenerationSpec:
        return cls(max_new_tokens=max_new_tokens, do_sample=False, stop_token_ids=list(stop_token_ids or []))

    @classmethod
    def checked(cls, **values: Any) -> GenerationSpec:
        """Build a spec; an invalid value raises ``InputError`` naming the parameter."""
        try:
            return cls(**values)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "settings"
            raise InputError(f"{loc}: {first['msg']}") from None

    @classmethod
    def from_hf(
        cls,
        kwargs: dict[str, Any] | None = None,
        generation_config: Any = None,
        model: Any = None,
        tokenizer: Any = None,
    ) -> GenerationSpec:
        """What ``model.generate(**kwargs)`` would effectively use; see ``hf2vllm.translation.translate_hf``.

        ``model``: a checkpoint dir, a cached model name (``"smollm2-135m"``) or a loaded model.
        """
        from hf2vllm.translation import translate_hf

        return translate_hf(kwargs or {}, generation_config=generation_config, model=_model_dir(model),
                            tokenizer=tokenizer).spec

    @classmethod
    def from_vllm(cls, kwargs: dict[str, Any] | None = None, model: Any = None, tokenizer: Any = None) -> GenerationSpec:
        """What ``SamplingParams(**kwargs)`` makes vLLM do; see ``hf2vllm.translation.translate_vllm``."""
        from hf2vllm.translation import translate_vllm

        return translate_vllm(kwargs or {}, model=_model_dir(model), tokenizer=tokenizer).spec

    def canonical(self) -> GenerationSpec:
        """The same behaviour with ignored knobs reset (greedy ignores the sampling ones)."""
        values = self.model_dump()
        if not self.do_sample:
            values.update(_SAMPLING_NEUTRAL)
        values["stop_token_ids"] = sorted(set(self.stop_token_ids))
        values["suppress_token_ids"] = sorted(set(self.suppress_token_ids))
        values["stop_strings"] = list(dict.fromkeys(self.stop_strings))
        if self.max_length is not None:
            values["max_new_tokens"] = self.max_length
        if not self.stop_token_ids:
            # Without eos ids Transformers builds no min-length processor: the minimum has no effect.
            values.update(min_new_tokens=0, min_length=None)
        values["min_new_tokens"] = min(values["min_new_tokens"], values["max_new_tokens"])
        return GenerationSpec(**values)

    def for_prompt(self, prompt_length: int) -> GenerationSpec:
        """Resolve ``max_length``/``min_length`` (which count the prompt) for one prompt."""
        if self.max_length is None and self.min_length is None:
            return self
        values = self.model_dump()
        if self.max_length is not None:
            new = self.max_length - prompt_length
            if new < 1:
                raise InputError(
                    f"max_length={self.max_length} leaves no room after a {prompt_length}-token prompt; "
                    "use max_new_tokens"
                )
            values.update(max_new_tokens=new, max_length=None)
        if self.min_length is not None:
            values.update(min_new_tokens=max(0, self.min_length - prompt_length), min_length=None)
        return GenerationSpec(**values)

    def _resolved(self, prompt_length: int | None, target: str) -> GenerationSpec:
        if self.max_length is None and self.min_length is None:
            return self
        if prompt_length is None:
            which = "max_length" if self.max_length is not None else "min_length"
            raise InputError(
                f"{which}={getattr(self, which)} counts the prompt, so {target} needs the prompt length "
                "(--prompt-length N, or use max_new_tokens/min_new_tokens)"
            )
        return self.for_prompt(prompt_length)

    # ------------------------------------------------------------------ vLLM
    def _banned_bias(self) -> dict[int, float]:
        bias = {int(k): float(v) for k, v in self.logit_bias.items()}
        for token in self.suppress_token_ids:
            bias[token] = VLLM_LOGIT_BIAS_FLOOR
        return bias

    def _check_vllm_expressible(self) -> None:
        if self.bad_words_ids:
            raise UnsupportedParameterError(
                f"bad_words_ids={self.bad_words_ids}: multi-token banned sequences cannot be given to vLLM as ids; "
                "nearest vLLM feature: SamplingParams(bad_words=[...strings...]) (re-tokenized with and without a "
                "leading space) or a custom logits processor"
            )
        if self.do_sample and self.temperature > VLLM_MAX_TEMPERATURE:
            raise UnsupportedParameterError(
                f"temperature={self.temperature}: vLLM accepts temperature in [0, {VLLM_MAX_TEMPERATURE}]; "
                "nearest vLLM feature: temperature=2.0 (a flatter distribution needs a custom logits processor)"
            )

    def to_vllm(self, prompt_length: int | None = None) -> dict[str, Any]:
        """Keyword arguments for ``vllm.SamplingParams`` giving the same behaviour as the HF side.

        Every field that vLLM's ``generation_config="auto"`` defaulting could fill is stated, and the eos
        handling is explicit (``ignore_eos=True`` + ``stop_token_ids``), so the result does not depend on
        how the engine was started.
        """
        spec = self._resolved(prompt_length, "vLLM's max_tokens")
        spec._check_vllm_expressible()
        sampling = spec.do_sample
        kwargs: dict[str, Any] = {
            "n": spec.n,
            "max_tokens": spec.max_new_tokens,
            # vLLM refuses min_tokens > max_tokens; Transformers just never reaches such a minimum.
            "min_tokens": min(spec.min_new_tokens, spec.max_new_tokens) if spec.stop_token_ids else 0,
            "temperature": spec.temperature if sampling else 0.0,
            # -1 means "off" in every vLLM version (0.32 also accepts 0, older versions do not).
            "top_k": (spec.top_k or -1) if sampling else -1,
            "top_p": spec.top_p if sampling else 1.0,
            "min_p": spec.min_p if sampling else 0.0,
            "repetition_penalty": spec.repetition_penalty,
            "stop_token_ids": list(spec.stop_token_ids),
            # Transformers stops on exactly its eos list; vLLM must not add the tokenizer's eos on its own.
            "ignore_eos": True,
            "seed": spec.seed,
            "logprobs": spec.logprobs,
            "skip_special_tokens": True,
        }
        if spec.stop_strings:
            kwargs["stop"] = list(spec.stop_strings)
            # Transformers keeps the tokens that completed the stop string; so does vLLM's token list, and
            # this keeps the text consistent with them.
            kwargs["include_stop_str_in_output"] = True
        bias = spec._banned_bias()
        if bias:
            kwargs["logit_bias"] = bias
        return kwargs

    def to_vllm_sampling_kwargs(self) -> dict[str, Any]:
        """Alias of ``to_vllm()`` kept for the backends."""
        return self.to_vllm()

    def to_openai(self, prompt_length: int | None = None) -> dict[str, dict[str, Any]]:
        """Request body fields for a vLLM server: ``{"completions": {...}, "chat": {...}}``.

        Non-OpenAI fields (top_k, min_p, repetition_penalty, min_tokens, stop_token_ids, ignore_eos,
        include_stop_str_in_output, skip_special_tokens) are vLLM extensions: with the ``openai`` client,
        pass them in ``extra_body``. Every sampling field is sent because a server fills omitted ones from
        the model's ``generation_config.json`` (``--generation-config auto``).
        """
        v = self.to_vllm(prompt_length)
        common: dict[str, Any] = {
            "n": v["n"],
            "temperature": v["temperature"],
            "top_p": v["top_p"],
            "top_k": v["top_k"],
            "min_p": v["min_p"],
            "repetition_penalty": v["repetition_penalty"],
            "presence_penalty": 0.0,
            "frequency_penalty": 0.0,
            "min_tokens": v["min_tokens"],
            "stop_token_ids": v["stop_token_ids"],
            "ignore_eos": True,
            "skip_special_tokens": True,
        }
        if v["seed"] is not None:
            common["seed"] = v["seed"]
        if "stop" in v:
            common["stop"] = v["stop"]
            common["include_stop_str_in_output"] = True
        if "logit_bias" in v:
            # JSON object keys are strings; the server clamps biases to [-100, 100] like our floor.
            common["logit_bias"] = {str(k): b for k, b in v["logit_bias"].items()}
        completions = {"max_tokens": v["max_tokens"], **common}
        chat = {"max_completion_tokens": v["max_tokens"], **common}
        if v["logprobs"] is not None:
            completions["logprobs"] = v["logprobs"]
            chat["logprobs"] = True
            chat["top_logprobs"] = v["logprobs"]
        return {"completions": completions, "chat": chat}

    # ------------------------------------------------------------------ Transformers
    def to_hf(self, generation_config: Any = None, prompt_length: int | None = None) -> dict[str, Any]:
        """Keyword arguments for ``model.generate()`` that reproduce this spec over any model config.

        ``generation_config`` is the model's (a ``GenerationConfig``, a dict or None): every
        token-affecting field it sets that the spec does not control is reset to its neutral value. With
        ``None``, all such fields are reset, which is safe for any model.
        """
        spec = self if prompt_length is None else self.for_prompt(prompt_length)
        kwargs: dict[str, Any] = {}
        if spec.max_length is not None:
            kwargs.update(max_length=spec.max_length, max_new_tokens=None)
        else:
            kwargs["max_new_tokens"] = spec.max_new_tokens
        if spec.min_length is not None:
            kwargs.update(min_length=spec.min_length, min_new_tokens=None)
        else:
            kwargs["min_new_tokens"] = spec.min_new_tokens or None
        kwargs["do_sample"] = spec.do_sample
        if spec.do_sample:
            # An explicit None switches Transformers' implicit top_k=50 off (generate() copies kwargs
            # over its defaults, None included).
            kwargs.update(temperature=spec.temperature, top_k=spec.top_k, top_p=spec.top_p,
                          min_p=spec.min_p or None)
        else:
            # Greedy: clear sampling knobs a model's generation_config may set, so Transformers neither
            # warns nor applies them.
            kwargs.update(temperature=None, top_k=None, top_p=None, min_p=None)
        kwargs["repetition_penalty"] = spec.repetition_penalty
        kwargs["eos_token_id"] = list(spec.stop_token_ids) or None
        kwargs["stop_strings"] = list(spec.stop_strings) or None
        kwargs["suppress_tokens"] = list(spec.suppress_token_ids) or None
        kwargs["bad_words_ids"] = [list(s) for s in spec.bad_words_ids] or None
        # List form of sequence_bias: JSON-friendly, and Transformers accepts it.
        kwargs["sequence_bias"] = [[[int(t)], float(b)] for t, b in spec.logit_bias.items()] or None
        kwargs["num_return_sequences"] = spec.n
        if spec.logprobs is not None:
            kwargs.update(output_scores=True, return_dict_in_generate=True)
        kwargs.update(_neutral_overrides(generation_config, set(kwargs)))
        return kwargs

    def to_hf_generate_kwargs(self) -> dict[str, Any]:
        """``to_hf()`` for the backends: safe over any model's generation_config.

        The output-structure flags are left out: a backend chooses those itself (it needs
        ``return_dict_in_generate`` whatever the spec says).
        """
        kwargs = self.to_hf()
        for flag in ("output_scores", "output_logits", "return_dict_in_generate"):
            kwargs.pop(flag, None)
        return kwargs

    def describe_vllm_gap(self) -> list[str]:
        """Conditions under which this spec's vLLM translation is not token-exact (empty: exact)."""
        notes = []
        if self.do_sample and self.min_p > 0 and self.top_p < 1.0:
            notes.append(
                "min_p with top_p<1: vLLM applies min_p before top-p and Transformers after, so the kept set "
                "can differ when the top-p cut is binding"
            )
        if self.do_sample and self.temperature < 1e-2:
            notes.append(f"temperature={self.temperature}: vLLM raises temperatures below 0.01 to 0.01")
        if self.stop_strings and self.min_new_tokens:
            notes.append("stop_strings with min_new_tokens: vLLM ignores stop strings during the first "
                         "min_tokens tokens; Transformers does not")
        return notes


def _model_dir(model: Any) -> Any:
    """A cached model name or checkpoint dir as its directory; a loaded model (or None) unchanged."""
    if isinstance(model, (str, Path)):
        from hf2vllm.models import resolve_model

        return resolve_model(model)
    return model


def _neutral_overrides(generation_config: Any, already: set[str]) -> dict[str, Any]:
    """Reset token-affecting fields a model config may set and the spec does not control."""
    if generation_config is None:
        set_in_config = None
    elif isinstance(generation_config, dict):
        set_in_config = {k for k, v in generation_config.items() if v is not None}
    else:
        set_in_config = {k for k, v in vars(generation_config).items() if v is not None}
    out: dict[str, Any] = {}
    for name, rule in HF_RULES.items():
        if name in already or rule.side != "GenerationConfig" or not rule.affects_tokens:
            continue
        if set_in_config is not None and name not in set_in_config:
            continue
        if name in {"max_length", "min_length"}:
            continue  # max_new_tokens/min_new_tokens set explicitly take precedence over them
        out[name] = _NEUTRAL_VALUE.get(name)
    return out


# The value that switches a feature off; most are None (= not set), which generate() honours.
_NEUTRAL_VALUE: dict[str, Any] = {"num_beams": 1, "use_mtp": False, "token_healing": False}


def load_generation_config(path: str | Path) -> dict[str, Any]:
    """Read a ``generation_config.json`` (a file, or a directory containing one) as a dict."""
    import json

    path = Path(path)
    if path.is_dir():
        path = path / "generation_config.json"
    if not path.is_file():
        raise InputError(f"generation config not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data


__all__ = ["GenerationSpec", "load_generation_config"]
