"""from_hf resolves settings exactly as the installed Transformers' generate() would."""

from __future__ import annotations

import json

import pytest

from hf2vllm.errors import InputError, UnsupportedParameterError
from hf2vllm.spec import GenerationSpec
from hf2vllm.translation import translate_hf


def _hf_default(name: str):
    from transformers import GenerationConfig

    return GenerationConfig._get_default_generation_params()[name]


def test_sampling_states_transformers_implicit_top_k_for_vllm():
    spec = GenerationSpec.from_hf({"do_sample": True, "max_new_tokens": 8})
    assert spec.top_k == _hf_default("top_k")
    assert spec.to_vllm()["top_k"] == _hf_default("top_k")


def test_explicit_top_k_none_switches_top_k_off_on_both_sides():
    spec = GenerationSpec.from_hf({"do_sample": True, "top_k": None, "max_new_tokens": 8})
    assert spec.top_k is None
    assert spec.to_vllm()["top_k"] == -1
    assert spec.to_hf()["top_k"] is None


def test_greedy_becomes_temperature_zero_whatever_the_sampling_knobs():
    spec = GenerationSpec.from_hf({"do_sample": False, "temperature": 0.3, "top_p": 0.5, "max_new_tokens": 4})
    vllm = spec.to_vllm()
    assert vllm["temperature"] == 0.0 and vllm["top_p"] == 1.0 and vllm["top_k"] == -1


def test_unset_length_means_transformers_default_new_tokens_not_total_length():
    spec = GenerationSpec.from_hf({})
    assert spec.max_length is None
    assert spec.max_new_tokens == _hf_default("max_length")


def test_explicit_max_length_counts_the_prompt():
    spec = GenerationSpec.from_hf({"max_length": 50})
    assert spec.to_vllm(prompt_length=30)["max_tokens"] == 20
    with pytest.raises(InputError, match="max_length=50 counts the prompt"):
        spec.to_vllm()


def test_model_generation_config_applies_and_kwargs_override_it(tmp_path):
    config = {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "eos_token_id": [2, 7], "max_new_tokens": 99}
    spec = GenerationSpec.from_hf({"top_p": 0.8}, generation_config=config)
    assert (spec.temperature, spec.top_p, spec.max_new_tokens) == (0.6, 0.8, 99)
    assert spec.stop_token_ids == [2, 7]
    vllm = spec.to_vllm()
    assert vllm["stop_token_ids"] == [2, 7] and vllm["ignore_eos"] is True
    path = tmp_path / "generation_config.json"
    path.write_text(json.dumps(config))
    assert GenerationSpec.from_hf({"top_p": 0.8}, generation_config=path) == spec


def test_eos_from_the_model_directory(model_dir):
    spec = GenerationSpec.from_hf({"max_new_tokens": 4}, model=model_dir)
    config = json.loads((model_dir / "generation_config.json").read_text())
    expected = config["eos_token_id"]
    assert spec.stop_token_ids == (expected if isinstance(expected, list) else [expected])


def test_chat_template_end_of_turn_outside_the_eos_list_is_reported(model_dir):
    # The bundled template ends turns with <|im_end|> (its eos); an eos list without it must be flagged.
    notes = translate_hf({"max_new_tokens": 4, "eos_token_id": [0]}, model=model_dir).notes
    assert any("<|im_end|>" in n and "not an eos id" in n for n in notes), notes
    notes = translate_hf({"max_new_tokens": 4}, model=model_dir).notes
    assert not any("not an eos id" in n for n in notes), notes


def test_single_token_bad_words_become_a_ban_but_eos_entries_are_dropped_like_transformers():
    spec = GenerationSpec.from_hf({"bad_words_ids": [[5], [2]], "eos_token_id": 2, "max_new_tokens": 4})
    assert spec.suppress_token_ids == [5]
    assert spec.to_vllm()["logit_bias"] == {5: -100.0}


def test_min_new_tokens_without_any_eos_has_no_effect_in_either_library():
    spec = GenerationSpec.from_hf({"min_new_tokens": 5, "eos_token_id": None, "max_new_tokens": 8})
    assert spec.to_vllm()["min_tokens"] == 0


@pytest.mark.parametrize(
    ("kwargs", "parameter", "nearest"),
    [
        ({"num_beams": 3}, "num_beams", "beam_search"),
        ({"no_repeat_ngram_size": 3}, "no_repeat_ngram_size", "logits processor"),
        ({"do_sample": True, "typical_p": 0.5}, "typical_p", "logits processor"),
        ({"begin_suppress_tokens": [5]}, "begin_suppress_tokens", "logit_bias"),
        ({"forced_bos_token_id": 5}, "forced_bos_token_id", "structured outputs"),
        ({"bad_words_ids": [[5, 6]]}, "bad_words_ids", "bad_words"),
        ({"sequence_bias": [[[5, 6], -3.0]]}, "sequence_bias", "logits processor"),
        ({"guidance_scale": 1.5}, "guidance_scale", "logits processor"),
        ({"do_sample": True, "temperature": 2.5}, "temperature", "temperature=2.0"),
    ],
)
def test_unsupported_settings_name_the_parameter_and_the_nearest_vllm_feature(kwargs, parameter, nearest):
    with pytest.raises(UnsupportedParameterError) as err:
        translate_hf(kwargs)
    message = str(err.value)
    assert message.startswith(f"{parameter}=") and nearest in message and "\n" not in message


def test_unsupported_setting_from_the_model_config_says_where_it_came_from():
    with pytest.raises(UnsupportedParameterError, match="no_repeat_ngram_size=3 \\(from the model's generation config"):
        translate_hf({}, generation_config={"no_repeat_ngram_size": 3})


def test_sampling_only_knobs_are_ignored_in_greedy_mode_as_transformers_does():
    translation = translate_hf({"do_sample": False, "typical_p": 0.5})
    assert any("typical_p is ignored" in n for n in translation.notes)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"do_sample": True, "temperature": -1.0}, "temperature"),
        ({"do_sample": True, "temperature": 2}, "temperature"),  # Transformers wants a float
        ({"do_sample": True, "top_p": 1.5}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"do_sample": True, "top_k": -3}, "top_k"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"eos_token_id": "two"}, "eos_token_id"),
        ({"max_new_token": 3}, "max_new_token"),
    ],
)
def test_invalid_values_and_unknown_keys_name_the_parameter(kwargs, parameter):
    with pytest.raises(InputError) as err:
        translate_hf(kwargs)
    assert parameter in str(err.value).split(":")[0] or f"'{parameter}'" in str(err.value)


def test_unknown_key_suggests_the_close_name():
    with pytest.raises(InputError, match="did you mean 'max_new_tokens'"):
        translate_hf({"max_new_token": 3})


def test_openai_bodies_carry_every_sampling_field_so_server_defaults_cannot_fill_them():
    bodies = GenerationSpec.from_hf({"do_sample": True, "max_new_tokens": 16, "suppress_tokens": [9]}).to_openai()
    for body in bodies.values():
        for field in ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
                      "frequency_penalty", "stop_token_ids", "ignore_eos", "min_tokens"):
            assert field in body, field
        assert body["logit_bias"] == {"9": -100.0}
    assert bodies["completions"]["max_tokens"] == 16 and bodies["chat"]["max_completion_tokens"] == 16
