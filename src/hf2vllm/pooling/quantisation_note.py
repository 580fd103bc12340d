"""The quantisation note of a pooling report: the delta a quantised vLLM side causes, measured.

A quantised engine cannot pass exact checks, so its cosine gate is reported, not enforced; the
normalisation, probe and LoRA checks still gate. The note carries the numbers of *this* run next
to the typical published range.
"""

from __future__ import annotations

from hf2vllm.pooling.metrics import VectorAgreement
from hf2vllm.pooling.report import QuantisationNote
from hf2vllm.pooling.vllm_side import EngineFacts, VllmSide

TYPICAL_QUANTISATION_DELTA = (
    "calibrated methods (GPTQ/AWQ error feedback, SmoothQuant-style activation smoothing for W8A8) exist to "
    "shrink this delta; a round-to-nearest checkpoint has none of that, so treat its delta as an upper bound"
)


def quantisation_note(
    side: VllmSide, facts: EngineFacts | None, overall: VectorAgreement, min_cosine: float, reference_dtype: str
) -> QuantisationNote | None:
    """The measured delta of a quantised vLLM side (None when vLLM runs unquantised)."""
    if not side.quantization and not (facts and facts.quantization):
        return None
    verdict = "would pass" if overall.cosine_min >= min_cosine else "would fail"
    return QuantisationNote(
        method=side.quantization,
        engine_method=facts.quantization if facts else None,
        checkpoint=side.checkpoint if side.separate_checkpoint else None,
        bits=side.bits,
        group_size=side.group_size,
        vllm_dtype=side.dtype,
        reference_dtype=reference_dtype,
        measured=overall,
        gate=f"reported, not enforced: lowest cosine {overall.cosine_min:.6f} {verdict} --min-cosine {min_cosine}",
        expected=TYPICAL_QUANTISATION_DELTA,
    )
