"""Resolving generation settings the way each library would, and translating them to the other side.

``translate_hf()`` replays Transformers' own resolution in ``generate()`` (5.x
``GenerationMixin._prepare_generation_config`` and ``_prepare_generated_length``) with the installed
library's ``GenerationConfig``: the call's kwargs over the model's ``generation_config.json`` over
``GenerationConfig._get_default_generation_params()``. Value checks use Transformers' own logits
processor classes, so whatever ``generate()`` would reject is rejected here with the parameter's name.
``translate_vllm()`` does the same for a vLLM ``SamplingParams``. Both return a ``Translation``: the
resolved ``GenerationSpec``, the arguments for each side, notes, and one line per parameter.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.errors import InputError, UnsupportedParameterError
from hf2vllm.generation_params import (
    HF_METADATA_ATTRIBUTES,
    HF_RULES,
    VLLM_DEFAULT_MAX_LOGPROBS,
    VLLM_DEFAULTS,
    VLLM_INTERNAL_FIELDS,
    VLLM_LOGIT_BIAS_FLOOR,
    VLLM_RULES,
    VLLM_SAMPLING_EPS,
    ParameterRule,
    Status,
)
from hf2vllm.spec import GenerationSpec, load_generation_config


class ParameterLine(BaseModel):
    """One parameter of a translation: its value on each side and why."""

    name: str
    source: str = Field(description="generate() kwarg, generation_config.json, library default, SamplingParams")
    hf: Any = None
    vllm: Any = None
    status: str
    why: str


class Translation(BaseModel):
    """A resolved spec and what it becomes on each side (the payload of ``hf2vllm translate``)."""

    spec: GenerationSpec
    vllm: dict[str, Any]
    openai: dict[str, dict[str, Any]]
    hf: dict[str, Any]
    notes: list[str] = Field(default_factory=list)
    lines: list[ParameterLine] = Field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"vllm": self.vllm, "openai": self.openai, "hf": self.hf, "notes": self.notes}


# Effective GenerationConfig attribute -> the vLLM field(s) showing it (for the per-parameter lines).
_VLLM_FIELDS_OF = {
    "max_new_tokens": ["max_tokens"], "max_length": ["max_tokens"], "min_new_tokens": ["min_tokens"],
    "min_length": ["min_tokens"], "do_sample": ["temperature"], "temperature": ["temperature"],
    "top_k": ["top_k"], "top_p": ["top_p"], "min_p": ["min_p"], "repetition_penalty": ["repetition_penalty"],
    "eos_token_id": ["stop_token_ids", "ignore_eos"], "stop_strings": ["stop", "include_stop_str_in_output"],
    "suppress_tokens": ["logit_bias"], "bad_words_ids": ["logit_bias"], "sequence_bias": ["logit_bias"],
    "num_return_sequences": ["n"], "output_scores": ["logprobs"], "output_logits": ["logprobs"], "seed": ["seed"],
}
_ALWAYS_SHOWN = ["max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                 "eos_token_id"]


@functools.lru_cache(maxsize=1)
def _generate_argument_names() -> frozenset[str]:
    from transformers.generation.utils import GenerationMixin

    names = set(inspect.signature(GenerationMixin.generate).parameters) - {"self", "kwargs"}
    # Popped from **kwargs inside generate() (trust_remote_code, _extract_generation_mode_kwargs).
    return frozenset(names | {"tokenizer", "assistant_tokenizer", "trust_remote_code"})


@functools.lru_cache(maxsize=1)
def hf_parameter_names() -> frozenset[str]:
    """Every generation parameter of the installed Transformers (config attributes + generate() args)."""
    from transformers import GenerationConfig

    attrs = {k for k in vars(GenerationConfig()) if not k.startswith("_")} - HF_METADATA_ATTRIBUTES
    return frozenset(attrs | _generate_argument_names())


# ---------------------------------------------------------------------------------------------- loading
def _load_model_parts(model: Any, generation_config: Any, tokenizer: Any) -> tuple[Any, Any, Any, str]:
    """(model GenerationConfig, model config or None, tokenizer or None, where the config came from)."""
    from transformers import GenerationConfig

    model_cfg = None
    if model is not None and hasattr(model, "generation_config"):  # a loaded PreTrainedModel
        model_cfg = model.config
        gen_cfg, origin = model.generation_config, "model.generation_config"
    elif model is not None:
        path = Path(model)
        if not (path / "config.json").is_file():
            raise InputError(f"model directory {path} has no config.json")
        from transformers import AutoConfig

        model_cfg = _quiet(AutoConfig.from_pretrained, path)
        if (path / "generation_config.json").is_file():
            gen_cfg = _gen_config_from(load_generation_config(path), str(path / "generation_config.json"))
            origin = str(path / "generation_config.json")
        else:
            # Transformers derives it from config.json when the file is missing.
            gen_cfg, origin = GenerationConfig.from_model_config(model_cfg), f"{path}/config.json"
        if tokenizer is None:
            tokenizer = path
    else:
        gen_cfg, origin = GenerationConfig(), "no model (Transformers defaults only)"
    if generation_config is not None:
        if isinstance(generation_config, GenerationConfig):
            gen_cfg, origin = generation_config, "the given GenerationConfig"
        elif isinstance(generation_config, dict):
            gen_cfg, origin = _gen_config_from(generation_config, "the given generation config"), "the given dict"
        else:
            origin = str(generation_config)
            gen_cfg = _gen_config_from(load_generation_config(generation_config), origin)
    if isinstance(tokenizer, (str, Path)):
        tokenizer = _tokenizer_at(str(Path(tokenizer).resolve()))
    return gen_cfg, model_cfg, tokenizer, origin


@functools.lru_cache(maxsize=4)
def _tokenizer_at(path: str) -> Any:
    """Tokenizers are read-only here; loading one takes seconds, so each directory is loaded once."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _gen_config_from(data: dict[str, Any], where: str) -> Any:
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_dict(dict(data))
    except (ValueError, TypeError) as err:
        raise InputError(f"{where}: {_first_line(err)}") from None


_INTEGER_SETTINGS = ("max_new_tokens", "min_new_tokens", "max_length", "min_length", "top_k", "num_beams",
                     "num_return_sequences", "no_repeat_ngram_size", "seed")
_NUMBER_SETTINGS = ("temperature", "top_p", "min_p", "typical_p", "repetition_penalty", "length_penalty")


def _check_number_types(kwargs: dict[str, Any]) -> None:
    """A number setting given as a string or a boolean (``"max_new_tokens": "32"``) is named here; Transformers
    would fail later with a comparison error that names no parameter."""
    for name, value in kwargs.items():
        if value is None:
            continue
        if name in _INTEGER_SETTINGS and (isinstance(value, bool) or not isinstance(value, int)):
            raise InputError(f"{name}={value!r}: expected an integer")
        if name in _NUMBER_SETTINGS and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InputError(f"{name}={value!r}: expected a number")


def _named_error(err: BaseException, values: dict[str, Any]) -> str:
    """Transformers' message, prefixed with the parameter it names in backticks (``name=value: ...``)."""
    import re

    message = _first_line(err)
    for name in re.findall(r"`(\w+)`", message):
        if name in values:
            return f"{name}={values[name]!r}: {message}"
    return f"Transformers rejects these settings: {message}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _unknown(key: str, known: set[str], what: str) -> InputError:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return InputError(f"unknown {what} parameter {key!r}{hint}")


_SOURCE_WORDS = {"kwarg": "generate() argument", "model config": "from the model's generation config",
                 "HF default": "Transformers default"}


def _unsupported(rule: ParameterRule, value: Any, source: str) -> UnsupportedParameterError:
    source = _SOURCE_WORDS.get(source, source)
    shown = value if len(repr(value)) < 60 else f"{repr(value)[:57]}..."
    return UnsupportedParameterError(
        f"{rule.name}={shown!r} ({source}) has no exact vLLM translation: {rule.why}"
    )


# ---------------------------------------------------------------------------------------------- HF side
def translate_hf(
    kwargs: dict[str, Any],
    generation_config: Any = None,
    model: Any = None,
    tokenizer: Any = None,
    prompt_length: int | None = None,
) -> Translation:
    """Resolve ``model.generate(**kwargs)``'s effective settings and translate them to vLLM.

    ``generation_config`` is the model's ``generation_config.json`` (path, dict or GenerationConfig);
    ``model`` a checkpoint directory or loaded model (its generation config, config and tokenizer are
    used). Raises ``InputError`` for values Transformers would reject and unknown keys, and
    ``UnsupportedParameterError`` for settings vLLM cannot reproduce.
    """
    if not isinstance(kwargs, dict):
        raise InputError("HF settings must be a JSON object of generate() keyword arguments")
    from transformers import GenerationConfig

    kwargs = dict(kwargs)
    seed = kwargs.pop("seed", None)
    known = hf_parameter_names()
    for key in kwargs:
        if key not in known:
            raise _unknown(key, known | {"seed"}, "generate()")
    _check_number_types({**kwargs, "seed": seed})
    generate_args = {k: v for k, v in kwargs.items() if k in _generate_argument_names()}
    config_kwargs = {k: v for k, v in kwargs.items() if k not in generate_args}
    for key, value in generate_args.items():
        rule = HF_RULES[key]
        if rule.status is Status.UNSUPPORTED and not rule.is_neutral(value):
            raise _unsupported(rule, value, "generate() argument")

    model_gc, model_cfg, tok, origin = _load_model_parts(model, generation_config, tokenizer)

    # Replays GenerationMixin._prepare_generation_config (generation_config argument None).
    has_default_max_length = config_kwargs.get("max_length") is None and model_gc.max_length is None
    has_default_min_length = config_kwargs.get("min_length") is None and model_gc.min_length is None
    try:
        gc = _quiet(GenerationConfig)
        _quiet(gc.update, **model_gc.to_dict(), defaults_only=True, allow_custom_entries=True)
        _quiet(gc.update, **model_gc._get_default_generation_params(), defaults_only=True)
        _quiet(gc.update, **copy.deepcopy(config_kwargs))
    except (ValueError, TypeError) as err:
        raise InputError(_named_error(err, {**model_gc.to_dict(), **config_kwargs})) from None

    def source(key: str) -> str:
        if key in kwargs:
            return "kwarg"
        if getattr(model_gc, key, None) is not None:
            return "model config"
        return "HF default"

    do_sample = bool(gc.do_sample)
    num_beams = gc.num_beams or 1
    effective = {k: v for k, v in vars(gc).items() if not k.startswith("_") and k not in HF_METADATA_ATTRIBUTES}
    standard = set(vars(GenerationConfig()))
    custom = sorted(k for k in effective if k not in standard)
    for key, value in effective.items():
        rule = HF_RULES.get(key)
        if rule is None:
            if key in standard and value is not None:
                raise UnsupportedParameterError(f"{key}={value!r} ({source(key)}) is not classified by hf2vllm")
            continue
        if rule.status is Status.UNSUPPORTED and not rule.is_neutral(value, do_sample=do_sample, num_beams=num_beams):
            raise _unsupported(rule, value, source(key))

    _validate_with_transformers(gc, do_sample, tok)

    notes: list[str] = [f"base generation config: {origin}"]
    if custom:
        notes.append(f"{', '.join(custom)}: not Transformers generation parameters; generate() ignores them")
    eos = gc.eos_token_id
    eos_ids = [] if eos is None else ([int(eos)] if isinstance(eos, int) else [int(e) for e in eos])

    values: dict[str, Any] = {"do_sample": do_sample, "stop_token_ids": eos_ids, "seed": seed}
    if gc.max_new_tokens is not None:
        values["max_new_tokens"] = gc.max_new_tokens
    elif has_default_max_length:
        values["max_new_tokens"] = gc.max_length
        notes.append(
            f"no max_new_tokens/max_length anywhere: Transformers' default max_length={gc.max_length} means "
            f"{gc.max_length} new tokens (capped at max_position_embeddings)"
        )
    else:
        values.update(max_length=gc.max_length, max_new_tokens=gc.max_length)
        notes.append(f"max_length={gc.max_length} ({source('max_length')}) counts the prompt: vLLM max_tokens "
                     "is max_length minus the prompt length, per request")
    if gc.min_new_tokens is not None:
        values["min_new_tokens"] = gc.min_new_tokens
    elif not has_default_min_length and gc.min_length:
        values["min_length"] = gc.min_length
    if do_sample:
        values["temperature"] = 1.0 if gc.temperature is None else gc.temperature
        values["top_k"] = gc.top_k or None
        values["top_p"] = 1.0 if gc.top_p is None or gc.top_p >= 1.0 else gc.top_p
        values["min_p"] = gc.min_p or 0.0
        if gc.top_k and source("top_k") == "HF default":
            notes.append(f"top_k={gc.top_k} is Transformers' implicit default (vLLM's default is off): "
                         "stated explicitly for vLLM")
    values["repetition_penalty"] = 1.0 if gc.repetition_penalty is None else gc.repetition_penalty
    if gc.stop_strings is not None:
        values["stop_strings"] = [gc.stop_strings] if isinstance(gc.stop_strings, str) else list(gc.stop_strings)
    suppress = list(gc.suppress_tokens or [])
    bad_multi: list[list[int]] = []
    for seq in gc.bad_words_ids or []:
        if len(seq) == 1:
            if seq[0] in eos_ids:
                notes.append(f"bad_words_ids entry {seq} is an eos id: Transformers drops it, so does hf2vllm")
            else:
                suppress.append(seq[0])
        else:
            bad_multi.append(list(seq))
    if bad_multi:
        raise UnsupportedParameterError(
            f"bad_words_ids={bad_multi}: multi-token sequences have no exact vLLM translation (vLLM takes bad "
            "words as strings and re-tokenizes them); nearest vLLM feature: SamplingParams(bad_words=[...]) or a "
            "custom logits processor"
        )
    values["suppress_token_ids"] = suppress
    values["logit_bias"] = _single_token_bias(gc.sequence_bias, source("sequence_bias"))
    values["n"] = gc.num_return_sequences or 1
    if gc.return_dict_in_generate and (gc.output_scores or gc.output_logits):
        values["logprobs"] = VLLM_DEFAULT_MAX_LOGPROBS

    spec = GenerationSpec.checked(**values)
    for key in kwargs:
        rule = HF_RULES.get(key)
        if rule is not None and rule.sampling_only and not do_sample:
            notes.append(f"{key} is ignored by Transformers with do_sample=False (greedy), so it is not translated")
    for key in sorted(set(kwargs) | {k for k, v in vars(model_gc).items() if v is not None}):
        rule = HF_RULES.get(key)
        if rule is not None and rule.status is Status.NOTE and key not in {"max_length"}:
            if rule.affects_tokens or key in kwargs:
                notes.append(f"{key}: {rule.why}")
    notes.extend(spec.describe_vllm_gap())
    notes.extend(_eos_notes(spec, model_gc, tok, values.get("min_new_tokens", 0)))
    if seed is not None:
        notes.append(f"seed: {HF_RULES['seed'].why}")

    relative = spec.max_length is not None or spec.min_length is not None
    vllm_kwargs = spec.to_vllm(prompt_length) if prompt_length is not None or not relative else {}
    if not vllm_kwargs:
        notes.append("vLLM arguments depend on the prompt length (max_length/min_length): pass --prompt-length")
    openai = spec.to_openai(prompt_length) if vllm_kwargs else {}
    hf_kwargs = spec.to_hf(generation_config=model_gc)
    if model is None and tokenizer is None and generation_config is None and "eos_token_id" not in kwargs:
        resolved = spec if prompt_length is None else spec.for_prompt(prompt_length)
        notes.append(_leave_eos_to_model(resolved, vllm_kwargs, openai, hf_kwargs))
    lines = _hf_lines(kwargs, effective, model_gc, source, vllm_kwargs, seed)
    return Translation(spec=spec, vllm=vllm_kwargs, openai=openai, hf=hf_kwargs, notes=notes, lines=lines)


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call into Transformers without its warnings: hf2vllm reports the same facts as notes."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return fn(*args, **kwargs)
    finally:
        hf_logging.set_verbosity(level)


def _single_token_bias(sequence_bias: Any, where: str) -> dict[int, float]:
    if sequence_bias is None:
        return {}
    items = sequence_bias.items() if isinstance(sequence_bias, dict) else [(tuple(s), b) for s, b in sequence_bias]
    bias: dict[int, float] = {}
    for seq, value in items:
        if len(seq) != 1:
            raise _unsupported(HF_RULES["sequence_bias"], {tuple(seq): value}, where)
        bias[int(seq[0])] = float(value)
    return bias


def _validate_with_transformers(gc: Any, do_sample: bool, tokenizer: Any) -> None:
    """Build the processors generate() would build, so their own argument checks run."""
    from transformers.generation import logits_process as lp

    checks: list[tuple[str, Any]] = []
    if gc.repetition_penalty is not None and gc.repetition_penalty != 1.0:
        checks.append(("repetition_penalty", lambda: lp.RepetitionPenaltyLogitsProcessor(gc.repetition_penalty)))
    if gc.bad_words_ids is not None:
        checks.append(("bad_words_ids", lambda: lp.NoBadWordsLogitsProcessor(gc.bad_words_ids, gc.eos_token_id)))
    if gc.sequence_bias is not None:
        checks.append(("sequence_bias", lambda: lp.SequenceBiasLogitsProcessor(gc.sequence_bias)))
    if gc.suppress_tokens is not None:
        checks.append(("suppress_tokens", lambda: lp.SuppressTokensLogitsProcessor(gc.suppress_tokens, device="cpu")))
    if gc.min_new_tokens is not None:
        checks.append(("min_new_tokens", lambda: lp.MinNewTokensLengthLogitsProcessor(0, gc.min_new_tokens, [0])))
    if gc.min_length is not None:
        checks.append(("min_length", lambda: lp.MinLengthLogitsProcessor(gc.min_length, [0])))
    if do_sample:
        if gc.temperature is not None and gc.temperature != 1.0:
            checks.append(("temperature", lambda: lp.TemperatureLogitsWarper(gc.temperature)))
        if gc.top_k is not None and gc.top_k != 0:
            checks.append(("top_k", lambda: lp.TopKLogitsWarper(top_k=gc.top_k)))
        if gc.top_p is not None and gc.top_p < 1.0:
            checks.append(("top_p", lambda: lp.TopPLogitsWarper(top_p=gc.top_p)))
        if gc.min_p is not None:
            checks.append(("min_p", lambda: lp.MinPLogitsWarper(min_p=gc.min_p)))
    for name, build in checks:
        try:
            build()
        except (ValueError, TypeError) as err:
            value = getattr(gc, name)
            wants_float = type(value) is int and "float" in str(err)
            hint = f" (Transformers wants a float: write {float(value)})" if wants_float else ""
            raise InputError(f"{name}={value!r}: {_first_line(err)}{hint}") from None
    # Out-of-range values that Transformers silently skips (e.g. top_p>=1 builds no processor, greedy
    # ignores all sampling knobs) are still mistakes; vLLM would reject most of them.
    ranges = {
        "temperature": (lambda v: v >= 0, ">= 0"), "top_p": (lambda v: 0 <= v <= 1, "in [0, 1]"),
        "top_k": (lambda v: v >= 0, ">= 0"), "min_p": (lambda v: 0 <= v <= 1, "in [0, 1]"),
        "repetition_penalty": (lambda v: v > 0, "> 0"),
    }
    for name, (ok, expected) in ranges.items():
        value = getattr(gc, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            raise InputError(f"{name}={value!r}: must be a number {expected}")
    if do_sample and gc.top_p is not None and gc.top_p <= 0.0:
        raise UnsupportedParameterError(
            f"top_p={gc.top_p}: vLLM needs top_p in (0, 1]; nearest vLLM feature: top_k=1 (keeps the best token)"
        )
    if gc.eos_token_id is not None:
        eos = [gc.eos_token_id] if isinstance(gc.eos_token_id, int) else gc.eos_token_id
        if not isinstance(eos, list) or not all(isinstance(e, int) and e >= 0 for e in eos):
            raise InputError(f"eos_token_id={gc.eos_token_id!r}: expected a token id or a list of token ids")
    if gc.stop_strings is not None:
        strings = [gc.stop_strings] if isinstance(gc.stop_strings, str) else gc.stop_strings
        if not isinstance(strings, list) or not all(isinstance(s, str) and s for s in strings):
            raise InputError(f"stop_strings={gc.stop_strings!r}: expected a string or a list of non-empty strings")
    for name in ("max_new_tokens", "max_length"):
        value = getattr(gc, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InputError(f"{name}={value!r}: expected a positive integer")
    if gc.num_return_sequences is not None and (
        not isinstance(gc.num_return_sequences, int) or gc.num_return_sequences < 1
    ):
        raise InputError(f"num_return_sequences={gc.num_return_sequences!r}: expected a positive integer")


def chat_end_of_turn_token(tokenizer: Any) -> int | None:
    """The special token the chat template puts after an assistant turn (None without a template)."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return None
    marker = "hf2vllm-marker"
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}], tokenize=False
        )
    except Exception:  # noqa: BLE001 - a template that cannot render a plain turn has no answer here
        return None
    tail = text[text.rfind(marker) + len(marker):]
    ids = tokenizer(tail, add_special_tokens=False)["input_ids"] if tail else []
    special = set(getattr(tokenizer, "all_special_ids", []) or []) | set(
        getattr(tokenizer, "added_tokens_decoder", {}) or {}
    )
    return next((int(i) for i in ids if i in special), None)


def _eos_notes(spec: GenerationSpec, model_gc: Any, tokenizer: Any, min_new: int) -> list[str]:
    notes = []
    eot = chat_end_of_turn_token(tokenizer)
    if eot is not None and eot not in spec.stop_token_ids:
        name = tokenizer.convert_ids_to_tokens(eot)
        notes.append(
            f"the chat template ends a turn with {name} (id {eot}), which is not an eos id: Transformers will "
            f"not stop there and neither will the translated vLLM request; add it to eos_token_id to stop at "
            "the end of the turn"
        )
    tok_eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    cfg_eos = model_gc.eos_token_id
    cfg_eos = [] if cfg_eos is None else ([cfg_eos] if isinstance(cfg_eos, int) else list(cfg_eos))
    extra = sorted({e for e in [tok_eos, *cfg_eos] if e is not None} - set(spec.stop_token_ids))
    if extra and min_new and spec.stop_token_ids:
        notes.append(
            f"min_new_tokens: vLLM also blocks {extra} (tokenizer/generation_config eos) during min_tokens, "
            "Transformers only the eos list; outputs differ only if the model would emit those ids early"
        )
    return notes


def _hf_lines(
    kwargs: dict[str, Any], effective: dict[str, Any], model_gc: Any, source: Any, vllm: dict[str, Any],
    seed: Any,
) -> list[ParameterLine]:
    names = list(dict.fromkeys(
        [*_ALWAYS_SHOWN, *kwargs, *(k for k, v in vars(model_gc).items() if v is not None and not k.startswith("_"))]
    ))
    lines = []
    for name in names:
        rule = HF_RULES.get(name)
        if rule is None:
            continue
        hf_value = seed if name == "seed" else effective.get(name)
        fields = _VLLM_FIELDS_OF.get(name, [])
        vllm_value: Any = {f: vllm[f] for f in fields if f in vllm} or None
        if isinstance(vllm_value, dict) and len(vllm_value) == 1:
            vllm_value = next(iter(vllm_value.values()))
        why = rule.why
        if rule.sampling_only and not effective.get("do_sample"):
            why = "ignored: greedy decoding (do_sample=False). " + why
        lines.append(ParameterLine(name=name, source=source(name), hf=hf_value, vllm=vllm_value,
                                   status=rule.status.value, why=why))
    return lines


# ---------------------------------------------------------------------------------------------- vLLM side
def translate_vllm(kwargs: dict[str, Any], model: Any = None, tokenizer: Any = None) -> Translation:
    """Resolve what ``SamplingParams(**kwargs)`` makes vLLM do and translate it to ``generate()`` kwargs.

    vLLM stops on the tokenizer's eos and the ``generation_config.json`` eos ids unless ``ignore_eos``:
    resolving that (and ``bad_words``, ``max_tokens=None``) needs ``model``.
    """
    if not isinstance(kwargs, dict):
        raise InputError("vLLM settings must be a JSON object of SamplingParams keyword arguments")
    for key in kwargs:
        if key not in VLLM_RULES:
            raise _unknown(key, set(VLLM_RULES), "SamplingParams")
    p = {**VLLM_DEFAULTS, **kwargs}
    for key, value in kwargs.items():
        rule = VLLM_RULES[key]
        if rule.status is Status.UNSUPPORTED and not rule.is_neutral(value):
            raise UnsupportedParameterError(
                f"{key}={value!r} (SamplingParams) has no exact Transformers translation: {rule.why}"
            )
    _validate_vllm(p)
    notes: list[str] = []
    model_gc = model_cfg = tok = None
    if model is not None or tokenizer is not None:
        model_gc, model_cfg, tok, _ = _load_model_parts(model, None, tokenizer)
    elif p["bad_words"] or p["max_tokens"] is None:
        raise InputError("bad_words/max_tokens=None depend on the model's tokenizer and context: pass --model DIR "
                         "to resolve them")
    elif not p["ignore_eos"] and p["stop_token_ids"]:
        raise InputError("stop_token_ids with ignore_eos=false: vLLM stops on them and on the model's eos ids, and "
                         "generate() needs both in one eos_token_id list: pass --model DIR to resolve the eos ids "
                         "(or set ignore_eos=true)")
    eos_from_model = not p["ignore_eos"] and model_gc is None and tok is None

    sampling = p["temperature"] >= VLLM_SAMPLING_EPS
    stop_ids = list(dict.fromkeys(int(t) for t in (p["stop_token_ids"] or [])))
    if not p["ignore_eos"] and not eos_from_model:
        # SamplingParams.update_from_generation_config: tokenizer eos + generation_config eos ids.
        tok_eos = getattr(tok, "eos_token_id", None)
        cfg_eos = model_gc.eos_token_id if model_gc is not None else None
        cfg_eos = [] if cfg_eos is None else ([cfg_eos] if isinstance(cfg_eos, int) else list(cfg_eos))
        stop_ids = list(dict.fromkeys([*([tok_eos] if tok_eos is not None else []), *cfg_eos, *stop_ids]))
        notes.append(f"ignore_eos=false: the model's eos ids join the stop list -> eos_token_id={stop_ids}")
    values: dict[str, Any] = {
        "do_sample": sampling, "stop_token_ids": stop_ids, "repetition_penalty": float(p["repetition_penalty"]),
        "n": p["n"], "seed": p["seed"], "logprobs": p["logprobs"],
    }
    if p["max_tokens"] is None:
        max_len = getattr(model_cfg, "max_position_embeddings", None)
        if max_len is None:
            raise InputError("max_tokens=None means 'up to max_model_len', which the model config does not state")
        values.update(max_length=max_len, max_new_tokens=max_len)
        notes.append(f"max_tokens=None: vLLM generates up to max_model_len={max_len} (prompt included)")
    else:
        values["max_new_tokens"] = p["max_tokens"]
    values["min_new_tokens"] = p["min_tokens"]
    if sampling:
        values.update(temperature=float(p["temperature"]), top_k=p["top_k"] if p["top_k"] > 0 else None,
                      top_p=float(p["top_p"]), min_p=float(p["min_p"]))
        if p["top_k"] <= 0:
            notes.append("top_k off: Transformers gets top_k=None explicitly (its default would be 50)")
    stop = p["stop"]
    values["stop_strings"] = [stop] if isinstance(stop, str) else list(stop or [])
    suppress: list[int] = []
    bias: dict[int, float] = {}
    for token, value in (p["logit_bias"] or {}).items():
        value = max(VLLM_LOGIT_BIAS_FLOOR, min(-VLLM_LOGIT_BIAS_FLOOR, float(value)))
        if value <= VLLM_LOGIT_BIAS_FLOOR:
            suppress.append(int(token))
        else:
            bias[int(token)] = value
    bad_multi: list[list[int]] = []
    for ids in _vllm_bad_words_ids(p["bad_words"] or [], tok):
        (suppress.append(ids[0]) if len(ids) == 1 else bad_multi.append(ids))
    if bad_multi:
        notes.append("bad_words: multi-token entries are banned in vLLM only when their prefix is in the output; "
                     "Transformers also matches a prefix at the end of the prompt")
    values.update(suppress_token_ids=suppress, logit_bias=bias, bad_words_ids=bad_multi)
    spec = GenerationSpec.checked(**values)
    for key in kwargs:
        rule = VLLM_RULES[key]
        if rule.status is Status.NOTE and rule.affects_tokens:
            notes.append(f"{key}: {rule.why}")
    notes.extend(spec.describe_vllm_gap())
    hf_kwargs = spec.to_hf(generation_config=model_gc)
    try:
        vllm_echo = spec.to_vllm()
        openai = spec.to_openai()
    except (UnsupportedParameterError, InputError):
        vllm_echo, openai = dict(kwargs), {}
    if eos_from_model:
        notes.append(_leave_eos_to_model(spec, vllm_echo, openai, hf_kwargs))
    lines = [
        ParameterLine(name=k, source="SamplingParams", hf={t: hf_kwargs.get(t) for t in _hf_targets(k)} or None,
                      vllm=v, status=VLLM_RULES[k].status.value, why=VLLM_RULES[k].why)
        for k, v in kwargs.items()
    ]
    return Translation(spec=spec, vllm=vllm_echo, openai=openai, hf=hf_kwargs, notes=notes, lines=lines)


def _leave_eos_to_model(spec: GenerationSpec, vllm: dict[str, Any], openai: dict[str, dict[str, Any]],
                        hf: dict[str, Any]) -> str:
    """Without a model its eos ids are unknown: leave them to the model on both sides, so what the user
    wrote keeps its meaning (``min_new_tokens: 5`` stays ``min_tokens: 5``); the note says so."""
    hf.pop("eos_token_id", None)
    for body in [vllm, *openai.values()]:
        if body:
            body["ignore_eos"] = False
            if "min_tokens" in body and spec.max_length is None:
                body["min_tokens"] = min(spec.min_new_tokens, spec.max_new_tokens)
    return ("eos ids: no --model, so the model supplies them: generate() takes eos_token_id from its "
            "generation_config.json and vLLM (ignore_eos=False) stops on its tokenizer's and generation_config.json's "
            "eos ids; pass --model DIR to state them explicitly")


def _hf_targets(vllm_field: str) -> list[str]:
    return {
        "temperature": ["do_sample", "temperature"], "top_k": ["top_k"], "top_p": ["top_p"], "min_p": ["min_p"],
        "max_tokens": ["max_new_tokens", "max_length"], "min_tokens": ["min_new_tokens"],
        "stop_token_ids": ["eos_token_id"], "ignore_eos": ["eos_token_id"], "stop": ["stop_strings"],
        "repetition_penalty": ["repetition_penalty"], "n": ["num_return_sequences"],
        "logit_bias": ["sequence_bias", "suppress_tokens"], "bad_words": ["bad_words_ids", "suppress_tokens"],
        "logprobs": ["output_scores", "return_dict_in_generate"],
    }.get(vllm_field, [])


def _validate_vllm(p: dict[str, Any]) -> None:
    """The checks of ``SamplingParams._verify_args`` that concern translated fields."""
    def bad(name: str, expected: str) -> InputError:
        return InputError(f"{name}={p[name]!r}: vLLM expects {expected}")

    if not isinstance(p["temperature"], (int, float)) or not 0.0 <= p["temperature"] <= 2.0:
        raise bad("temperature", "a number in [0, 2]")
    if not isinstance(p["top_p"], (int, float)) or not 0.0 < p["top_p"] <= 1.0:
        raise bad("top_p", "a number in (0, 1]")
    if not isinstance(p["top_k"], int) or p["top_k"] < -1:
        raise bad("top_k", "an integer: 0 or -1 (off) or at least 1")
    if not isinstance(p["min_p"], (int, float)) or not 0.0 <= p["min_p"] <= 1.0:
        raise bad("min_p", "a number in [0, 1]")
    if not isinstance(p["repetition_penalty"], (int, float)) or p["repetition_penalty"] <= 0:
        raise bad("repetition_penalty", "a number > 0")
    if p["max_tokens"] is not None and (not isinstance(p["max_tokens"], int) or p["max_tokens"] < 1):
        raise bad("max_tokens", "an integer >= 1 or null")
    if not isinstance(p["min_tokens"], int) or p["min_tokens"] < 0:
        raise bad("min_tokens", "an integer >= 0")
    if p["max_tokens"] is not None and p["min_tokens"] > p["max_tokens"]:
        raise bad("min_tokens", f"at most max_tokens={p['max_tokens']}")
    if not isinstance(p["n"], int) or p["n"] < 1:
        raise bad("n", "an integer >= 1")
    if p["n"] > 1 and p["temperature"] < VLLM_SAMPLING_EPS:
        raise UnsupportedParameterError(
            "n>1 with temperature=0 returns n identical greedy copies; Transformers refuses "
            "num_return_sequences>1 without sampling: nearest Transformers feature: num_return_sequences=1"
        )
    if p["logprobs"] is not None and (not isinstance(p["logprobs"], int) or p["logprobs"] < 0):
        raise bad("logprobs", "an integer >= 0 (-1, the whole vocabulary, has no generate() equivalent)")
    if p["stop_token_ids"] is not None and not (
        isinstance(p["stop_token_ids"], list) and all(isinstance(t, int) and t >= 0 for t in p["stop_token_ids"])
    ):
        raise bad("stop_token_ids", "a list of token ids")


def _vllm_bad_words_ids(words: list[str], tokenizer: Any) -> list[list[int]]:
    """Token ids vLLM bans for ``bad_words`` (mirrors SamplingParams.update_from_tokenizer)."""
    if not words:
        return []
    if tokenizer is None:
        raise InputError("bad_words are strings that vLLM tokenizes: pass --model DIR")
    result: list[list[int]] = []
    for word in dict.fromkeys(words):
        for add_prefix_space in (False, True):
            ids = tokenizer.encode(text=(" " if add_prefix_space else "") + word.lstrip(), add_special_tokens=False)
            if not ids:
                if not add_prefix_space:
                    raise InputError(f"bad_words entry {word!r} tokenizes to nothing")
                continue
            if not add_prefix_space or (ids[0] != result[-1][0] and len(ids) == len(result[-1])):
                result.append(list(ids))
    return result




def read_generation_config(path: str | Path, option: str) -> dict[str, Any]:
    """A ``generation_config.json`` named on the command line (the file, or a directory holding one) as a
    dict; a missing, unreadable or malformed one raises ``InputError`` naming ``option`` and the line."""
    from hf2vllm import checks

    path = Path(path)
    if path.is_dir():
        if not (path / "generation_config.json").is_file():
            raise InputError(f"{option} {path}: a directory without generation_config.json; give the file")
        path = path / "generation_config.json"
    checks.input_file(path, option, what="generation_config.json")
    data = checks.json_file(path, option)
    if not isinstance(data, dict):
        raise InputError(f"{option} {path}: expected a JSON object of generation settings, "
                         f"got a JSON {type(data).__name__}")
    return data


def spec_for_compare(hf_kwargs: dict[str, Any] | None, generation_config: Any, model_path: Any) -> GenerationSpec:
    """The spec ``hf2vllm compare --hf-kwargs/--generation-config`` runs: your production settings,
    resolved against the compared model exactly as ``generate()`` would (kwargs > the given or the
    model's ``generation_config.json`` > Transformers' defaults)."""
    spec = translate_hf(hf_kwargs or {}, generation_config=generation_config, model=model_path).spec
    if spec.do_sample:
        raise InputError(
            "the generation config (--generation-config, or the model's generation_config.json) sets "
            "do_sample=true, so generate() would sample; compare checks token-by-token parity, which needs "
            'greedy decoding: add "do_sample": false to --hf-kwargs'
        )
    if spec.max_length is not None or spec.min_length is not None:
        raise InputError(
            "max_length/min_length count the prompt, so they differ per request; compare runs one setting "
            "for every prompt: use max_new_tokens/min_new_tokens in --hf-kwargs"
        )
    return spec


__all__ = ["ParameterLine", "Translation", "translate_hf", "translate_vllm", "hf_parameter_names", "spec_for_compare",
           "chat_end_of_turn_token", "read_generation_config"]
