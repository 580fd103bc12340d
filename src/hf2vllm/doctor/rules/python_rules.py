"""Rules over Python source (HVD0xx): sampling arguments, prompts, pooling, LoRA, numerics, clients."""

from __future__ import annotations

import ast
import difflib
from collections.abc import Iterator

from hf2vllm.doctor.context import FileContext
from hf2vllm.doctor.knowledge import (
    CHAT_FAMILIES,
    CHAT_MARKERS,
    CHAT_MODEL_HINT,
    DTYPE_ALIASES,
    HF_ONLY_SAMPLING_KWARGS,
    MULTIMODAL_PLACEHOLDERS,
    RATE_LIMITER_CALLS,
    SELF_HOSTED_URL,
    THINK_TAGS,
    ChatFamily,
    vllm_sampling_fields,
)
from hf2vllm.doctor.model import Example, Hit, Rule, Severity
from hf2vllm.doctor.python_source import PythonModule, constant, dotted, keyword, root_name

PY = ("python",)


def _at(node: ast.AST, message: str, fixable: bool = False) -> Hit:
    return Hit(line=node.lineno, column=node.col_offset + 1, message=message,  # type: ignore[attr-defined]
               end_line=getattr(node, "end_lineno", None),
               end_column=(node.end_col_offset + 1) if getattr(node, "end_col_offset", None) is not None else None,  # type: ignore[attr-defined]
               fixable=fixable)


def _module(ctx: FileContext) -> PythonModule:
    assert ctx.python is not None
    return ctx.python


def _sampling_params_calls(py: PythonModule) -> Iterator[ast.Call]:
    yield from py.calls_to("SamplingParams", vllm_only=True)


# -- HVD001 -------------------------------------------------------------------------------------------
def check_hf_only_sampling_kwarg(ctx: FileContext) -> Iterator[Hit]:
    for call in _sampling_params_calls(_module(ctx)):
        for kw in call.keywords:
            if kw.arg in HF_ONLY_SAMPLING_KWARGS:
                entry = HF_ONLY_SAMPLING_KWARGS[kw.arg]
                yield _at(kw, f"`{kw.arg}=` is a Transformers generate() argument, not a SamplingParams field: "
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
    for call in _sampling_params_calls(_module(ctx)):
        for kw in call.keywords:
            if kw.arg is None or kw.arg in fields or kw.arg in HF_ONLY_SAMPLING_KWARGS:
                continue
            close = difflib.get_close_matches(kw.arg, sorted(fields), n=1, cutoff=0.6)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            yield _at(kw, f"`{kw.arg}=` is not a SamplingParams field in the installed vLLM{hint}")


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


# -- HVD003 / HVD004 ---------------------------------------------------------------------------------
def _hf_generation_calls(py: PythonModule) -> list[ast.Call]:
    """Transformers generate() calls and GenerationConfig(...) constructions."""
    return list(py.hf_generate_calls) + [c for c in py.calls_to("GenerationConfig") if not py.is_vllm_receiver(c)]


def check_hf_temperature_zero(ctx: FileContext) -> Iterator[Hit]:
    for call in _hf_generation_calls(_module(ctx)):
        kw = keyword(call, "temperature")
        if kw is not None and constant(kw.value, None) in (0, 0.0) and constant(kw.value, None) is not False:
            yield _at(kw, "`temperature=0` in Transformers generation: greedy is `do_sample=False` "
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
    for call in _hf_generation_calls(_module(ctx)):
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
            yield _at(kw, f"`do_sample=False` makes generation greedy: `{name}=` is ignored here, "
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
    py = _module(ctx)
    greedy = [
        c for c in py.hf_generate_calls
        if (kw := keyword(c, "do_sample")) is not None and constant(kw.value, None) is False
    ]
    if not greedy:
        return
    for call in _sampling_params_calls(py):
        if keyword(call, "temperature") is None and all(kw.arg is not None for kw in call.keywords):
            yield _at(call, "SamplingParams without `temperature` samples at temperature 1.0, while the HF "
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


# -- string helpers ------------------------------------------------------------------------------------
_LOOKUP_METHODS = {"convert_tokens_to_ids", "token_to_id", "count", "index", "find", "rfind", "split", "rsplit",
                   "partition", "rpartition", "replace", "startswith", "endswith", "strip", "removeprefix",
                   "removesuffix", "encode", "get", "add_special_tokens", "add_tokens"}
_STOP_KEYWORDS = {"stop", "stop_strings", "stop_token_ids", "eos_token", "bad_words", "additional_special_tokens",
                  "image_token", "video_token", "pad_token"}


def _is_lookup_use(py: PythonModule, node: ast.AST) -> bool:
    """True when a string literal is looked up or compared, not used to build a prompt."""
    parent = py.parents.get(id(node))
    while isinstance(parent, ast.List | ast.Tuple | ast.Set | ast.JoinedStr | ast.FormattedValue):
        parent = py.parents.get(id(parent))
    if isinstance(parent, ast.Compare):
        return True
    if isinstance(parent, ast.keyword) and parent.arg in _STOP_KEYWORDS:
        return True
    if isinstance(parent, ast.Call):
        name = parent.func.attr if isinstance(parent.func, ast.Attribute) else dotted(parent.func) or ""
        return name.rsplit(".", 1)[-1] in _LOOKUP_METHODS or name.startswith("re.")
    if isinstance(parent, ast.Assign) and all(
        isinstance(t, ast.Name) and t.id.isupper() and "TOKEN" in t.id for t in parent.targets
    ):
        return True  # IMAGE_TOKEN = "<image>": a named constant, flagged where it is used
    return False


def _builds_prompt(py: PythonModule, node: ast.AST, text: str, tokens: tuple[str, ...]) -> bool:
    """True when a literal holding special tokens is prompt text, not a token table or a template."""
    if "{%" in text or "{{" in text:
        return False  # a Jinja chat template definition: the template is where these tokens belong
    if _is_lookup_use(py, node):
        return False
    rest = text
    for token in tokens:
        rest = rest.replace(token, "")
    if rest.strip():
        return True
    # A bare token ("<image>") is a lookup value unless it is glued into a string (`+`, `*`).
    parent = py.parents.get(id(node))
    return isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Add | ast.Mult)


# -- HVD006 -------------------------------------------------------------------------------------------
def check_handwritten_placeholder(ctx: FileContext) -> Iterator[Hit]:
    py = _module(ctx)
    for node, text in py.string_sites:
        found = next((p for p in MULTIMODAL_PLACEHOLDERS if p in text), None)
        if found is None or not _builds_prompt(py, node, text, MULTIMODAL_PLACEHOLDERS + CHAT_MARKERS):
            continue
        yield _at(node, f"multimodal placeholder `{found}` typed into a prompt string: let the processor's "
                        "chat template insert it")


HVD006 = Rule(
    id="HVD006", name="handwritten-multimodal-placeholder", severity=Severity.WARNING, applies_to=PY,
    summary="Image/video placeholder tokens written by hand in a prompt string.",
    why="The processor expands each image placeholder to the exact number of patch tokens for that "
        "image's size and wraps it in model-specific start/end tokens; a hand-typed `<|image_pad|>` "
        "gives one token, or the wrong count, and vLLM then fails to match it to the image or the "
        "two backends see different prompts.",  # hf2vllm: ignore[HVD006] (describes the token)
    fix="Build messages with `{\"type\": \"image\"}` content parts and call "
        "`processor.apply_chat_template(messages, add_generation_prompt=True)`; in vLLM pass the image via "
        "`multi_modal_data` or use `LLM.chat`.",
    bad=Example.of("vl_prompt.py", """\
question = "What is in the picture?"
prompt = f"<|im_start|>user\\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\\n"
"""),  # hf2vllm: ignore[HVD006] (the rule's own bad example)
    good=Example.of("vl_prompt.py", """\
from transformers import AutoProcessor

processor = AutoProcessor.from_pretrained("Qwen/Qwen2-VL-2B-Instruct")
messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the picture?"}]}]
prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
"""),
    check=check_handwritten_placeholder,
)


# -- HVD007 -------------------------------------------------------------------------------------------
def check_chat_template_without_generation_prompt(ctx: FileContext) -> Iterator[Hit]:
    py = _module(ctx)
    generate_scopes = {id(py.scopes.get(id(c), py.tree)) for c in py.method_calls("generate")}
    if not generate_scopes:
        return
    called_from_generate_scope: set[str] = set()
    for call in py.calls:
        if id(py.scopes.get(id(call), py.tree)) in generate_scopes and isinstance(call.func, ast.Name):
            called_from_generate_scope.add(call.func.id)
    for call in py.method_calls("apply_chat_template"):
        agp = keyword(call, "add_generation_prompt")
        if agp is not None and constant(agp.value, "<expr>") is not False:
            continue
        cfm = keyword(call, "continue_final_message")
        if cfm is not None and constant(cfm.value, None) is True:
            continue
        scope = py.scopes.get(id(call), py.tree)
        feeds = id(scope) in generate_scopes or (
            isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef) and scope.name in called_from_generate_scope
        )
        if feeds:
            yield _at(call, "apply_chat_template() feeds generation without `add_generation_prompt=True`: the "
                            "prompt ends after the user turn and the model continues it instead of answering")


HVD007 = Rule(
    id="HVD007", name="chat-template-without-generation-prompt", severity=Severity.WARNING, applies_to=PY,
    summary="`apply_chat_template` feeds generation without `add_generation_prompt=True`.",
    why="Without the generation prompt the text stops after the user's turn (no `<|im_start|>assistant`). "
        "Models then continue the user turn, answer in a different style, or stop at once; HF and vLLM "
        "can disagree on whether a template appends it (LLM.chat does by default).",
    fix="Pass `add_generation_prompt=True` (or `continue_final_message=True` when prefilling the answer).",
    bad=Example.of("chat.py", """\
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
model = AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
messages = [{"role": "user", "content": "Name a prime number."}]
ids = tokenizer.apply_chat_template(messages, return_tensors="pt")
out = model.generate(ids, max_new_tokens=16, do_sample=False)
"""),
    good=Example.of("chat.py", """\
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
model = AutoModelForCausalLM.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
messages = [{"role": "user", "content": "Name a prime number."}]
ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
out = model.generate(ids, max_new_tokens=16, do_sample=False)
"""),
    check=check_chat_template_without_generation_prompt,
)


# -- HVD008 -------------------------------------------------------------------------------------------
_OPENING_MARKERS = tuple(m for m in CHAT_MARKERS if m not in ("<|eot_id|>", "<|im_end|>"))


def _has_templated_tokenizer(py: PythonModule) -> bool:
    if any(True for _ in py.calls_to("get_tokenizer")) or py.vllm_llm_calls:
        return True
    for call in py.method_calls("from_pretrained"):
        owner = dotted(call.func.value) or ""  # type: ignore[attr-defined]
        if "Tokenizer" in owner or "Processor" in owner:
            return True
    return False


def check_manual_chat_format(ctx: FileContext) -> Iterator[Hit]:
    py = _module(ctx)
    if not _has_templated_tokenizer(py):
        return
    for node, text in py.string_sites:
        found = next((m for m in _OPENING_MARKERS if m in text), None)
        if found is None or not _builds_prompt(py, node, text, MULTIMODAL_PLACEHOLDERS + CHAT_MARKERS):
            continue
        yield _at(node, f"chat turn marker `{found}` formatted by hand next to a tokenizer that has a chat "
                        "template: use apply_chat_template (or LLM.chat)")


HVD008 = Rule(
    id="HVD008", name="manual-chat-format", severity=Severity.WARNING, applies_to=PY,
    summary="Chat turns formatted by hand (`<|im_start|>`, `[INST]`...) while a tokenizer with a template is loaded.",
    why="Hand-written templates drift from the model's own: a missing newline, a system prompt the "
        "template adds, BOS added twice (once in the string, once by the tokenizer). HF and vLLM then "
        "see different token ids and every later comparison is off.",
    fix="Build `messages` and call `tokenizer.apply_chat_template(messages, add_generation_prompt=True, "
        "tokenize=False)` (HF) or `llm.chat(messages, params)` (vLLM).",
    bad=Example.of("prompts.py", """\
from transformers import AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
question = "Name a prime number."
prompt = f"<|im_start|>user\\n{question}<|im_end|>\\n<|im_start|>assistant\\n"
"""),
    good=Example.of("prompts.py", """\
from transformers import AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct")
question = "Name a prime number."
messages = [{"role": "user", "content": question}]
prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
"""),
    check=check_manual_chat_format,
)


# -- HVD009 / HVD010 ---------------------------------------------------------------------------------
_POOLING_TASKS = {"embed", "embedding", "classify", "reward", "score", "token_embed", "token_classify"}
_PROBE_CALLS = {"Linear", "LogisticRegression", "LinearRegression", "Ridge", "RidgeClassifier", "LinearSVC",
                "SVC", "MLPClassifier", "SGDClassifier"}


def _normalisation_off(py: PythonModule, call: ast.Call) -> bool:
    for name in ("pooler_config", "override_pooler_config"):
        kw = keyword(call, name)
        if kw is None:
            continue
        value = kw.value
        if isinstance(value, ast.Name):  # pooler_config=cfg: find cfg = PoolerConfig(...)
            for node in ast.walk(py.tree):
                if isinstance(node, ast.Assign) and any(dotted(t) == value.id for t in node.targets):
                    value = node.value
        if isinstance(value, ast.Call):
            for arg_name in ("use_activation", "normalize"):
                arg = keyword(value, arg_name)
                if arg is not None and constant(arg.value, None) is False:
                    return True
        if isinstance(value, ast.Dict):
            for k, v in zip(value.keys, value.values, strict=False):
                if constant(k, None) in ("use_activation", "normalize") and constant(v, None) is False:
                    return True
    return False


def _probe_use(py: PythonModule) -> ast.AST | None:
    for call in py.calls:
        qn = py.qualname(call.func) or ""
        last = qn.rsplit(".", 1)[-1]
        if last in _PROBE_CALLS or "probe" in last.lower():
            return call
    for node in ast.walk(py.tree):
        if isinstance(node, ast.Name) and ("probe" in node.id.lower() or node.id.lower().endswith("_head")):
            return node
    return None


def check_pooling_normalised_into_probe(ctx: FileContext) -> Iterator[Hit]:
    py = _module(ctx)
    probe = _probe_use(py)
    if probe is None:
        return
    for call in py.vllm_llm_calls:
        runner = constant(kw.value, None) if (kw := keyword(call, "runner")) else None
        task = constant(kw.value, None) if (kw := keyword(call, "task")) else None
        convert = constant(kw.value, None) if (kw := keyword(call, "convert")) else None
        pooling = runner == "pooling" or task in _POOLING_TASKS or convert in ("embed", "classify")
        if pooling and not _normalisation_off(py, call):
            yield _at(call, "pooling runner L2-normalises embeddings by default, and its output feeds a "
                            f"probe/head (line {probe.lineno}) trained on raw hidden states: pass "  # type: ignore[attr-defined]
                            "`pooler_config=PoolerConfig(use_activation=False)`")


HVD009 = Rule(
    id="HVD009", name="pooling-normalised-into-probe", severity=Severity.ERROR, applies_to=PY,
    summary="vLLM pooling output (normalised by default) feeds a probe or head trained on raw hidden states.",
    why="vLLM's pooling runner L2-normalises embeddings unless told not to (norm 1.0 instead of the raw "
        "norm, ~46 for SmolLM2-135M and ~100 for larger models). A linear probe with a bias trained on "
        "raw HF hidden states then sees inputs ~50x smaller: its scores collapse to the bias and "
        "decisions flip, without any error.",
    fix="Turn normalisation off: `LLM(..., runner=\"pooling\", pooler_config=PoolerConfig(use_activation=False))` "
        "(vLLM >= 0.32; older versions used `normalize=False`), or normalise the HF side and retrain.",
    bad=Example.of("probe_vllm.py", """\
import torch
from vllm import LLM

probe = torch.nn.Linear(576, 2)
llm = LLM(model="HuggingFaceTB/SmolLM2-135M-Instruct", runner="pooling")
embeddings = llm.embed(["an example sentence"])
"""),
    good=Example.of("probe_vllm.py", """\
import torch
from vllm import LLM
from vllm.config import PoolerConfig

probe = torch.nn.Linear(576, 2)
llm = LLM(model="HuggingFaceTB/SmolLM2-135M-Instruct", runner="pooling",
          pooler_config=PoolerConfig(use_activation=False))
embeddings = llm.embed(["an example sentence"])
"""),
    check=check_pooling_normalised_into_probe,
)


def check_removed_pooler_api(ctx: FileContext) -> Iterator[Hit]:
    py = _module(ctx)
    for call in py.calls_to("PoolerConfig"):
        if (kw := keyword(call, "normalize")) is not None:
            yield _at(kw, "`PoolerConfig(normalize=...)` was removed (vLLM 0.32 raises): use `use_activation=`")
    for call in py.vllm_llm_calls:
        if (kw := keyword(call, "override_pooler_config")) is not None:
            yield _at(kw, "`override_pooler_config=` was removed from vLLM: pass `pooler_config=`")
        pooler = keyword(call, "pooler_config")
        if pooler is not None and isinstance(pooler.value, ast.Dict):
            for k in pooler.value.keys:
                if constant(k, None) == "normalize":
                    yield _at(k, "pooler config key `normalize` was removed (vLLM 0.32 raises): use `use_activation`")  # type: ignore[arg-type]


HVD010 = Rule(
    id="HVD010", name="removed-pooler-api", severity=Severity.ERROR, applies_to=PY,
    summary="Pooling settings written for an older vLLM (`normalize=`, `override_pooler_config=`).",
    why="vLLM 0.32 rejects `PoolerConfig(normalize=...)` (\"Parameter `normalize` was removed; use "
        "`use_activation` instead\") and no longer has `override_pooler_config`. Advice from older "
        "migration notes breaks at start-up.",
    fix="`LLM(..., pooler_config=PoolerConfig(use_activation=False))`.",
    bad=Example.of("embed.py", """\
from vllm import LLM
from vllm.config import PoolerConfig

llm = LLM(model="intfloat/e5-small", runner="pooling", override_pooler_config=PoolerConfig(normalize=False))
"""),
    good=Example.of("embed.py", """\
from vllm import LLM
from vllm.config import PoolerConfig

llm = LLM(model="intfloat/e5-small", runner="pooling", pooler_config=PoolerConfig(use_activation=False))
"""),
    check=check_removed_pooler_api,
)


# -- HVD011 -------------------------------------------------------------------------------------------
_CHECK_WORDS = ("applied", "check", "verify", "assert")


def _has_lora_applied_check(py: PythonModule) -> bool:
    for node in ast.walk(py.tree):
        if isinstance(node, ast.Assert):
            names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
            names += [n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)]
            names += [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            if any("lora" in n.lower() or "adapter" in n.lower() for n in names):
                return True
        if isinstance(node, ast.Call):
            name = (py.qualname(node.func) or "").rsplit(".", 1)[-1].lower()
            if ("lora" in name or "adapter" in name) and any(w in name for w in _CHECK_WORDS):
                return True
    return False


def check_lora_without_applied_check(ctx: FileContext) -> Iterator[Hit]:
    py = _module(ctx)
    requests = list(py.calls_to("LoRARequest"))
    if requests and not _has_lora_applied_check(py):
        for call in requests:
            yield _at(call, "LoRARequest used without any check that the adapter changes the output: vLLM "
                            "has silently skipped adapters whose keys it did not match")


HVD011 = Rule(
    id="HVD011", name="lora-without-applied-check", severity=Severity.WARNING, applies_to=PY,
    summary="A LoRA adapter is used through vLLM with no check that it was applied.",
    why="vLLM has loaded LoRA adapters on pooling models without applying them (PEFT keys prefixed "
        "`base_model.model.` did not match vLLM's module names): no error, no warning, base-model output.",
    fix="Run one probe input with and without the `LoRARequest` and assert the outputs differ "
        "(name the check so the doctor sees it, e.g. `assert_lora_applied(...)` or an `assert` on the "
        "LoRA output).",
    bad=Example.of("lora_serve.py", """\
from vllm import LLM, SamplingParams
from vllm.lora.request import LoRARequest

llm = LLM(model="HuggingFaceTB/SmolLM2-135M-Instruct", enable_lora=True)
params = SamplingParams(max_tokens=16, temperature=0)
adapter = LoRARequest("sql", 1, "/adapters/sql")
outputs = llm.generate(["SELECT"], params, lora_request=adapter)
"""),
    good=Example.of("lora_serve.py", """\
from vllm import LLM, SamplingParams
from vllm.lora.request import LoRARequest

llm = LLM(model="HuggingFaceTB/SmolLM2-135M-Instruct", enable_lora=True)
params = SamplingParams(max_tokens=16, temperature=0)
adapter = LoRARequest("sql", 1, "/adapters/sql")
base = llm.generate(["SELECT"], params)
lora_out = llm.generate(["SELECT"], params, lora_request=adapter)
assert lora_out[0].outputs[0].token_ids != base[0].outputs[0].token_ids, "LoRA adapter had no effect"
"""),
    check=check_lora_without_applied_check,
)


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
    py = _module(ctx)
    family = _chat_family(py)
    if family is None:
        return
    targets: list[tuple[ast.Call, str]] = [(c, "stop_token_ids") for c in _sampling_params_calls(py)]
    targets += [(c, "eos_token_id") for c in _hf_generation_calls(py)]
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
        yield _at(kw, f"`{name}` lacks the {family.name} end-of-turn token `{family.end_of_turn}` "
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


def _model_ref(py: PythonModule, call: ast.Call, keyword_name: str) -> str | None:
    """The model a load refers to: a literal, or a module-level constant's value, or the variable name."""
    node = call.args[0] if call.args else (kw.value if (kw := keyword(call, keyword_name)) else None)
    if node is None:
        return None
    if isinstance(constant(node, None), str):
        return constant(node)  # type: ignore[return-value]
    if isinstance(node, ast.Name):
        for stmt in py.tree.body:
            if isinstance(stmt, ast.Assign) and any(dotted(t) == node.id for t in stmt.targets):
                value = constant(stmt.value, None)
                return value if isinstance(value, str) else node.id
        return node.id
    return None


def check_dtype_mismatch(ctx: FileContext) -> Iterator[Hit]:
    py = _module(ctx)
    hf_loads: list[tuple[str | None, str, int]] = []
    for call in py.hf_model_loads:
        kw = keyword(call, "torch_dtype") or keyword(call, "dtype")
        if kw is not None and (dtype := _dtype_of(kw.value)) not in (None, "auto"):
            hf_loads.append((_model_ref(py, call, "pretrained_model_name_or_path"), dtype, call.lineno))  # type: ignore[arg-type]
    if not hf_loads:
        return
    for call in py.vllm_llm_calls:
        kw = keyword(call, "dtype")
        if kw is None:
            continue
        dtype = _dtype_of(kw.value)
        if dtype in (None, "auto"):
            continue
        model = _model_ref(py, call, "model")
        # Compare with the HF load of the same model; without model names, only an unambiguous pair.
        same = [h for h in hf_loads if model is not None and h[0] == model]
        if not same and len(hf_loads) == 1 and (model is None or hf_loads[0][0] is None):
            same = hf_loads
        for _ref, hf_dtype, line in same[:1]:
            if dtype != hf_dtype:
                yield _at(kw, f"vLLM runs in {dtype} while the HF side (line {line}) runs in {hf_dtype}: "
                              "outputs will differ for numeric reasons alone")


HVD013 = Rule(
    id="HVD013", name="dtype-mismatch", severity=Severity.WARNING, applies_to=PY,
    summary="The vLLM engine and the HF model in the same file load in different dtypes.",
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


def check_trust_remote_code_mismatch(ctx: FileContext) -> Iterator[Hit]:
    py = _module(ctx)
    hf_loads = list(py.method_calls("from_pretrained"))
    if not hf_loads or not py.vllm_llm_calls:
        return
    hf_trusting = [c for c in hf_loads if (kw := keyword(c, "trust_remote_code")) and constant(kw.value, None) is True]
    for call in py.vllm_llm_calls:
        kw = keyword(call, "trust_remote_code")
        vllm_trusts = kw is not None and constant(kw.value, None) is True
        if hf_trusting and not vllm_trusts:
            yield _at(call, f"HF loads with trust_remote_code=True (line {hf_trusting[0].lineno}) but this vLLM "
                            "engine does not: the two sides may run different model code")
        elif vllm_trusts and not hf_trusting:
            yield _at(kw, "vLLM runs the repository's remote code but the HF side of this file does not "  # type: ignore[arg-type]
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


# -- HVD015 -------------------------------------------------------------------------------------------
_URL_KEYWORDS = {"base_url", "api_base", "url", "endpoint", "openai_api_base"}
_REQUEST_METHODS = {"create", "post", "request", "generate", "send", "acreate", "stream", "completions", "chat"}


def _base_urls(py: PythonModule) -> list[str]:
    urls: list[str] = []
    for node in py.string_literals:
        value = node.value
        if not value.startswith(("http://", "https://")):
            continue
        parent = py.parents.get(id(node))
        named = isinstance(parent, ast.keyword) and parent.arg in _URL_KEYWORDS
        assigned = isinstance(parent, ast.Assign) and any(
            "url" in (dotted(t) or "").lower() or "base" in (dotted(t) or "").lower() for t in parent.targets)
        if named or assigned or value.rstrip("/").endswith("/v1"):
            urls.append(value)
    return urls


def _sends_requests(node: ast.AST, senders: set[str]) -> bool:
    """True when ``node`` calls a request method, or a function of this module that does."""
    for sub in ast.walk(node):
        if not isinstance(sub, ast.Call):
            continue
        if isinstance(sub.func, ast.Attribute) and sub.func.attr in _REQUEST_METHODS:
            return True
        if isinstance(sub.func, ast.Name) and sub.func.id in senders:
            return True
    return False


def _request_senders(py: PythonModule) -> set[str]:
    functions = [n for n in ast.walk(py.tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return {f.name for f in functions if _sends_requests(f, set())}


def check_rate_limit_self_hosted(ctx: FileContext) -> Iterator[Hit]:
    py = _module(ctx)
    urls = _base_urls(py)
    if not urls or not all(SELF_HOSTED_URL.match(u) for u in urls):
        return
    for call in py.calls:
        name = (py.qualname(call.func) or "").rsplit(".", 1)[-1]
        if name in RATE_LIMITER_CALLS:
            yield _at(call, f"rate limiter `{name}` on requests to a self-hosted endpoint ({urls[0]}): it caps "
                            "the batch vLLM can form; limit concurrency only for external APIs")
    senders = _request_senders(py)
    for node in ast.walk(py.tree):
        if not isinstance(node, ast.For | ast.While | ast.AsyncFor) or not _sends_requests(node, senders):
            continue
        handlers = {id(n) for h in ast.walk(node) if isinstance(h, ast.ExceptHandler) for n in ast.walk(h)}
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and id(call) not in handlers and \
                    (py.qualname(call.func) or "") in ("time.sleep", "asyncio.sleep"):
                yield _at(call, f"sleep between requests to a self-hosted endpoint ({urls[0]}): vLLM batches "
                                "concurrent requests; pausing only lowers throughput")


HVD015 = Rule(
    id="HVD015", name="rate-limit-self-hosted", severity=Severity.WARNING, applies_to=PY,
    summary="A rate limiter or sleep throttles requests aimed at a self-hosted vLLM endpoint.",
    why="Rate limits protect shared external APIs. A self-hosted vLLM server gets its throughput from "
        "continuous batching: throttled, one-at-a-time requests leave the KV cache nearly empty and the "
        "GPU idle (the single-request latency case, where vLLM does not beat HF).",
    fix="Drop the limiter/sleep; bound concurrency with a semaphore sized from vLLM's logged "
        "`Maximum concurrency` instead, and keep retries (with backoff) only for errors.",
    bad=Example.of("client.py", """\
import time
from openai import OpenAI

client = OpenAI(base_url="http://localhost:8000/v1", api_key="EMPTY")
for prompt in prompts:
    client.completions.create(model="m", prompt=prompt, max_tokens=64)
    time.sleep(0.5)
"""),
    good=Example.of("client.py", """\
from concurrent.futures import ThreadPoolExecutor
from openai import OpenAI

client = OpenAI(base_url="http://localhost:8000/v1", api_key="EMPTY")
with ThreadPoolExecutor(max_workers=32) as pool:
    results = list(pool.map(lambda p: client.completions.create(model="m", prompt=p, max_tokens=64), prompts))
"""),
    check=check_rate_limit_self_hosted,
)


# -- HVD016 -------------------------------------------------------------------------------------------
_GOLD_WORDS = ("gold", "label", "answer", "target", "reference", "expected", "ground_truth", "truth")
_DECODE_CALLS = {"decode", "batch_decode"}
_TEXT_ATTRS = {"text", "content", "generated_text"}


def _is_chain(node: ast.AST) -> bool:
    """Name/Attribute/Subscript chain with no call: a raw value, not a normalised one."""
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return isinstance(node, ast.Name)


def _decoded_expr(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _DECODE_CALLS:
        return True
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Call):
        return _decoded_expr(node.value)
    return _is_chain(node) and isinstance(node, ast.Attribute) and node.attr in _TEXT_ATTRS


_OUTPUT_WORDS = ("answers", "predictions", "preds", "outputs", "generations", "completions", "responses",
                 "decoded", "texts")


def _model_output_iterable(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "batch_decode":
        return True
    name = dotted(node)
    return name is not None and name.rsplit(".", 1)[-1].lower().endswith(_OUTPUT_WORDS)


def _decoded_loop_targets(target: ast.AST, iterable: ast.AST) -> set[str]:
    """Loop variables bound to decoded model text: ``for pred in predictions``,
    ``for answer, ex in zip(result.answers, examples)``."""
    if isinstance(target, ast.Name) and _model_output_iterable(iterable):
        return {target.id}
    if isinstance(target, ast.Tuple) and isinstance(iterable, ast.Call) and dotted(iterable.func) == "zip":
        return {t.id for t, it in zip(target.elts, iterable.args, strict=False)
                if isinstance(t, ast.Name) and _model_output_iterable(it)}
    return set()


def _gold_words(node: ast.AST) -> bool:
    parts: list[str] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            parts.append(sub.id)
        elif isinstance(sub, ast.Attribute):
            parts.append(sub.attr)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            parts.append(sub.value)
    return any(w in p.lower() for p in parts for w in _GOLD_WORDS)


def check_raw_gold_comparison(ctx: FileContext) -> Iterator[Hit]:
    py = _module(ctx)
    decoded: dict[int, set[str]] = {}
    for node in ast.walk(py.tree):
        if isinstance(node, ast.Assign) and _decoded_expr(node.value):
            scope = id(py.scopes.get(id(node), py.tree))
            decoded.setdefault(scope, set()).update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.For | ast.comprehension):
            names = _decoded_loop_targets(node.target, node.iter)
            if names:
                decoded.setdefault(id(py.scopes.get(id(node), py.tree)), set()).update(names)
    for node in ast.walk(py.tree):
        if not isinstance(node, ast.Compare) or len(node.ops) != 1 or not isinstance(node.ops[0], ast.Eq | ast.NotEq):
            continue
        names = decoded.get(id(py.scopes.get(id(node), py.tree)), set())
        left, right = node.left, node.comparators[0]
        for model_side, gold_side in ((left, right), (right, left)):
            model_is_decoded = _decoded_expr(model_side) or (isinstance(model_side, ast.Name) and model_side.id in names)
            gold_is_raw = _is_chain(gold_side) and not (isinstance(gold_side, ast.Name) and gold_side.id in names)
            if model_is_decoded and gold_is_raw and _gold_words(gold_side):
                yield _at(node, "decoded model text compared as a raw string with a gold label: tokenise the gold "
                                "label (or decode it from the same token span) before comparing")
                break


HVD016 = Rule(
    id="HVD016", name="raw-gold-comparison", severity=Severity.WARNING, applies_to=PY,
    summary="Decoded model output compared with `==` to a raw gold-label string.",
    why="A decoded span is not the gold string: leading-space tokens (`' Paris'`), special tokens "
        "kept or skipped, and detokenisation differences between HF and vLLM make exact string matches "
        "fail (or pass) for reasons unrelated to the answer, so accuracy moves during the migration.",
    fix="Compare token ids (`tokenizer.encode(gold, add_special_tokens=False)` against the generated "
        "ids), decode the gold from the same token span with the same tokenizer, or pass both sides "
        "through one normalisation function (`normalise(pred) == normalise(gold)`).",
    bad=Example.of("evaluate.py", """\
def accuracy(tokenizer, outputs, examples):
    hits = 0
    for out, example in zip(outputs, examples):
        prediction = tokenizer.decode(out.outputs[0].token_ids)
        hits += prediction == example["label"]
    return hits / len(examples)
"""),
    good=Example.of("evaluate.py", """\
def accuracy(tokenizer, outputs, examples):
    hits = 0
    for out, example in zip(outputs, examples):
        gold_ids = tokenizer.encode(example["label"], add_special_tokens=False)
        hits += list(out.outputs[0].token_ids[: len(gold_ids)]) == gold_ids
    return hits / len(examples)
"""),
    check=check_raw_gold_comparison,
)


# -- HVD017 -------------------------------------------------------------------------------------------
def check_client_think_parsing(ctx: FileContext) -> Iterator[Hit]:
    if not ctx.project.reasoning_parsers:
        return
    server = ctx.project.reasoning_parsers[0]
    py = _module(ctx)
    for node, text in py.string_sites:
        tag = next((t for t in THINK_TAGS if t in text), None)
        if tag is not None:
            yield _at(node, f"client parses `{tag}` while the server runs `--reasoning-parser {server.detail}` "
                            f"({server.path}:{server.line}): the server already moved the reasoning out of "
                            "`content`")


HVD017 = Rule(
    id="HVD017", name="client-think-parsing-with-reasoning-parser", severity=Severity.ERROR, applies_to=PY,
    summary="The client splits `<think>` tags while the server already runs `--reasoning-parser`.",
    why="With a reasoning parser vLLM returns the thinking in `reasoning_content` (`reasoning` in newer "
        "versions) and strips it from `content`. Client code that looks for `</think>` in `content` then "
        "finds nothing, and typically returns an empty answer or the whole text.",
    fix="Do one or the other: read `message.reasoning_content` and `message.content` from the response, "
        "or drop `--reasoning-parser` and keep the client-side parsing.",
    bad=Example.of(
        "client.py", """\
def split_answer(message):
    _, _, answer = message.content.partition("</think>")
    return answer.strip()
""",
        ("serve.sh", """\
#!/usr/bin/env bash
vllm serve Qwen/Qwen3-8B --reasoning-parser qwen3 --max-model-len 16384
""")),
    good=Example.of(
        "client.py", """\
def split_answer(message):
    return message.content.strip()
""",
        ("serve.sh", """\
#!/usr/bin/env bash
vllm serve Qwen/Qwen3-8B --reasoning-parser qwen3 --max-model-len 16384
""")),
    check=check_client_think_parsing,
)

PYTHON_RULES = (HVD001, HVD002, HVD003, HVD004, HVD005, HVD006, HVD007, HVD008, HVD009, HVD010, HVD011, HVD012,
                HVD013, HVD014, HVD015, HVD016, HVD017)
