"""`--task embed` against a real vLLM sequence-embedding engine: LAST-token embeddings of the bundled
model, vLLM's default normalisation caught, and a sentence-transformers config followed on both sides.

vLLM 0.32's offline ``LLM.encode`` serves only the engine's own pooling task (``_verify_pooling_task``:
"Try switching the model's pooling_task via PoolerConfig(task=...)", pinned below), and the
sequence pooling type is engine-wide (``PoolerConfig.seq_pooling_type``; ``PoolingParams`` has no
per-request pooling), so the shared ``token_embed`` engine cannot serve these and ONE embed engine
is started here (module scope: freed as soon as this file is done).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hf2vllm.errors import InputError
from hf2vllm.pooling.run import LoadedSides, PoolingOptions, prepare_set, run_pooling_compare, vllm_engine_options

LIMIT = 8
EMBED_KV_CACHE_GIB = 0.25
"""~5.8k float32 tokens of the bundled model: the 8 requests here need ~350."""
EMBED_MAX_MODEL_LEN = 1024


@pytest.fixture(scope="module")
def embed_pooler(bundled_model: Path, pooling_api):  # type: ignore[no-untyped-def]
    """task=embed, LAST pooling, normalisation left unset (vLLM's default), as `--vllm-normalise
    default` would start it; the tests set normalisation per request where they need it."""
    from hf2vllm.backends.vllm_offline import VLLMBackend

    options = PoolingOptions(task="embed", kv_cache_gib=EMBED_KV_CACHE_GIB, max_model_len=EMBED_MAX_MODEL_LEN)
    kwargs = vllm_engine_options(pooling_api, options, normalise=None, pooling_type="LAST", inspection=None)
    backend = VLLMBackend(bundled_model, dtype="float32", enforce_eager=True, **kwargs)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def sides(hf_model, tokenizer, embed_pooler) -> LoadedSides:  # type: ignore[no-untyped-def]
    return LoadedSides(hf_model=hf_model, tokenizer=tokenizer, vllm_pooler=embed_pooler)


def _sentence_transformers_copy(model: Path, root: Path, pooling_mode: str, normalize: bool) -> Path:
    """The bundled model's files (symlinked) plus a sentence-transformers modules.json, as an ST
    export of a decoder embedding model carries it."""
    root.mkdir(parents=True)
    for item in model.iterdir():
        os.symlink(item, root / item.name)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 576, pooling_mode: True}))
    (root / "modules.json").write_text(json.dumps(modules))
    return root


def test_last_token_embeddings_match_hf_with_normalisation_off(sides: LoadedSides) -> None:
    report = run_pooling_compare(PoolingOptions(task="embed", limit=LIMIT), sides=sides)
    assert report.passed, report.failures
    assert report.engine.seq_pooling_type == "LAST" and report.sequence_pooling.startswith("LAST (no sentence-transformers")
    assert report.overall.rows == LIMIT == len(report.requests)  # one vector per request, not per token
    assert report.overall.cosine_min >= 0.999
    assert report.overall.norm_ratio_mean == pytest.approx(1.0, abs=1e-3)
    state = report.normalisation
    assert not state.reference_normalised and not state.candidate_normalised
    assert state.reference_norm_mean > 10  # raw last-token hidden states (~46 on this model)


def test_vllm_default_normalisation_of_embeddings_is_caught(sides: LoadedSides) -> None:
    """A model without a sentence-transformers config: HF's raw last-token state vs vLLM's default."""
    report = run_pooling_compare(PoolingOptions(task="embed", limit=LIMIT, vllm_normalise="default"), sides=sides)
    assert report.normalisation.candidate_normalised and not report.normalisation.reference_normalised
    assert not report.passed
    assert "PoolerConfig(use_activation=False)" in report.failures[0]
    assert report.overall.cosine_min >= 0.999  # same direction: only the norm check sees it
    assert report.overall.norm_ratio_mean < 0.05


def test_sentence_transformers_config_normalises_both_sides(sides: LoadedSides, bundled_model: Path, tmp_path: Path) -> None:
    st_model = _sentence_transformers_copy(bundled_model, tmp_path / "st-last-normalize", "pooling_mode_lasttoken", normalize=True)
    report = run_pooling_compare(PoolingOptions(task="embed", model=str(st_model), limit=LIMIT), sides=sides)
    assert report.passed, report.failures
    assert "sentence-transformers config" in report.sequence_pooling and report.vllm_pooler["normalise"] is True
    state = report.normalisation
    assert state.reference_normalised and state.candidate_normalised
    assert state.reference_norm_mean == pytest.approx(1.0, abs=1e-4) == state.candidate_norm_mean
    assert report.overall.cosine_min >= 0.999


def test_engine_pooling_other_than_the_sentence_transformers_config_is_refused(
    sides: LoadedSides, bundled_model: Path, tmp_path: Path
) -> None:
    st_model = _sentence_transformers_copy(bundled_model, tmp_path / "st-mean", "pooling_mode_mean_tokens", normalize=True)
    with pytest.raises(InputError, match=r"engine pools LAST but this model's embeddings are MEAN"):
        run_pooling_compare(PoolingOptions(task="embed", model=str(st_model), limit=2), sides=sides)


def test_the_token_embed_engine_cannot_serve_the_embed_task(vllm_pooler, pooling_api, tokenizer, bundled_model: Path) -> None:  # type: ignore[no-untyped-def]
    """Why this file starts its own engine: vLLM 0.32 ties LLM.encode to the engine's task."""
    from hf2vllm.pooling.extract import vllm_sequence_embeddings

    requests = prepare_set(PoolingOptions(limit=1), tokenizer, bundled_model)
    with pytest.raises(ValueError, match="pooling_task"):
        vllm_sequence_embeddings(vllm_pooler.llm, pooling_api, requests, normalise=False)

