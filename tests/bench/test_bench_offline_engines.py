"""The offline benchmark on the real HF model and the shared vLLM engine, at tiny scale (no timings asserted)."""

from __future__ import annotations

import statistics

import pytest

from hf2vllm.bench.decay import decay_curve, hf_token_times
from hf2vllm.bench.offline import OfflineBenchOptions, _sweep, run_offline, sign_test_p
from hf2vllm.parity.run import load_tokenizer, stop_token_ids

pytestmark = pytest.mark.engine

REQUESTS, TOKENS = 3, 4


@pytest.fixture(scope="module")
def offline_report(hf_backend, vllm_backend):  # type: ignore[no-untyped-def]
    options = OfflineBenchOptions(limit=REQUESTS, max_new_tokens=TOKENS, batch_sizes=[1, 2, 4])
    report = run_offline(options, hf_backend=hf_backend, vllm_backend=vllm_backend)
    return report, hf_backend, vllm_backend


def test_every_mode_runs_on_the_same_requests(offline_report) -> None:  # type: ignore[no-untyped-def]
    report, _, _ = offline_report
    labels = [m.label for m in report.modes]
    assert labels[:2] == ["HF sequential", "HF batched (bs=1)"]
    assert {"HF batched (bs=2)", "vLLM one at a time", "vLLM all at once"} <= set(labels)
    assert any(m.mode == "hf_plain_loop" for m in report.modes)
    skipped = next(m for m in report.modes if m.batch_size == 4 and m.mode == "hf_batched")
    assert skipped.status == "skipped" and "above the 3 requests" in (skipped.note or "")


def test_fixed_output_length_makes_both_backends_generate_the_same_token_count(offline_report) -> None:  # type: ignore[no-untyped-def]
    report, _, _ = offline_report
    for mode in (m for m in report.modes if m.status == "ok"):
        assert mode.output_tokens == REQUESTS * TOKENS, mode.label
        assert mode.output_lengths_equal, mode.label
        assert mode.total_seconds > 0 and mode.peak_rss_mib > 0
    # One timing per mode, except the fairness pair: the plain loop once per pair, interleaved with as
    # many more timings of the best batch size on top of its sweep timing.
    pairs = OfflineBenchOptions().fairness_pairs
    timings = {m.label: len(m.repeats) for m in report.modes if m.status == "ok"}
    plain = next(m for m in report.modes if m.mode == "hf_plain_loop")
    best = f"HF batched (bs={plain.batch_size})"
    assert timings.pop(plain.label) == pairs and timings.pop(best) == 1 + pairs
    assert set(timings.values()) == {1}


def test_speedups_are_relative_to_the_best_hf_batch_and_fairness_uses_that_size(offline_report) -> None:  # type: ignore[no-untyped-def]
    report, _, _ = offline_report
    best = max((m for m in report.modes if m.mode == "hf_batched" and m.status == "ok"),
               key=lambda m: m.output_tokens_per_second)
    assert report.best_hf_batch_size == best.batch_size
    ratios = {s.label: s.ratio_vs_hf_batched_best for s in report.speedups}
    assert ratios[best.label] == 1.0
    assert report.fairness is not None and report.fairness.batch_size == best.batch_size
    plain = next(m for m in report.modes if m.mode == "hf_plain_loop")
    assert plain.batch_size == best.batch_size
    fair = report.fairness
    assert fair.hf_batched_repeats == best.repeats and fair.plain_loop_repeats == plain.repeats
    # The verdict's ratio is the median of the per-pair ratios (the sweep timing is not in a pair).
    pairs = list(zip(best.repeats[1:], plain.repeats, strict=True))
    assert fair.pair_ratios == [round(b / p, 4) for b, p in pairs]
    assert fair.ratio == round(statistics.median(b / p for b, p in pairs), 4)
    # The default number of pairs is enough for the sign test to judge the loop's wins.
    wins = sum(b < p for b, p in pairs)
    assert fair.loop_faster_pairs == wins and fair.sign_test_p == round(sign_test_p(wins, len(pairs)), 4)


def test_shared_backends_get_their_batch_size_back(offline_report) -> None:  # type: ignore[no-untyped-def]
    from hf2vllm.backends.hf import HFBackend

    _, hf, vllm = offline_report
    # The shared HF backend was made with the defaults; the sweep must leave them as it found them.
    defaults = {name: HFBackend.__init__.__kwdefaults__[name] for name in ("batch_size", "max_batch_tokens")}
    assert (hf.batch_size, hf.max_batch_tokens) == (defaults["batch_size"], defaults["max_batch_tokens"])
    assert vllm.batch_size is None


def test_hf_decay_times_every_decode_step_of_a_batch(hf_backend, bundled_model) -> None:  # type: ignore[no-untyped-def]
    tokenizer = load_tokenizer(bundled_model)
    prompts = [tokenizer("Hello there")["input_ids"], tokenizer("Count to ten please")["input_ids"]]
    times = hf_token_times(hf_backend.model, prompts, max_new_tokens=6, pad_token_id=hf_backend.pad_token_id,
                           eos_token_ids=stop_token_ids(bundled_model, tokenizer))
    assert [len(t) for t in times] == [6, 6]
    assert all(b >= a for a, b in zip(times[0], times[0][1:], strict=False))
    curve = decay_curve(times, 2, "HF batched (bs=2)")
    assert [b.tokens for b in curve.buckets] == [2, 4, 4]


def test_sweep_backs_off_to_half_the_batch_after_running_out_of_memory() -> None:
    from hf2vllm.requests import ChatRequest, PreparedRequest

    reqs = [PreparedRequest(id=str(i), prompt_token_ids=[1, 2], prompt_text="x",
                            source=ChatRequest(id=str(i), prompt="x")) for i in range(8)]
    tried: list[int] = []

    def generate_with_batch(bs: int) -> list[int]:
        tried.append(bs)
        if bs >= 8:
            raise MemoryError("cannot allocate")
        return [4] * len(reqs)

    out = _sweep(generate_with_batch, reqs, OfflineBenchOptions(batch_sizes=[2, 8, 16]), [], lambda _m: None)
    assert tried == [2, 8, 4]
    assert [(m.batch_size, m.status) for m in out] == [(2, "ok"), (8, "oom"), (4, "ok")]
    assert "OOM back-off" in out[-1].label
