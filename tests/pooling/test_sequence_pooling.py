"""Sequence-embedding settings come from the model's sentence-transformers config where it has one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hf2vllm.pooling.extract import l2_normalise, pool_sequence, sentence_transformers_pooling
from hf2vllm.pooling.run import PoolingOptions, resolve_normalisation


def _write_st_config(root: Path, pooling: dict[str, bool], normalize: bool) -> Path:
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (root / "1_Pooling").mkdir(parents=True)
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 8, **pooling}))
    (root / "modules.json").write_text(json.dumps(modules))
    return root


def test_mean_pooling_with_normalize_module_is_read(tmp_path: Path) -> None:
    st = sentence_transformers_pooling(_write_st_config(tmp_path, {"pooling_mode_mean_tokens": True}, normalize=True))
    assert st is not None and st.pooling == "MEAN" and st.normalise


def test_last_token_pooling_without_normalize_module(tmp_path: Path) -> None:
    st = sentence_transformers_pooling(_write_st_config(tmp_path, {"pooling_mode_lasttoken": True}, normalize=False))
    assert st is not None and st.pooling == "LAST" and not st.normalise


def test_pooling_mode_without_vllm_equivalent_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no vLLM equivalent"):
        sentence_transformers_pooling(_write_st_config(tmp_path, {"pooling_mode_max_tokens": True}, normalize=False))


def test_embed_task_aligns_both_sides_with_the_sentence_transformers_config(tmp_path: Path) -> None:
    model = _write_st_config(tmp_path, {"pooling_mode_mean_tokens": True}, normalize=True)
    hf_normalises, vllm_normalise, pooling, source = resolve_normalisation(PoolingOptions(task="embed"), model)
    assert (hf_normalises, vllm_normalise, pooling) == (True, True, "MEAN") and "modules.json" in (source or "")


def test_model_without_sentence_transformers_config_compares_raw_last_token(bundled_model: Path) -> None:
    hf_normalises, vllm_normalise, pooling, _ = resolve_normalisation(PoolingOptions(task="embed"), bundled_model)
    assert (hf_normalises, vllm_normalise, pooling) == (False, False, "LAST")
    # hidden states: never normalised unless asked
    assert resolve_normalisation(PoolingOptions(task="hidden-states"), bundled_model)[:2] == (False, False)
    assert resolve_normalisation(PoolingOptions(task="hidden-states", vllm_normalise="default"), bundled_model)[1] is None


def test_pool_sequence_matches_vllm_pooling_types() -> None:
    h = np.arange(12, dtype=float).reshape(3, 4)
    assert pool_sequence(h, "LAST").tolist() == [8, 9, 10, 11]
    assert pool_sequence(h, "CLS").tolist() == [0, 1, 2, 3]
    assert pool_sequence(h, "MEAN").tolist() == [4, 5, 6, 7]
    assert np.linalg.norm(l2_normalise(h), axis=-1) == pytest.approx([1, 1, 1])
