"""The server is the same engine on a different path: its answers must be offline vLLM's."""

from __future__ import annotations

from hf2vllm.parity.compare import first_divergence
from hf2vllm.spec import GenerationSpec
from server_support import server_backend


def test_server_matches_hf_at_the_offline_vllm_exact_match_rate(bundled_report, bundled_requests, vllm_server):  # type: ignore[no-untyped-def]
    spec = GenerationSpec(**bundled_report.generation)
    backend = server_backend(vllm_server, model=None)
    results = {r.request_id: r for r in backend.generate(bundled_requests, spec)}
    rows = bundled_report.requests
    assert [r.id for r in rows] == [r.id for r in bundled_requests]
    server_vs_hf = [first_divergence(row.reference_token_ids, results[row.id].output_token_ids) is None for row in rows]
    assert sum(server_vs_hf) / len(rows) == bundled_report.summary.exact_match_rate
    differing = [row.id for row in rows if results[row.id].output_token_ids != row.candidate_token_ids]
    assert differing == [], f"server and offline vLLM differ on {differing}"
    assert backend.describe()["client"]["retries"] == 0


def test_server_logprobs_equal_offline_vllm_within_float_tolerance(vllm_backend, bundled_requests, vllm_server, tokenizer):  # type: ignore[no-untyped-def]
    from hf2vllm.parity.run import stop_token_ids

    spec = GenerationSpec.greedy(16, stop_token_ids(vllm_backend.model_path, tokenizer)).model_copy(update={"logprobs": 5})
    requests = bundled_requests[:8]
    offline = vllm_backend.generate(requests, spec)
    served = server_backend(vllm_server, model=None, stream=True).generate(requests, spec)
    for a, b in zip(offline, served, strict=True):
        assert a.output_token_ids == b.output_token_ids, a.request_id
        assert a.logprobs is not None and b.logprobs is not None
        for pos, (x, y) in enumerate(zip(a.logprobs, b.logprobs, strict=True)):
            assert abs(x.logprob - y.logprob) < 1e-3, (a.request_id, pos)
            assert len(y.top) == 5
            shared = set(x.top) & set(y.top)
            assert len(shared) >= 4, (a.request_id, pos)  # a near-tie may swap the 5th alternative
            assert all(abs(x.top[t] - y.top[t]) < 1e-3 for t in shared)
