"""Sampling-argument rules (HVD001-HVD005): HF generate() settings carried into vLLM and back."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from hf2vllm.doctor.context import FileContext
from hf2vllm.doctor.knowledge import (
    HF_ONLY_SAMPLING_KWARGS,
    vllm_sampling_fields,
)
from hf2vllm.doctor.model import Example, Hit, Rule, Severity
from hf2vllm.doctor.python_source import constant, keyword
from hf2vllm.doctor.rules.common import PY, at, hf_generation_calls, module_of, sampling_params_calls


# -- HVD001 -------------------------------------------------------------------------------------------
def check_hf_only_sampling_kwarg(ctx: FileContext) -> Iterator[Hit]:
    for call in sampling_params_calls(module_of(ctx)):
        for kw in call.keywords:
            if kw.arg in HF_ONLY_SAMPLING_KWARGS:
                entry = HF_ONLY_SAMPLING_KWARGS[kw.arg]
                yield at(kw, f"`{kw.arg}=` is a Transformers generate() argument, not a SamplingParams field: "
                              f"{entry.suggestion}", fixable=entry.rename_to is not None)


HVD001 = Rule(
    id="HVD001", name="hf-only-sampling-kwarg", severity=Severity.ERROR, applies_to=PY,
    summary="A Transformers-only generate() argument is passed to vLLM SamplingParams.",
    why="SamplingParams rejects unknown keywords (TypeError at start-up), and the arguments that "
        "look alike differ: HF `max_length` counts the prompt, `do_sample` has no vLLM home (greedy "
        "is `temperature=0`), beam search lives in `BeamSearchParams`.",
    fix="Use the vLLM name the message gives. `--fix` renames the exact equivalents "
        "(`max_new_tokens`->`max_tokens`, `min_new_tokens`->`min_tokens`, `num_return_sequences`->`n`).",
    bad=Example.of("generate_vllm.py", """\
from vllm import SamplingParams

params = SamplingParams(max_new_tokens=128, temperature=0.7, top_p=0.9)
"""),
    good=Example.of("generate_vllm.py", """\
from vllm import SamplingParams

params = SamplingParams(max_tokens=128, temperature=0.7, top_p=0.9)
"""),
    check=check_hf_only_sampling_kwarg, fixable=True,
)


# -- HVD002 -------------------------------------------------------------------------------------------
def check_unknown_sampling_kwarg(ctx: FileContext) -> Iterator[Hit]:
    fields = vllm_sampling_fields()
    for call in sampling_params_calls(module_of(ctx)):
        for kw in call.keywords:
            if kw.arg is None or kw.arg in fields or kw.arg in HF_ONLY_SAMPLING_KWARGS:
                continue
            close = difflib.get_close_matches(kw.arg, sorted(fields), n=1, cutoff=0.6)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            yield at(kw, f"`{kw.arg}=` is not a SamplingParams field in the installed vLLM{hint}")


HVD002 = Rule(
    id="HVD002", name="unknown-sampling-kwarg", severity=Severity.ERROR, applies_to=PY,
    summary="SamplingParams gets a keyword it does not have (often a misspelling).",
    why="vLLM raises at the first request, or, when the dict is built elsewhere and filtered, the "
        "setting is silently lost. The doctor reads the field list from the installed vLLM.",
    fix="Use the field name the message suggests; check `vllm.SamplingParams` of your vLLM version.",
    bad=Example.of("sampling.py", """\
from vllm import SamplingParams

params = SamplingParams(max_token=64, temprature=0.0)
"""),
    good=Example.of("sampling.py", """\
from vllm import SamplingParams

params = SamplingParams(max_tokens=64, temperature=0.0)
"""),
    check=check_unknown_sampling_kwarg,
)





def check_hf_temperature_zero(ctx: FileContext) -> Iterator[Hit]:
    for call in hf_generation_calls(module_of(ctx)):
        kw = keyword(call, "temperature")
        if kw is not None and constant(kw.value, None) in (0, 0.0) and constant(kw.value, None) is not False:
            yield at(kw, "`temperature=0` in Transformers generation: greedy is `do_sample=False` "
                          "(temperature 0 raises with do_sample=True and is ignored otherwise)")


HVD003 = Rule(
    id="HVD003", name="hf-temperature-zero", severity=Severity.ERROR, applies_to=PY,
    summary="`temperature=0` passed to Transformers generate() (the vLLM spelling of greedy).",
    why="Transformers validates temperature as strictly positive when sampling and ignores it when "
        "`do_sample=False`; greedy decoding in HF is `do_sample=False`, not temperature 0.",
    fix="Pass `do_sample=False` (and no temperature) to generate(); keep `temperature=0` for vLLM only.",
    bad=Example.of("hf_side.py", """\
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("gpt2")
out = model.generate(**inputs, max_new_tokens=32, temperature=0)
"""),
    good=Example.of("hf_side.py", """\
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("gpt2")
out = model.generate(**inputs, max_new_tokens=32, do_sample=False)
"""),
    check=check_hf_temperature_zero,
)

_SAMPLING_ONLY = ("temperature", "top_p", "top_k", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff")


def check_greedy_ignores_sampling(ctx: FileContext) -> Iterator[Hit]:
    for call in hf_generation_calls(module_of(ctx)):
        do_sample = keyword(call, "do_sample")
        if do_sample is None or constant(do_sample.value, None) is not False:
            continue
        for name in _SAMPLING_ONLY:
            kw = keyword(call, name)
            if kw is None:
                continue
            value = constant(kw.value, "<expr>")
            if value is None or (name == "temperature" and value in (0, 0.0)):
                continue  # None clears the knob; temperature 0 is HVD003
            yield at(kw, f"`do_sample=False` makes generation greedy: `{name}=` is ignored here, "
                          "but a vLLM port that copies it will sample")


HVD004 = Rule(
    id="HVD004", name="greedy-ignores-sampling-params", severity=Severity.WARNING, applies_to=PY,
    summary="`do_sample=False` together with sampling parameters that generate() then ignores.",
    why="With `do_sample=False` Transformers drops temperature/top_p/top_k (with a warning). The "
        "code reads as if it samples; whoever ports it to vLLM copies the sampling values and gets a "
        "different, random output.",
    fix="Decide: greedy (drop the sampling arguments; vLLM `temperature=0`) or sampling "
        "(`do_sample=True`; vLLM the same temperature/top_p/top_k, and top_k explicitly since HF "
        "defaults to 50).",
    bad=Example.of("hf_side.py", """\
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("gpt2")
out = model.generate(**inputs, do_sample=False, top_p=0.9, max_new_tokens=32)
"""),
    good=Example.of("hf_side.py", """\
from transformers import AutoModelForCausalLM

model = AutoModelForCausalLM.from_pretrained("gpt2")
out = model.generate(**inputs, do_sample=False, max_new_tokens=32)
"""),
    check=check_greedy_ignores_sampling,
)


# -- HVD005 -------------------------------------------------------------------------------------------
def check_vllm_default_temperature(ctx: FileContext) -> Iterator[Hit]:
    py = module_of(ctx)
    greedy = [
        c for c in py.hf_generate_calls
        if (kw := keyword(c, "do_sample")) is not None and constant(kw.value, None) is False
    ]
    if not greedy:
        return
    for call in sampling_params_calls(py):
        if keyword(call, "temperature") is None and all(kw.arg is not None for kw in call.keywords):
            yield at(call, "SamplingParams without `temperature` samples at temperature 1.0, while the HF "
                            f"side of this file is greedy (line {greedy[0].lineno}): pass `temperature=0`")


HVD005 = Rule(
    id="HVD005", name="vllm-default-temperature", severity=Severity.WARNING, applies_to=PY,
    summary="vLLM SamplingParams left at its default temperature (1.0) next to greedy HF generation.",
    why="Transformers' greedy `do_sample=False` has no vLLM flag: vLLM samples unless `temperature=0`. "
        "The two sides of the comparison then answer differently on every run.",
    fix="Pass `temperature=0` to SamplingParams (or build both sides from one `GenerationSpec`).",
    bad=Example.of("compare.py", """\
from transformers import AutoModelForCausalLM
from vllm import SamplingParams

model = AutoModelForCausalLM.from_pretrained("gpt2")
hf_out = model.generate(**inputs, do_sample=False, max_new_tokens=32)
params = SamplingParams(max_tokens=32)
"""),
    good=Example.of("compare.py", """\
from transformers import AutoModelForCausalLM
from vllm import SamplingParams

model = AutoModelForCausalLM.from_pretrained("gpt2")
hf_out = model.generate(**inputs, do_sample=False, max_new_tokens=32)
params = SamplingParams(max_tokens=32, temperature=0)
"""),
    check=check_vllm_default_temperature,
)
