"""HF-vs-vLLM consistency rules (HVD012-HVD014): stop tokens, dtype, trust_remote_code."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hf2vllm.doctor.context import DtypeLoad, FileContext, Place
from hf2vllm.doctor.knowledge import (
    CHAT_FAMILIES,
    CHAT_MODEL_HINT,
    DTYPE_ALIASES,
    ChatFamily,
)
from hf2vllm.doctor.model import Example, Hit, Rule, Severity
from hf2vllm.doctor.python_source import PythonModule, constant, dotted, keyword
from hf2vllm.doctor.rules.common import PY, at, hf_generation_calls, module_of, sampling_params_calls


# -- HVD012 -------------------------------------------------------------------------------------------
def _chat_family(py: PythonModule) -> ChatFamily | None:
    uses_chat = any(True for _ in py.method_calls("apply_chat_template", "chat"))
    for node in py.string_literals:
        for family in CHAT_FAMILIES:
            if family.pattern.search(node.value) and (uses_chat or CHAT_MODEL_HINT.search(node.value)):
                return family
    return None


def _stop_set(py: PythonModule, node: ast.AST) -> tuple[set[int], set[str]] | None:
    """Token ids and token strings of a stop list, or None when any element is not a literal."""
    elements = node.elts if isinstance(node, ast.List | ast.Tuple | ast.Set) else [node]
    ids: set[int] = set()
    tokens: set[str] = set()
    for elt in elements:
        value = constant(elt, None)
        if isinstance(value, int) and not isinstance(value, bool):
            ids.add(value)
        elif isinstance(value, str):
            tokens.add(value)
        elif isinstance(elt, ast.Call) and isinstance(elt.func, ast.Attribute) and \
                elt.func.attr == "convert_tokens_to_ids" and elt.args and isinstance(constant(elt.args[0], None), str):
            tokens.add(constant(elt.args[0]))  # type: ignore[arg-type]
        else:
            return None
    return ids, tokens


def check_stop_missing_end_of_turn(ctx: FileContext) -> Iterator[Hit]:
    py = module_of(ctx)
    family = _chat_family(py)
    if family is None:
        return
    targets: list[tuple[ast.Call, str]] = [(c, "stop_token_ids") for c in sampling_params_calls(py)]
    targets += [(c, "eos_token_id") for c in hf_generation_calls(py)]
    for call, name in targets:
        kw = keyword(call, name)
        if kw is None:
            continue
        parsed = _stop_set(py, kw.value)
        if parsed is None:
            continue
        ids, tokens = parsed
        stop_strings = set()
        if (stop := keyword(call, "stop")) is not None and (parsed_stop := _stop_set(py, stop.value)) is not None:
            stop_strings = parsed_stop[1]
        if family.end_of_turn_id in ids or family.end_of_turn in tokens | stop_strings:
            continue
        yield at(kw, f"`{name}` lacks the {family.name} end-of-turn token `{family.end_of_turn}` "
                      f"(id {family.end_of_turn_id}): chat answers run past the end of the turn")


HVD012 = Rule(
    id="HVD012", name="stop-missing-end-of-turn", severity=Severity.WARNING, applies_to=PY,
    summary="`stop_token_ids`/`eos_token_id` miss the chat model's end-of-turn token.",
    why="Chat models end a turn on a template token (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`) that is "
        "often not the tokenizer's `eos_token`. A stop list with only the eos id lets one backend "
        "generate past the answer (a new `user` turn, padding text) while the other stops.",
    fix="Include the end-of-turn token: `stop_token_ids=[eos_id, tokenizer.convert_tokens_to_ids(\"<|im_end|>\")]`, "
        "or leave stopping to vLLM's generation_config handling and check it with `hf2vllm compare`.",
    bad=Example.of("qwen_chat.py", """\
from vllm import LLM, SamplingParams

llm = LLM(model="Qwen/Qwen2.5-1.5B-Instruct")
params = SamplingParams(max_tokens=256, temperature=0, stop_token_ids=[151643])
"""),
    good=Example.of("qwen_chat.py", """\
from vllm import LLM, SamplingParams

llm = LLM(model="Qwen/Qwen2.5-1.5B-Instruct")
params = SamplingParams(max_tokens=256, temperature=0, stop_token_ids=[151643, 151645])
"""),
    check=check_stop_missing_end_of_turn,
)


# -- HVD013 / HVD014 ---------------------------------------------------------------------------------
def _dtype_of(node: ast.AST) -> str | None:
    name = dotted(node)
    if name is not None:
        return DTYPE_ALIASES.get(name.rsplit(".", 1)[-1])
    value = constant(node, None)
    return DTYPE_ALIASES.get(value) if isinstance(value, str) else None


def hf_dtype_loads(ctx: FileContext) -> list[DtypeLoad]:
    """HF model loads of this file that force a dtype (``torch_dtype=torch.float16``)."""
    py = module_of(ctx)
    out: list[DtypeLoad] = []
    for call in py.hf_model_loads:
        kw = keyword(call, "torch_dtype") or keyword(call, "dtype")
        if kw is not None and (dtype := _dtype_of(kw.value)) not in (None, "auto"):
            out.append(DtypeLoad(Place(ctx.display_path, call.lineno, ""), _model_id(ctx, call,
                                 "pretrained_model_name_or_path"), dtype))  # type: ignore[arg-type]
    return out


def vllm_dtype_loads(ctx: FileContext) -> list[tuple[ast.Call, ast.keyword | None, DtypeLoad]]:
    """vLLM ``LLM(...)`` loads with their dtype: ``auto`` when not given (the checkpoint decides)."""
    py = module_of(ctx)
    out = []
    for call in py.vllm_llm_calls:
        if (py.qualname(call.func) or "").rsplit(".", 1)[-1] != "LLM":
            continue
        kw = keyword(call, "dtype")
        if kw is not None and _dtype_of(kw.value) is None:
            continue  # an expression: not judged
        dtype = _dtype_of(kw.value) if kw is not None else "auto"
        out.append((call, kw, DtypeLoad(Place(ctx.display_path, call.lineno, ""), _model_id(ctx, call, "model"),
                                        dtype or "auto")))
    return out


def check_dtype_mismatch(ctx: FileContext) -> Iterator[Hit]:
    here = hf_dtype_loads(ctx)
    elsewhere = [h for h in ctx.project.hf_dtypes if h.place.path != ctx.display_path]
    for call, kw, load in vllm_dtype_loads(ctx):
        # The HF load of the same model id, in this file or any other scanned one; without model ids, only
        # the unambiguous pair of one forcing HF load and this engine in the same file.
        same = [h for h in [*here, *elsewhere] if load.model is not None and h.model == load.model]
        if not same and len(here) == 1 and (load.model is None or here[0].model is None):
            same = here
        for hf in same[:1]:
            where = f"line {hf.place.line}" if hf.place.path == ctx.display_path else \
                f"{hf.place.path}:{hf.place.line}"
            if load.dtype == "auto" and hf.dtype in ("float16", "float32"):
                yield at(kw or call, f"vLLM `dtype` is auto (the checkpoint's dtype, bfloat16 for most current "
                                     f"checkpoints; float32 checkpoints run in half precision) while the HF side "
                                     f"({where}) runs in {hf.dtype}: outputs will differ for numeric reasons alone")
            elif load.dtype != "auto" and load.dtype != hf.dtype:
                yield at(kw or call, f"vLLM runs in {load.dtype} while the HF side ({where}) runs in {hf.dtype}: "
                                     "outputs will differ for numeric reasons alone")


HVD013 = Rule(
    id="HVD013", name="dtype-mismatch", severity=Severity.WARNING, applies_to=PY,
    summary="The vLLM engine and the HF model of the same project load in different dtypes.",
    why="bf16 vs fp16 vs fp32 changes logits enough to flip greedy tokens after a few steps; a parity "
        "check that compares them measures the dtype, not the migration.",
    fix="Use one dtype on both sides (`dtype=\"float32\"` on CPU, the checkpoint's dtype on GPU).",
    bad=Example.of("parity.py", """\
import torch
from transformers import AutoModelForCausalLM
from vllm import LLM

hf_model = AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct", dtype=torch.float32)
llm = LLM(model="HuggingFaceTB/SmolLM2-135M-Instruct", dtype="bfloat16")
"""),
    good=Example.of("parity.py", """\
import torch
from transformers import AutoModelForCausalLM
from vllm import LLM

hf_model = AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct", dtype=torch.float32)
llm = LLM(model="HuggingFaceTB/SmolLM2-135M-Instruct", dtype="float32")
"""),
    check=check_dtype_mismatch,
)


def _model_id(ctx: FileContext, call: ast.Call, keyword_name: str) -> str | None:
    """The literal model id a load names (through names assigned in its function or module), else None."""
    node = call.args[0] if call.args else (kw.value if (kw := keyword(call, keyword_name)) else None)
    value = ctx.resolver.constant(node) if node is not None else None
    return value if isinstance(value, str) else None


def check_trust_remote_code_mismatch(ctx: FileContext) -> Iterator[Hit]:
    py = module_of(ctx)
    hf_loads = list(py.method_calls("from_pretrained"))
    if not hf_loads or not py.vllm_llm_calls:
        return
    hf_trusting_all = [c for c in hf_loads
                       if (kw := keyword(c, "trust_remote_code")) and constant(kw.value, None) is True]
    for call in py.vllm_llm_calls:
        kw = keyword(call, "trust_remote_code")
        vllm_trusts = kw is not None and constant(kw.value, None) is True
        # Compare with the HF loads of the same model (or, without model names, the same function): a file
        # holding one loader per model must not compare one model's tokenizer with another's engine.
        model = _model_id(ctx, call, "model")
        scope = py.scopes.get(id(call), py.tree)
        related = [c for c in hf_loads if py.scopes.get(id(c), py.tree) is scope
                   or (model is not None and _model_id(ctx, c, "pretrained_model_name_or_path") == model)]
        if not related:
            # A model passed in as a variable: compare with the loads whose model is a variable too (the
            # load_hf(model_id)/load_vllm(model_id) pair), never with another model's literal id.
            related = [c for c in hf_loads if model is None and _model_id(ctx, c, "pretrained_model_name_or_path")
                       is None]
        if not related:
            continue
        hf_trusting = [c for c in related if c in hf_trusting_all]
        if hf_trusting and not vllm_trusts:
            yield at(call, f"HF loads with trust_remote_code=True (line {hf_trusting[0].lineno}) but this vLLM "
                            "engine does not: the two sides may run different model code")
        elif vllm_trusts and not hf_trusting:
            yield at(kw, "vLLM runs the repository's remote code but the HF side of this file does not "  # type: ignore[arg-type]
                          "(trust_remote_code missing there): the two sides may run different model code")


HVD014 = Rule(
    id="HVD014", name="trust-remote-code-mismatch", severity=Severity.ERROR, applies_to=PY,
    summary="`trust_remote_code` differs between the HF and the vLLM side of one file.",
    why="With remote code one side runs the repository's modelling/tokenizer code, the other the "
        "library's built-in class (or refuses to load). Results differ for reasons no parity report can "
        "explain, and remote code should be an explicit, reviewed opt-in on both sides.",
    fix="Pass the same `trust_remote_code` to every `from_pretrained` and to `LLM(...)`.",
    bad=Example.of("load.py", """\
from transformers import AutoModelForCausalLM
from vllm import LLM

hf_model = AutoModelForCausalLM.from_pretrained("org/custom-model", trust_remote_code=True)
llm = LLM(model="org/custom-model")
"""),
    good=Example.of("load.py", """\
from transformers import AutoModelForCausalLM
from vllm import LLM

hf_model = AutoModelForCausalLM.from_pretrained("org/custom-model", trust_remote_code=True)
llm = LLM(model="org/custom-model", trust_remote_code=True)
"""),
    check=check_trust_remote_code_mismatch,
)
