"""Verdicts over measured numbers: normalisation mismatch, parity threshold, LoRA really applied.

Pure functions; the error they raise names the setting that fixes the problem.
"""

from __future__ import annotations

from hf2vllm.errors import ParityGateError
from hf2vllm.pooling.metrics import NormalisationState, VectorAgreement
from hf2vllm.pooling.vllm_compat import PoolingAPI

DEFAULT_MIN_COSINE = 0.999
DEFAULT_LORA_MIN_EFFECT = 0.01
"""An adapter counts as applied on a side when it moves that side's hidden states by more than 1%
(relative L2). A random rank-8 adapter on q/v moves the bundled model's by ~10-40%; float32 noise
between backends is ~1e-6, so the gap between "applied" and "not applied" is orders of magnitude."""


class NormalisationMismatchError(ParityGateError):
    """One side L2-normalised its vectors and the other did not: every downstream head is affected."""


def normalisation_fix(state: NormalisationState, api: PoolingAPI | None) -> str | None:
    """The message for a normalisation mismatch, or None when both sides agree on normalisation."""
    if not state.mismatch:
        return None
    field = api.normalise_field if api else "use_activation"
    if state.candidate_normalised:
        return (
            f"vLLM returned L2-normalised vectors (mean norm {state.candidate_norm_mean:.3f}) but HF's are raw "
            f"(mean norm {state.reference_norm_mean:.2f}): vLLM's pooling runner normalises by default. Set "
            f"PoolerConfig({field}=False) on the engine (vllm serve: --pooler-config '{{\"{field}\": false}}'), "
            f"or PoolingParams({field}=False) per request; a probe/head trained on raw hidden states "
            "mis-predicts on normalised ones"
        )
    return (
        f"HF vectors are L2-normalised (mean norm {state.reference_norm_mean:.3f}) but vLLM's are raw "
        f"(mean norm {state.candidate_norm_mean:.2f}): normalise on the vLLM side with "
        f"PoolerConfig({field}=True) / PoolingParams({field}=True), or stop normalising on the HF side"
    )


def check_normalisation(state: NormalisationState, api: PoolingAPI | None) -> None:
    """Raise ``NormalisationMismatchError`` (exit 1) naming the fix when the sides disagree."""
    message = normalisation_fix(state, api)
    if message:
        raise NormalisationMismatchError(message)


def parity_failures(overall: VectorAgreement, min_cosine: float) -> list[str]:
    if overall.cosine_min < min_cosine:
        return [f"lowest per-token cosine {overall.cosine_min:.6f} is below {min_cosine}"]
    return []


def lora_applied(base_vs_adapter: VectorAgreement, min_effect: float = DEFAULT_LORA_MIN_EFFECT) -> bool:
    """The adapter moved this side's vectors by more than ``min_effect`` (relative L2)."""
    return base_vs_adapter.relative_l2_error > min_effect
