"""Sampling settings: vLLM's samples follow the exact distribution Transformers samples from.

For one prompt, Transformers' processed next-token scores (``output_scores``: after temperature,
top-k, top-p, min-p) give the *exact* distribution ``generate()`` samples from; vLLM draws
``SAMPLES`` single-step samples with the translated ``SamplingParams`` (one request, ``n=SAMPLES``).
A chi-square goodness-of-fit test at significance ``ALPHA`` compares them; a sampled token that
Transformers gives probability 0 fails outright. Each case also plants a mistranslation (for instance
dropping Transformers' implicit ``top_k=50``) and asserts the same test rejects it, so the test is
shown to have the power to catch the bugs it is about.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from hf2vllm.requests import ChatRequest, prepare_requests
from hf2vllm.spec import GenerationSpec

pytestmark = pytest.mark.engine

SAMPLES = 1000  # the planted mistranslations put 5-25% of the mass on tokens Transformers rules out: ~50+ hits
ALPHA = 1e-3
MIN_EXPECTED = 5.0  # chi-square cells need an expected count of at least 5; rarer tokens are pooled
# Two tokens with a broad next-token distribution (entropy ~4.6 nats, 23% of the mass beyond the top
# 50): every planted mistranslation shifts it visibly. A short prompt also keeps the test fast: each of
# the n samples is its own request whose prompt vLLM computes again (shorter than a KV block, so no
# prefix-cache hit), 2 tokens instead of 7 is ~4x less engine time.
PROMPT = "Today I"


@dataclass
class FitResult:
    chi2: float
    dof: int
    p_value: float
    impossible: dict[int, int]  # tokens sampled although Transformers gives them probability 0

    @property
    def consistent(self) -> bool:
        return not self.impossible and self.p_value >= ALPHA


def goodness_of_fit(probs: Any, counts: Counter[int]) -> FitResult:
    """Pearson chi-square of ``counts`` against ``probs`` (a 1-D tensor), rare cells pooled."""
    import torch

    total = sum(counts.values())
    expected = probs.double() * total
    cells = (expected >= MIN_EXPECTED).nonzero().flatten().tolist()
    impossible = {t: c for t, c in counts.items() if float(probs[t]) == 0.0}
    observed = [counts.get(t, 0) for t in cells]
    exp = [float(expected[t]) for t in cells]
    pooled_obs = total - sum(observed)
    pooled_exp = total - sum(exp)
    if pooled_exp >= 1e-9:
        observed.append(pooled_obs)
        exp.append(pooled_exp)
    elif pooled_obs:
        impossible.setdefault(-1, pooled_obs)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, exp, strict=True))
    dof = max(len(exp) - 1, 1)
    # chi2 survival function = regularized upper incomplete gamma Q(dof/2, chi2/2)
    p_value = float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                            torch.tensor(chi2 / 2, dtype=torch.float64)))
    return FitResult(chi2=chi2, dof=dof, p_value=p_value, impossible=impossible)


@pytest.fixture(scope="module")
def prompt(tokenizer):  # type: ignore[no-untyped-def]
    return prepare_requests([ChatRequest(id="story", prompt=PROMPT)], tokenizer)[0]


def hf_next_token_distribution(hf_backend, prompt, spec: GenerationSpec):  # type: ignore[no-untyped-def]
    """The distribution Transformers' generate() samples the first token from (processed scores)."""
    import torch

    kwargs = {**spec.to_hf_generate_kwargs(), "max_new_tokens": 1, "min_new_tokens": None}
    ids = torch.tensor([prompt.prompt_token_ids])
    out = hf_backend.model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), pad_token_id=hf_backend.pad_token_id,
        output_scores=True, return_dict_in_generate=True, **kwargs,
    )
    return torch.softmax(out.scores[0][0].float(), dim=-1)


def vllm_first_token_counts(vllm_backend, prompt, vllm_kwargs: dict[str, Any]) -> Counter[int]:  # type: ignore[no-untyped-def]
    from vllm import SamplingParams

    params = SamplingParams(**{**vllm_kwargs, "n": SAMPLES, "max_tokens": 1, "min_tokens": 0, "seed": 1234})
    out = vllm_backend.llm.generate([{"prompt_token_ids": prompt.prompt_token_ids}], params, use_tqdm=False)
    return Counter(c.token_ids[0] for c in out[0].outputs)


def _set(**changes: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda kwargs: {**kwargs, **changes}


CASES = [
    # (HF generate() kwargs, planted mistranslation of the vLLM kwargs)
    pytest.param({"do_sample": True}, _set(top_k=-1), id="implicit-top_k=50-dropped"),
    pytest.param({"do_sample": True, "temperature": 0.6, "top_k": None}, _set(temperature=1.0),
                 id="temperature-ignored"),
    pytest.param({"do_sample": True, "top_p": 0.7, "top_k": None}, _set(top_p=1.0), id="top_p-dropped"),
    pytest.param({"do_sample": True, "min_p": 0.05, "top_k": None}, _set(min_p=0.0), id="min_p-dropped"),
    pytest.param({"do_sample": True, "temperature": 1.3, "top_k": 30, "top_p": 0.9}, _set(top_k=-1),
                 id="combination-top_k-dropped"),
]


@pytest.mark.parametrize(("hf_kwargs", "mistranslate"), CASES)
def test_vllm_samples_follow_transformers_distribution_and_a_mistranslation_is_detected(
    hf_backend, vllm_backend, bundled_model, prompt, hf_kwargs, mistranslate  # type: ignore[no-untyped-def]
):
    spec = GenerationSpec.from_hf({**hf_kwargs, "max_new_tokens": 1}, model=bundled_model)
    probs = hf_next_token_distribution(hf_backend, prompt, spec)

    translated = goodness_of_fit(probs, vllm_first_token_counts(vllm_backend, prompt, spec.to_vllm()))
    assert translated.consistent, (
        f"translated settings: chi2={translated.chi2:.1f} dof={translated.dof} p={translated.p_value:.2e}, "
        f"impossible tokens {translated.impossible}"
    )

    planted = goodness_of_fit(probs, vllm_first_token_counts(vllm_backend, prompt, mistranslate(spec.to_vllm())))
    assert not planted.consistent, (
        f"the planted mistranslation was not detected: p={planted.p_value:.2e}; the test lacks power"
    )
