"""Through a fault-injecting proxy in front of the real server: 429 with Retry-After, 500, a dropped
connection and a response slower than the timeout. Every request must be answered exactly once."""

from __future__ import annotations

from pathlib import Path

from hf2vllm.server.journal import read_journal
from hf2vllm.spec import GenerationSpec
from server_support import server_backend
from fault_proxy import FaultProxy

TIMEOUT_S = 15.0


def test_faults_are_retried_until_every_request_is_answered_once(vllm_server, bundled_requests, tmp_path: Path):  # type: ignore[no-untyped-def]
    requests = bundled_requests[:8]
    spec = GenerationSpec.greedy(8, [2])
    direct = server_backend(vllm_server, model=None).generate(requests, spec)
    faults = {requests[0].id: "429", requests[1].id: "500", requests[2].id: "drop", requests[3].id: "slow",
              requests[4].id: "500"}
    root = vllm_server.base_url.removesuffix("/v1")
    with FaultProxy(root, faults, retry_after_s=1.0, slow_s=TIMEOUT_S + 5) as proxy:
        backend = server_backend(proxy.base_url, model=None, served_model=vllm_server.model_name,
                                 journal=tmp_path / "j.jsonl", timeout_s=TIMEOUT_S, backoff_initial_s=0.2,
                                 max_concurrency=4)
        results = backend.generate(requests, spec)
    assert proxy.injected == faults
    assert [r.model_dump() for r in results] == [r.model_dump() for r in direct]
    _, done, torn = read_journal(tmp_path / "j.jsonl")
    assert sorted(done) == sorted(r.id for r in requests) and torn == 0
    stats = backend.describe()["client"]
    assert stats["requests"] == 8 and stats["failures"] == 0
    reasons = stats["retries_by_reason"]
    assert reasons.get("429") == 1 and reasons.get("5xx", 0) >= 2
    assert reasons.get("connection", 0) >= 1 and reasons.get("timeout", 0) >= 1
    assert stats["retries"] == sum(reasons.values()) >= 5
    first, second = proxy.attempts[requests[0].id][:2]
    assert second - first >= 1.0, "the retry after a 429 did not wait for Retry-After"
    for rid in faults:
        assert len(proxy.attempts[rid]) >= 2
