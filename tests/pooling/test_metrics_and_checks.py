"""Pure comparisons and verdicts: hand-written vectors in, numbers and messages out."""

from __future__ import annotations

import numpy as np
import pytest

from hf2vllm.pooling.checks import NormalisationMismatchError, check_normalisation, lora_applied, normalisation_fix
from hf2vllm.pooling.metrics import agreement_rate, compare_vectors, is_unit_normalised, normalisation_state, row_norms
from hf2vllm.pooling.vllm_compat import resolve_pooling_api


def test_identical_vectors_have_cosine_one_and_no_error() -> None:
    x = np.array([[3.0, 4.0], [1.0, 0.0]])
    a = compare_vectors(x, x.copy())
    assert a.cosine_min == pytest.approx(1.0) and a.relative_l2_error == 0.0 and a.norm_ratio_mean == pytest.approx(1.0)


def test_normalised_copy_keeps_cosine_but_changes_norm_ratio() -> None:
    x = np.array([[30.0, 40.0], [0.0, 46.0]])
    unit = x / np.linalg.norm(x, axis=-1, keepdims=True)
    a = compare_vectors(x, unit)
    assert a.cosine_min == pytest.approx(1.0)
    assert a.norm_ratio_mean == pytest.approx((1 / 50 + 1 / 46) / 2)
    assert a.relative_l2_error > 0.9


def test_orthogonal_row_shows_in_cosine_min_not_hidden_by_mean() -> None:
    a = compare_vectors(np.array([[1.0, 0.0]] * 9 + [[1.0, 0.0]]), np.array([[1.0, 0.0]] * 9 + [[0.0, 1.0]]))
    assert a.cosine_min == pytest.approx(0.0) and a.cosine_mean == pytest.approx(0.9)


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        compare_vectors(np.zeros((2, 3)), np.zeros((3, 3)))


def test_unit_norm_detection_needs_every_row_at_one() -> None:
    assert is_unit_normalised([1.0, 0.99995, 1.00002])
    assert not is_unit_normalised([1.0, 46.0])
    assert not is_unit_normalised([])


def test_normalisation_mismatch_message_names_the_vllm_setting_to_change() -> None:
    api = resolve_pooling_api("0.32.0", {"use_activation", "task"}, {"token_embed", "embed"}, {"runner"})
    state = normalisation_state(np.array([46.0, 46.2]), np.array([1.0, 1.0]))
    message = normalisation_fix(state, api)
    assert message is not None and "PoolerConfig(use_activation=False)" in message and "46" in message
    with pytest.raises(NormalisationMismatchError, match=r"use_activation=False"):
        check_normalisation(state, api)


def test_older_vllm_gets_the_normalize_spelling_in_the_fix() -> None:
    api = resolve_pooling_api("0.9.2", {"normalize", "pooling_type"}, set(), {"task"})
    assert api.normalise_field == "normalize" and api.engine_selector == "task"
    state = normalisation_state(row_norms(np.full((2, 4), 20.0)), np.array([1.0, 1.0]))
    assert "PoolerConfig(normalize=False)" in (normalisation_fix(state, api) or "")


def test_pre_split_vllm_uses_the_encode_task_for_tokens() -> None:
    api = resolve_pooling_api("0.10.0", {"normalize"}, {"encode", "embed"}, {"runner"})
    assert api.token_task == "encode" and not api.pooler_has_task


def test_same_normalisation_on_both_sides_is_not_flagged() -> None:
    assert normalisation_fix(normalisation_state(np.array([40.0]), np.array([40.1])), None) is None
    assert normalisation_fix(normalisation_state(np.array([1.0]), np.array([1.0])), None) is None


def test_hf_side_normalised_alone_is_flagged_too() -> None:
    message = normalisation_fix(normalisation_state(np.array([1.0, 1.0]), np.array([46.0, 45.0])), None)
    assert message is not None and "use_activation=True" in message


def test_lora_counts_as_applied_only_beyond_the_threshold() -> None:
    base = np.ones((4, 8))
    assert not lora_applied(compare_vectors(base, base + 1e-6))
    assert lora_applied(compare_vectors(base, base * 1.05))


def test_agreement_rate() -> None:
    assert agreement_rate([1, 0, 1, 1], [1, 1, 1, 1]) == 0.75
    with pytest.raises(ValueError):
        agreement_rate([1], [1, 0])
