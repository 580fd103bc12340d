"""HF vs vLLM pooling runner on the bundled model: per-token hidden states, the normalisation trap,
and a probe trained here on HF hidden states."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hf2vllm.pooling.extract import hf_hidden_states, vllm_token_states
from hf2vllm.pooling.probe import save_probe
from hf2vllm.pooling.run import LoadedSides, PoolingOptions, prepare_set, run_pooling_compare

LIMIT = 12  # prompts used by the engine tests (of the 50 bundled): ~450 tokens


@pytest.fixture(scope="session")
def sides(hf_model, tokenizer, vllm_pooler) -> LoadedSides:  # type: ignore[no-untyped-def]
    return LoadedSides(hf_model=hf_model, tokenizer=tokenizer, vllm_pooler=vllm_pooler)


@pytest.fixture(scope="session")
def parity_report(sides: LoadedSides):  # type: ignore[no-untyped-def]
    return run_pooling_compare(PoolingOptions(task="hidden-states", limit=LIMIT), sides=sides)


def test_hidden_states_match_per_token_in_float32(parity_report) -> None:  # type: ignore[no-untyped-def]
    report = parity_report
    assert report.passed, report.failures
    assert report.overall.rows == sum(r.tokens for r in report.requests) > 300
    assert report.overall.cosine_min >= 0.999
    assert all(r.agreement.cosine_min >= 0.999 for r in report.requests)
    assert report.overall.relative_l2_error < 1e-3
    assert report.overall.norm_ratio_mean == pytest.approx(1.0, abs=1e-3)


def test_both_sides_are_raw_hidden_states_not_unit_vectors(parity_report) -> None:  # type: ignore[no-untyped-def]
    state = parity_report.normalisation
    assert not state.reference_normalised and not state.candidate_normalised
    assert state.reference_norm_mean > 10  # raw last-layer norms of the bundled model are ~46


def test_vllm_normalises_token_embeddings_unless_told_not_to() -> None:
    """The installed vLLM's default for a request that sets nothing (and a pooler config that sets
    nothing) is to normalise: that is the trap the tool's explicit setting avoids."""
    from vllm.pooling_params import PoolingParams

    params = PoolingParams(task="token_embed")
    params._set_default_parameters(None)  # type: ignore[arg-type]  # model_config only read for dimensions
    assert params.use_activation is True


def test_default_normalisation_is_caught_and_the_fix_is_named(sides: LoadedSides) -> None:
    report = run_pooling_compare(PoolingOptions(task="hidden-states", limit=4, vllm_normalise="on"), sides=sides)
    assert report.normalisation.candidate_normalised and not report.normalisation.reference_normalised
    assert not report.passed
    assert "PoolerConfig(use_activation=False)" in report.failures[0]
    # Direction still agrees (cosine ~1): only the norm check can see this failure.
    assert report.overall.cosine_min >= 0.999 and report.overall.norm_ratio_mean < 0.05


def _user_content_spans(requests, tokenizer) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    """[start, end) of the user message's tokens, found from the token ids of the ChatML template."""
    start_id, end_id = tokenizer.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    spans = []
    for req in requests:
        ids = req.prompt_token_ids
        header = next(i for i in range(len(ids) - 1) if ids[i] == start_id and tokenizer.decode([ids[i + 1]]) == "user")
        start = header + 3  # <|im_start|> user \n
        spans.append((start, ids.index(end_id, start)))
    return spans


@pytest.fixture(scope="session")
def trained_probe(sides: LoadedSides, tmp_path_factory: pytest.TempPathFactory, bundled_model: Path):  # type: ignore[no-untyped-def]
    """A logistic-regression probe (with bias) trained on HF hidden states: "is this token part of
    the user's message?" Also writes a labelled set of the same prompts (spans in token positions)."""
    tmp = tmp_path_factory.mktemp("probe")
    requests = prepare_set(PoolingOptions(limit=LIMIT), sides.tokenizer, bundled_model)
    states = hf_hidden_states(sides.hf_model, requests)
    spans = _user_content_spans(requests, sides.tokenizer)
    x = np.concatenate(states)
    y = np.concatenate([((np.arange(len(s)) >= a) & (np.arange(len(s)) < b)).astype(float) for s, (a, b) in zip(states, spans)])
    # Trained on centred, scaled features (as a StandardScaler pipeline would), then folded back into
    # one linear layer on raw hidden states: the bias then carries the mean, as in real probes.
    mu, sigma = x.mean(axis=0), x.std()
    z = (x - mu) / sigma
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(300):  # plain gradient descent on the logistic loss: ~1 s
        p = 1 / (1 + np.exp(-(z @ w + b)))
        w -= 0.5 * (z.T @ (p - y)) / len(y)
        b -= 0.5 * float(np.mean(p - y))
    w, b = w / sigma, b - float(w @ mu) / sigma
    train_accuracy = float(np.mean(((x @ w + b) > 0) == (y > 0.5)))
    probe_path = save_probe(tmp / "user-token.safetensors", [(w[None, :], np.array([b]))], labels=["template", "user"])
    labelled = tmp / "labelled.jsonl"
    with labelled.open("w") as fh:
        for req, (a, e) in zip(requests, spans):
            sys_span = [3, 10]  # inside the system prompt: "You are a helpful AI assistant named"
            fh.write(json.dumps({"id": req.id, "messages": req.source.messages, "spans": [[a, e], sys_span], "label": ["user", "template"]}) + "\n")
    return probe_path, labelled, train_accuracy


def test_probe_trained_on_hf_gives_same_predictions_on_vllm_when_normalisation_is_off(sides, trained_probe) -> None:  # type: ignore[no-untyped-def]
    probe_path, labelled, train_accuracy = trained_probe
    assert train_accuracy > 0.9  # the probe learned something; otherwise agreement would be trivial
    report = run_pooling_compare(PoolingOptions(task="hidden-states", probe=probe_path, prompts=labelled), sides=sides)
    probe = report.probe
    assert probe.rows == report.overall.rows
    assert probe.agreement_rate == 1.0 and not probe.disagreements
    assert probe.labelled_spans == 2 * LIMIT
    assert probe.reference_accuracy == probe.candidate_accuracy > 0.9


def test_probe_predictions_flip_measurably_with_vllm_normalisation_on(sides, trained_probe) -> None:  # type: ignore[no-untyped-def]
    probe_path, labelled, _ = trained_probe
    report = run_pooling_compare(
        PoolingOptions(task="hidden-states", probe=probe_path, prompts=labelled, vllm_normalise="on"), sides=sides
    )
    probe = report.probe
    assert probe.agreement_rate < 0.9, probe.agreement_rate
    assert probe.disagreements and probe.disagreements[0].token is not None
    assert probe.candidate_accuracy < probe.reference_accuracy
    assert any("probe predictions differ" in f for f in report.failures)


def test_labelled_span_outside_the_prompt_is_an_input_error(sides, tmp_path: Path, trained_probe) -> None:  # type: ignore[no-untyped-def]
    from hf2vllm.errors import InputError

    probe_path, _, _ = trained_probe
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "messages": [{"role": "user", "content": "hi"}], "spans": [[5, 500]], "label": 1}) + "\n")
    with pytest.raises(InputError, match=r"span \[5, 500\] is outside its \d+ prompt tokens"):
        run_pooling_compare(PoolingOptions(probe=probe_path, prompts=bad), sides=sides)


def test_vllm_hidden_states_of_one_request_do_not_depend_on_the_batch(sides, pooling_api, bundled_model: Path) -> None:  # type: ignore[no-untyped-def]
    requests = prepare_set(PoolingOptions(limit=6), sides.tokenizer, bundled_model)
    alone = vllm_token_states(sides.vllm_pooler.llm, pooling_api, requests[:1], normalise=False)[0]
    batched = vllm_token_states(sides.vllm_pooler.llm, pooling_api, requests, normalise=False)[0]
    np.testing.assert_allclose(alone, batched, rtol=1e-4, atol=1e-4)
