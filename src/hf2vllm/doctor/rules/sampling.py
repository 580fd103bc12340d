"""Sampling-argument rules (HVD001-HVD005): HF generate() settings carried into vLLM and back."""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterator

from hf2vllm.doctor.context import FileContext
from hf2vllm.doctor.knowledge import (
    HF_ONLY_SAMPLING_KWARGS,
    vllm_sampling_fields,
)
from hf2vllm.doctor.model import Example, Hit, Rule, Severity
from hf2vllm.doctor.python_source import constant, dotted, keyword
from hf2vllm.doctor.rules.common import (
    PY,
    at,
    at_passed,
    hf_generation_calls,
    module_of,
    passed_keywords,
    sampling_params_calls,
)


# -- HVD001 -------------------------------------------------------------------------------------------
def check_hf_only_sampling_kwarg(ctx: FileContext) -> Iterator[Hit]:
    for call in sampling_params_calls(module_of(ctx)):
        for kw in passed_keywords(ctx, call):
            if kw.name in HF_ONLY_SAMPLING_KWARGS:
                entry = HF_ONLY_SAMPLING_KWARGS[kw.name]
                # Only a keyword written in the call itself is renamed: a dict key may feed HF as well.
                yield at_passed(ctx, call, kw, f"`{kw.name}=` is a Transformers generate() argument, not a "
                                               f"SamplingParams field: {entry.suggestion}",
                                fixable=kw.direct and entry.rename_to is not None)
            elif kw.name in _HF_LENGTHS.values() and (source := _hf_key_read(kw.value)) is not None:
                yield at_passed(ctx, call, kw, f"`{kw.name}=` takes HF `{source}`, which counts the prompt: "
                                               f"{HF_ONLY_SAMPLING_KWARGS[source].suggestion}")
    for target, value in sampling_attribute_stores(ctx):
        if target.attr in HF_ONLY_SAMPLING_KWARGS:
            yield at(target, f"`.{target.attr}` set on SamplingParams is a Transformers generate() setting: "
                             f"{HF_ONLY_SAMPLING_KWARGS[target.attr].suggestion}")
        elif target.attr in _HF_LENGTHS.values() and (source := _hf_key_read(value)) is not None:
            yield at(target, f"`.{target.attr}` set from HF `{source}`, which counts the prompt: "
                             f"{HF_ONLY_SAMPLING_KWARGS[source].suggestion}")


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
        for kw in passed_keywords(ctx, call):
            if kw.name in fields or kw.name in HF_ONLY_SAMPLING_KWARGS:
                continue
            close = difflib.get_close_matches(kw.name, sorted(fields), n=1, cutoff=0.6)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            yield at_passed(ctx, call, kw, f"`{kw.name}=` is not a SamplingParams field in the installed vLLM{hint}")
    for target, _value in sampling_attribute_stores(ctx):
        if target.attr in fields or target.attr in HF_ONLY_SAMPLING_KWARGS or target.attr.startswith("_"):
            continue
        close = difflib.get_close_matches(target.attr, sorted(fields), n=1, cutoff=0.6)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        yield at(target, f"`.{target.attr}` is not a SamplingParams field in the installed vLLM (setting it raises "
                         f"AttributeError){hint}")


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


# -- HVD021 -------------------------------------------------------------------------------------------
_SINGLE_SPECIAL_TOKEN = re.compile(r"^(<[^<>\s]{1,60}>|\[/?[A-Z_]{2,20}\])$")
_EVERY_SPECIAL = {"additional_special_tokens_ids", "all_special_ids"}
# SamplingParams validates its ids at construction ("stop_token_ids must contain only integers"); an
# attribute set afterwards is not validated and a None there simply never matches, so only the former counts.
_NONE_STOP = "`None` in the stop ids: SamplingParams raises \"stop_token_ids must contain only integers\""


def _stop_id_sources(ctx: FileContext, node: ast.AST, depth: int = 0) -> Iterator[tuple[ast.AST, str]]:
    """(node, problem) for each part of a stop-id expression that encodes text or takes every special id."""
    if depth > 3:
        return
    resolver = ctx.resolver
    if depth == 0 and isinstance(node, ast.List | ast.Tuple) and any(isinstance(e, ast.Constant) and e.value is None
                                                                     for e in node.elts):
        yield node, _NONE_STOP
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in _EVERY_SPECIAL:
            yield sub, (f"`{sub.attr}` makes every additional special token a stop token (tool, image, "
                        "reasoning markers...): generation ends at the first one the model emits")
        elif isinstance(sub, ast.Call):
            encoded = _encoded_text(sub)
            if encoded is None:
                continue
            parent = module_of(ctx).parents.get(id(sub))
            if isinstance(parent, ast.Subscript) or (isinstance(parent, ast.Attribute) and parent.attr != "input_ids"):
                if not (isinstance(parent, ast.Subscript) and isinstance(parent.slice, ast.Constant)
                        and parent.slice.value == "input_ids"):
                    continue  # encode(s)[-1]: one chosen id
            text = resolver.constant(encoded)
            if isinstance(text, str) and _SINGLE_SPECIAL_TOKEN.match(text):
                continue
            shown = repr(text) if isinstance(text, str) else f"`{ast.unparse(encoded)}`"
            yield sub, (f"stop ids from encoding {shown}: each of its tokens becomes an independent stop, so "
                        "generation ends at the first piece of it (and a string is not always tokenised the same "
                        "way in context); pass the text as `stop=[...]`")
        elif isinstance(sub, ast.Name) and depth < 3 and isinstance(sub.ctx, ast.Load):
            for store in resolver.stores(sub.id, resolver.scope_of(sub)):
                if isinstance(store, ast.Assign | ast.AnnAssign) and store.value is not None:
                    for inner, problem in _stop_id_sources(ctx, store.value, depth + 1):
                        yield (sub if inner is not sub else inner), problem


def _encoded_text(call: ast.Call) -> ast.AST | None:
    """``S`` of ``tokenizer.encode(S)`` / ``tokenizer(S)`` (the call that turns text into ids), else None."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in ("encode", "convert_tokens_to_ids") and call.args:
        return call.args[0] if func.attr == "encode" else None
    if isinstance(func, ast.Name) and "tok" in func.id.lower() and call.args:
        return call.args[0]
    if isinstance(func, ast.Attribute) and "tok" in func.attr.lower() and call.args:
        return call.args[0]
    return None


def check_stop_ids_from_text(ctx: FileContext) -> Iterator[Hit]:
    py = module_of(ctx)
    targets: list[tuple[ast.Call, str]] = [(c, "stop_token_ids") for c in sampling_params_calls(py)]
    targets += [(c, "eos_token_id") for c in hf_generation_calls(py)]
    for call, name in targets:
        for kw in passed_keywords(ctx, call):
            if kw.name != name or kw.where.module is not py:
                continue
            seen: set[str] = set()
            for _node, problem in _stop_id_sources(ctx, kw.value):
                if problem not in seen:
                    seen.add(problem)
                    yield at_passed(ctx, call, kw, f"`{name}`: {problem}")
    for target, value in sampling_attribute_stores(ctx):
        if target.attr == "stop_token_ids":
            for problem in dict.fromkeys(problem for _node, problem in _stop_id_sources(ctx, value)):
                if problem != _NONE_STOP:
                    yield at(target, f"`stop_token_ids`: {problem}")


HVD021 = Rule(
    id="HVD021", name="stop-ids-from-encoded-text", severity=Severity.WARNING, applies_to=PY,
    summary="Stop token ids built by encoding a stop string, or from every special token.",
    why="`stop_token_ids=tokenizer.encode(\"Question:\")` turns a multi-token string into several "
        "independent stops: generation ends at the first of its pieces (`Question`, `:`), often after one "
        "word. `tokenizer.additional_special_tokens_ids` as stops ends generation at any tool, image or "
        "reasoning marker the model emits. HF `eos_token_id=` lists behave the same.",
    fix="Stop strings go in `stop=[...]` (vLLM matches the decoded text; HF: `stop_strings=`); keep "
        "`stop_token_ids` for real single-token terminators (`convert_tokens_to_ids(\"<|im_end|>\")`).",
    bad=Example.of("eval_vllm.py", """\
from vllm import LLM, SamplingParams

llm = LLM(model="Qwen/Qwen2.5-Math-1.5B")
tokenizer = llm.get_tokenizer()
params = SamplingParams(temperature=0, max_tokens=512, stop_token_ids=tokenizer.encode("\\n\\nQuestion:"))
"""),
    good=Example.of("eval_vllm.py", """\
from vllm import LLM, SamplingParams

llm = LLM(model="Qwen/Qwen2.5-Math-1.5B")
tokenizer = llm.get_tokenizer()
params = SamplingParams(temperature=0, max_tokens=512, stop=["\\n\\nQuestion:"],
                        stop_token_ids=[tokenizer.convert_tokens_to_ids("<|endoftext|>")])
"""),
    check=check_stop_ids_from_text,
)


# -- attribute stores and HF-valued fields (HVD001/HVD002 helpers) ------------------------------------
_HF_LENGTHS = {"max_length": "max_tokens", "min_length": "min_tokens"}


def _hf_key_read(node: ast.AST) -> str | None:
    """``cfg.get("max_length")``, ``cfg["max_length"]``, ``args.max_length``: the HF length a value is read from."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
        key = constant(node.args[0], None)
    elif isinstance(node, ast.Subscript):
        key = constant(node.slice, None)
    elif isinstance(node, ast.Attribute):
        key = node.attr
    else:
        return None
    return key if key in _HF_LENGTHS else None


def sampling_attribute_stores(ctx: FileContext) -> Iterator[tuple[ast.Attribute, ast.expr]]:
    """``params.field = value`` where ``params`` holds a ``SamplingParams(...)`` of this module."""
    py = module_of(ctx)
    holders: set[tuple[int, str]] = set()
    for call in sampling_params_calls(py):
        parent = py.parents.get(id(call))
        if isinstance(parent, ast.Assign):
            for target in parent.targets:
                if (name := dotted(target)) is not None:
                    holders.add((0 if name.startswith("self.") else id(py.scopes.get(id(call), py.tree)), name))
    if not holders:
        return
    for node in ast.walk(py.tree):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if not isinstance(target, ast.Attribute) or (name := dotted(target.value)) is None:
                continue
            key = (0 if name.startswith("self.") else id(py.scopes.get(id(node), py.tree)), name)
            if key in holders:
                yield target, node.value
