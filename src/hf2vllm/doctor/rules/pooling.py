"""Pooling and LoRA rules (HVD009-HVD011): normalisation, removed pooler settings, unchecked adapters."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hf2vllm.doctor.context import FileContext
from hf2vllm.doctor.model import Example, Hit, Rule, Severity
from hf2vllm.doctor.python_source import PythonModule, constant, dotted, keyword
from hf2vllm.doctor.rules.common import PY, at, module_of

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
    py = module_of(ctx)
    probe = _probe_use(py)
    if probe is None:
        return
    for call in py.vllm_llm_calls:
        runner = constant(kw.value, None) if (kw := keyword(call, "runner")) else None
        task = constant(kw.value, None) if (kw := keyword(call, "task")) else None
        convert = constant(kw.value, None) if (kw := keyword(call, "convert")) else None
        pooling = runner == "pooling" or task in _POOLING_TASKS or convert in ("embed", "classify")
        if pooling and not _normalisation_off(py, call):
            yield at(call, "pooling runner L2-normalises embeddings by default, and its output feeds a "
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
    py = module_of(ctx)
    for call in py.calls_to("PoolerConfig"):
        if (kw := keyword(call, "normalize")) is not None:
            yield at(kw, "`PoolerConfig(normalize=...)` was removed (vLLM 0.32 raises): use `use_activation=`")
    for call in py.vllm_llm_calls:
        if (kw := keyword(call, "override_pooler_config")) is not None:
            yield at(kw, "`override_pooler_config=` was removed from vLLM: pass `pooler_config=`")
        pooler = keyword(call, "pooler_config")
        if pooler is not None and isinstance(pooler.value, ast.Dict):
            for k in pooler.value.keys:
                if constant(k, None) == "normalize":
                    yield at(k, "pooler config key `normalize` was removed (vLLM 0.32 raises): use `use_activation`")  # type: ignore[arg-type]


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
    py = module_of(ctx)
    requests = list(py.calls_to("LoRARequest"))
    if requests and not _has_lora_applied_check(py):
        for call in requests:
            yield at(call, "LoRARequest used without any check that the adapter changes the output: vLLM "
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
