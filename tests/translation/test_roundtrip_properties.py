"""Property tests: translating a spec to either library and back gives the same behaviour."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf2vllm.spec import GenerationSpec
from hf2vllm.translation import translate_hf, translate_vllm

token = st.integers(min_value=0, max_value=49151)
unit = st.floats(min_value=0.01, max_value=1.0, allow_nan=False)


@st.composite
def specs(draw, *, logprobs=st.one_of(st.none(), st.integers(0, 20))) -> GenerationSpec:  # type: ignore[no-untyped-def]
    do_sample = draw(st.booleans())
    max_new = draw(st.integers(1, 512))
    suppress = draw(st.lists(token, max_size=4, unique=True))
    bias_keys = draw(st.lists(token.filter(lambda t: t not in suppress), max_size=3, unique=True))
    return GenerationSpec(
        max_new_tokens=max_new,
        min_new_tokens=draw(st.integers(0, max_new)),
        do_sample=do_sample,
        temperature=draw(st.floats(min_value=0.01, max_value=2.0, allow_nan=False)),
        top_k=draw(st.one_of(st.none(), st.integers(1, 200))),
        top_p=draw(unit),
        min_p=draw(st.one_of(st.just(0.0), unit)),
        repetition_penalty=draw(st.floats(min_value=0.1, max_value=3.0, allow_nan=False)),
        stop_token_ids=draw(st.lists(token, max_size=4, unique=True)),
        stop_strings=draw(st.lists(st.text(min_size=1, max_size=5), max_size=3, unique=True)),
        suppress_token_ids=suppress,
        logit_bias={k: draw(st.floats(min_value=-99.0, max_value=100.0, allow_nan=False)) for k in bias_keys},
        n=draw(st.integers(1, 4)) if do_sample else 1,
        seed=draw(st.one_of(st.none(), st.integers(0, 2**31 - 1))),
        logprobs=draw(logprobs),
    )


model_generation_configs = st.fixed_dictionaries(
    {},
    optional={
        "do_sample": st.booleans(),
        "temperature": st.floats(min_value=0.1, max_value=1.5, allow_nan=False),
        "top_k": st.integers(1, 100),
        "top_p": st.floats(min_value=0.1, max_value=0.99, allow_nan=False),
        "max_new_tokens": st.integers(1, 300),
        "max_length": st.integers(30, 300),
        "min_new_tokens": st.integers(0, 5),
        "repetition_penalty": st.floats(min_value=0.5, max_value=2.0, allow_nan=False),
        "eos_token_id": st.one_of(token, st.lists(token, min_size=1, max_size=3, unique=True)),
        "no_repeat_ngram_size": st.integers(1, 4),
        "typical_p": st.floats(min_value=0.1, max_value=0.9, allow_nan=False),
        "suppress_tokens": st.lists(token, min_size=1, max_size=3),
        "num_beams": st.integers(1, 4),
        "stop_strings": st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=2),
    },
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(spec=specs())
def test_vllm_round_trip_keeps_the_behaviour(spec: GenerationSpec) -> None:
    back = translate_vllm(spec.to_vllm()).spec
    assert back.canonical() == spec.canonical()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(logprobs=st.sampled_from([None, 20])), model_config=model_generation_configs)
def test_hf_round_trip_overrides_whatever_the_model_config_sets(spec: GenerationSpec, model_config: dict) -> None:
    kwargs = spec.to_hf(generation_config=model_config)
    if spec.seed is not None:
        kwargs["seed"] = spec.seed  # an hf2vllm extension: Transformers itself takes torch.manual_seed
    back = translate_hf(kwargs, generation_config=model_config).spec
    assert back.canonical() == spec.canonical()


@SETTINGS
@given(spec=specs())
def test_openai_bodies_say_what_sampling_params_say(spec: GenerationSpec) -> None:
    vllm = spec.to_vllm()
    for body in spec.to_openai().values():
        for field in ("n", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "min_tokens",
                      "stop_token_ids", "ignore_eos"):
            assert body[field] == vllm[field], field
        assert {int(k): v for k, v in body.get("logit_bias", {}).items()} == vllm.get("logit_bias", {})
