"""Every generation parameter of the installed Transformers and vLLM is classified, from the libraries themselves."""

from __future__ import annotations

import inspect

import pytest

from hf2vllm.generation_params import (
    HF_METADATA_ATTRIBUTES,
    HF_RULES,
    VLLM_DEFAULT_MAX_LOGPROBS,
    VLLM_DEFAULTS,
    VLLM_INTERNAL_FIELDS,
    VLLM_LOGIT_BIAS_FLOOR,
    VLLM_MAX_TEMPERATURE,
    VLLM_MIN_TEMPERATURE,
    VLLM_RULES,
    VLLM_SAMPLING_EPS,
    Status,
)


def test_every_installed_generation_config_attribute_is_classified():
    from transformers import GenerationConfig

    attributes = {k for k in vars(GenerationConfig()) if not k.startswith("_")} - HF_METADATA_ATTRIBUTES
    assert attributes, "GenerationConfig() exposes no attributes: the enumeration itself is broken"
    missing = sorted(attributes - set(HF_RULES))
    assert not missing, f"unclassified Transformers GenerationConfig attributes: {missing}"


def test_every_installed_generate_argument_is_classified():
    from transformers.generation.utils import GenerationMixin

    arguments = set(inspect.signature(GenerationMixin.generate).parameters) - {"self", "kwargs"}
    missing = sorted(arguments - set(HF_RULES))
    assert not missing, f"unclassified generate() arguments: {missing}"


def test_every_installed_sampling_params_field_is_classified():
    from vllm import SamplingParams

    fields = set(SamplingParams.__struct_fields__) - VLLM_INTERNAL_FIELDS
    missing = sorted(fields - set(VLLM_RULES))
    stale = sorted(set(VLLM_RULES) - fields)
    assert not missing, f"unclassified vLLM SamplingParams fields: {missing}"
    assert not stale, f"classified fields that vLLM no longer has: {stale}"


def test_vllm_defaults_and_limits_match_the_installed_vllm():
    import vllm.sampling_params as sp
    from vllm.config import ModelConfig

    default = sp.SamplingParams()
    for name, value in VLLM_DEFAULTS.items():
        if name in {"stop", "stop_token_ids", "bad_words"}:
            continue  # __post_init__ turns None into []; None is what the constructor default is
        assert getattr(default, name) == value, name
    constructor = inspect.signature(sp.SamplingParams.from_optional).parameters
    assert constructor["stop"].default is None and constructor["stop_token_ids"].default is None
    from vllm.v1.sample.sampler import _SAMPLING_EPS

    assert _SAMPLING_EPS == VLLM_SAMPLING_EPS
    assert sp._MAX_TEMP == VLLM_MIN_TEMPERATURE
    max_logprobs = ModelConfig.__dataclass_fields__["max_logprobs"].default
    assert getattr(max_logprobs, "default", max_logprobs) == VLLM_DEFAULT_MAX_LOGPROBS
    clamped = sp.SamplingParams.from_optional(logit_bias={5: -1e9})
    assert clamped.logit_bias == {5: VLLM_LOGIT_BIAS_FLOOR}
    sp.SamplingParams(temperature=VLLM_MAX_TEMPERATURE)
    with pytest.raises(Exception, match="temperature"):
        sp.SamplingParams(temperature=VLLM_MAX_TEMPERATURE + 0.5)


def test_unsupported_parameters_name_a_nearest_feature():
    for rule in [*HF_RULES.values(), *VLLM_RULES.values()]:
        if rule.status is Status.UNSUPPORTED:
            assert "nearest" in rule.why.lower(), rule.name
