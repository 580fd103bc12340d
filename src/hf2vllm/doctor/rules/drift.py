"""API-drift rules (HVD018-HVD020): code written against an older vLLM, judged by the installed vLLM's
own source and by the version range the project pins.

The installed vLLM decides what exists (its ``LLM`` methods and their keywords, ``EngineArgs`` fields,
the prompt ``TypedDict`` keys; see ``knowledge.installed_vllm_api``). Where the first release without an
API is documented (``knowledge.REMOVED_*``, each with its source), the message says "breaks on vLLM >= X"
and relates it to the project's pin instead of judging old code by the doctor's own vLLM.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hf2vllm.doctor.context import FileContext
from hf2vllm.doctor.knowledge import (
    MISSING_MODULE,
    REMOVED_ENGINE_ARGS,
    REMOVED_GENERATE_KWARGS,
    REMOVED_LLM_METHODS,
    Removal,
    VllmApi,
    installed_vllm_api,
    parse_version,
    vllm_module_names,
)
from hf2vllm.doctor.model import Example, Hit, Rule, Severity
from hf2vllm.doctor.rules.common import PY, at, at_passed, module_of, passed_keywords


def _when(ctx: FileContext, api: VllmApi, removal: Removal | None) -> str:
    """"breaks on vLLM >= X" related to the project's pin, or what the installed vLLM says."""
    pin = ctx.project.vllm_pin
    pinned = f" (project pins `{pin.spec}`, {pin.place.path}:{pin.place.line})" if pin else ""
    if removal is None or removal.removed_in is None:
        source = f"; {removal.source}" if removal else ""
        return f"absent from the installed vLLM {api.version}{pinned}{source}"
    version = parse_version(removal.removed_in)
    if pin is not None and not pin.allows(version):
        return (f"works with the pinned `{pin.spec}` but breaks on vLLM >= {removal.removed_in} "
                f"({removal.source})")
    return f"breaks on vLLM >= {removal.removed_in}{pinned} ({removal.source})"


# -- HVD018 -------------------------------------------------------------------------------------------
def _is_sampling_init(ctx: FileContext, node: ast.AST) -> bool:
    if not (isinstance(node, ast.Attribute) and node.attr == "__init__"):
        return False
    qualname = module_of(ctx).qualname(node.value) or ""
    return qualname.rsplit(".", 1)[-1] == "SamplingParams" and (qualname.startswith("vllm") or "." not in qualname)


def check_signature_filter(ctx: FileContext) -> Iterator[Hit]:
    api = installed_vllm_api()
    if api is None or not api.sampling_init_generic:
        return
    py = module_of(ctx)
    for call in py.calls_to("signature", "getfullargspec", "getargspec"):
        if call.args and _is_sampling_init(ctx, call.args[0]):
            yield at(call, f"`{ast.unparse(call)}` is `(self, /, *args, **kwargs)` on vLLM {api.version} "
                            "(SamplingParams is a msgspec.Struct): keys filtered by it are all dropped, so every "
                            "setting is lost and the defaults apply (temperature 1.0, max_tokens 16)")


HVD018 = Rule(
    id="HVD018", name="sampling-kwargs-filtered-by-init-signature", severity=Severity.ERROR, applies_to=PY,
    summary="Sampling settings are filtered through `inspect.signature(SamplingParams.__init__)`.",
    why="Bridges keep only the HF settings SamplingParams accepts by asking for its `__init__` signature. "
        "Since SamplingParams became a msgspec.Struct that signature is `(*args, **kwargs)`: no key "
        "survives the filter, no error is raised, and every request samples at temperature 1.0 with at "
        "most 16 tokens. The doctor checks the installed vLLM's SamplingParams before reporting.",
    fix="Ask the class, not its `__init__`: `inspect.signature(SamplingParams).parameters` (or "
        "`SamplingParams.__struct_fields__`), and report the keys you drop instead of dropping them silently.",
    bad=Example.of("bridge.py", """\
import inspect

from vllm import SamplingParams


def to_vllm(hf_kwargs: dict) -> SamplingParams:
    allowed = inspect.signature(SamplingParams.__init__).parameters
    return SamplingParams(**{k: v for k, v in hf_kwargs.items() if k in allowed})
"""),
    good=Example.of("bridge.py", """\
import inspect

from vllm import SamplingParams


def to_vllm(hf_kwargs: dict) -> SamplingParams:
    allowed = inspect.signature(SamplingParams).parameters
    return SamplingParams(**{k: v for k, v in hf_kwargs.items() if k in allowed})
"""),
    check=check_signature_filter,
)


# -- HVD019 -------------------------------------------------------------------------------------------
_REPORTED_ELSEWHERE = {"override_pooler_config"}  # HVD010 says what replaces it


def check_removed_vllm_api(ctx: FileContext) -> Iterator[Hit]:
    api = installed_vllm_api()
    if api is None:
        return
    py = module_of(ctx)
    yield from _removed_imports(ctx, api)
    imports_vllm = any(v == "vllm" or v.startswith("vllm.") for v in py.aliases.values())
    for call in py.calls:
        if not isinstance(call.func, ast.Attribute):
            continue
        if not py.is_offline_llm_receiver(call):
            # ``model.generate(prompt_token_ids=...)`` on an untyped parameter: Transformers' generate() has no
            # such keyword, so in a module that imports vLLM the receiver is a vLLM LLM.
            if imports_vllm and call.func.attr == "generate" and not py.is_vllm_receiver(call):
                for kw in call.keywords:
                    if kw.arg in REMOVED_GENERATE_KWARGS and kw.arg not in api.methods["generate"].params:
                        removal = REMOVED_GENERATE_KWARGS[kw.arg]
                        yield at(kw, f"`LLM.generate({kw.arg}=...)`: {_when(ctx, api, removal)}: {removal.instead}")
            continue
        method = call.func.attr
        signature = api.methods.get(method)
        if signature is None:
            removal = REMOVED_LLM_METHODS.get(method)
            instead = f": {removal.instead}" if removal else ""
            yield at(call.func, f"`LLM.{method}()`: {_when(ctx, api, removal)}{instead}")
            continue
        if signature.var_keyword:
            continue
        for kw in call.keywords:
            if kw.arg is None or kw.arg in signature.params:
                continue
            removal = REMOVED_GENERATE_KWARGS.get(kw.arg) if method == "generate" else None
            instead = f": {removal.instead}" if removal else ""
            yield at(kw, f"`LLM.{method}({kw.arg}=...)`: {_when(ctx, api, removal)}{instead}")
    for call in py.vllm_llm_calls:
        if (py.qualname(call.func) or "").rsplit(".", 1)[-1] != "LLM":
            continue
        for kw in passed_keywords(ctx, call):
            if kw.name in api.engine_args or kw.name in _REPORTED_ELSEWHERE:
                continue
            if kw.where.module is not py:
                continue  # engine options assembled in another module are often version-gated compat code
            removal = REMOVED_ENGINE_ARGS.get(kw.name)
            instead = f": {removal.instead}" if removal else ""
            yield at_passed(ctx, call, kw, f"engine argument `{kw.name}=` of `LLM(...)`: "
                                           f"{_when(ctx, api, removal)}{instead}")


def _removed_imports(ctx: FileContext, api: VllmApi) -> Iterator[Hit]:
    """``from vllm.x import Name`` where the installed vLLM has no module ``vllm.x`` or no ``Name`` in it.
    Imports guarded by ``try: ... except ImportError`` are version-compat code and are not judged."""
    py = module_of(ctx)
    guarded = {id(n) for t in ast.walk(py.tree) if isinstance(t, ast.Try) and any(
        h.type is None or "Error" in ast.unparse(h.type) or "Exception" in ast.unparse(h.type) for h in t.handlers)
        for stmt in t.body for n in ast.walk(stmt)}
    for node in ast.walk(py.tree):
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module or id(node) in guarded:
            continue
        names = vllm_module_names(node.module)
        if names is None:
            continue
        if names is MISSING_MODULE:
            yield at(node, f"module `{node.module}`: {_when(ctx, api, None)}")
            continue
        for alias in node.names:
            if alias.name != "*" and alias.name not in names:
                yield at(node, f"`{alias.name}` imported from `{node.module}`: {_when(ctx, api, None)}")


HVD019 = Rule(
    id="HVD019", name="removed-vllm-api", severity=Severity.ERROR, applies_to=PY,
    summary="A vLLM import, `LLM` method, keyword or engine argument that the targeted vLLM no longer has.",
    why="Offline vLLM code written a year ago calls `LLM.generate(prompt_token_ids=...)`, "
        "`LLM.set_tokenizer`, private `_add_request`/`_run_engine` with old signatures, or passes removed "
        "engine arguments (`device`, `swap_space`) to `LLM(...)`, or imports names that moved "
        "(`vllm.utils.Counter`, `GuidedDecodingParams`). On a current vLLM they raise at import, start-up or "
        "mid-run. The doctor reads the installed vLLM's modules, its `LLM` class (with its mixins) and `EngineArgs`, "
        "and relates documented removals to the version the project pins (requirements, pyproject, setup).",
    fix="Use the replacement the message names (token ids go in as `TokensPrompt(prompt_token_ids=...)`); "
        "if the project must stay on an old vLLM, pin it with an upper bound so the break is explicit.",
    bad=Example.of("offline.py", """\
from transformers import AutoTokenizer
from vllm import LLM, SamplingParams

tokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen2.5-1.5B-Instruct")
llm = LLM(model="Qwen/Qwen2.5-1.5B-Instruct", swap_space=4)
ids = [tokenizer.encode(p) for p in ["Hello", "Hi"]]
outputs = llm.generate(prompt_token_ids=ids, sampling_params=SamplingParams(max_tokens=32))
"""),
    good=Example.of("offline.py", """\
from transformers import AutoTokenizer
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt

tokenizer = AutoTokenizer.from_pretrained("Qwen/Qwen2.5-1.5B-Instruct")
llm = LLM(model="Qwen/Qwen2.5-1.5B-Instruct")
ids = [tokenizer.encode(p) for p in ["Hello", "Hi"]]
prompts = [TokensPrompt(prompt_token_ids=i) for i in ids]
outputs = llm.generate(prompts, sampling_params=SamplingParams(max_tokens=32))
"""),
    check=check_removed_vllm_api,
)


# -- HVD020 -------------------------------------------------------------------------------------------
_PROMPT_MARKERS = {"prompt", "prompt_token_ids", "prompt_embeds"}
_PROMPT_EXTRAS = {"multi_modal_data", "mm_processor_kwargs", "prompt_token_ids", "prompt_embeds"}
_MISPLACED = {"sampling_params", "max_tokens", "temperature", "lora_request", "stop"}


def check_sampling_settings_never_applied(ctx: FileContext) -> Iterator[Hit]:
    api = installed_vllm_api()
    py = module_of(ctx)
    if not any(v.startswith("vllm") for v in py.aliases.values()):
        return
    yield from _unused_sampling_params(ctx)
    known = api.prompt_keys if api is not None and api.prompt_keys else frozenset(_PROMPT_MARKERS | _PROMPT_EXTRAS)
    for node in ast.walk(py.tree):
        if not isinstance(node, ast.Dict):
            continue
        keys = {k.value: k for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        if not keys.keys() & _PROMPT_MARKERS or not keys.keys() & (_PROMPT_EXTRAS | _MISPLACED):
            continue
        # A completions request body (``{"model", "prompt", "temperature", ...}`` for an OpenAI client) is
        # not a vLLM prompt: require a key only vLLM prompts have, or the dict going into LLM.generate().
        if "model" in keys or "messages" in keys or not (keys.keys() & (_PROMPT_EXTRAS - {"mm_processor_kwargs"})
                                                        or _feeds_offline_generate(py, node)):
            continue
        for name, key in keys.items():
            if name in _MISPLACED and name not in known:
                yield at(key, f"`{name}` inside a prompt dict is ignored by vLLM (a prompt only carries "
                               f"{', '.join(sorted(k for k in known if not k.startswith('_'))[:4])}...): the request "
                               "runs with default sampling (max_tokens 16); pass it to generate() instead")


def _feeds_offline_generate(py, node: ast.AST) -> bool:
    parent = py.parents.get(id(node))
    while isinstance(parent, ast.List | ast.Tuple | ast.ListComp | ast.comprehension | ast.Starred):
        parent = py.parents.get(id(parent))
    return isinstance(parent, ast.Call) and py.is_offline_llm_receiver(parent) and \
        isinstance(parent.func, ast.Attribute) and parent.func.attr == "generate"


def _unused_sampling_params(ctx: FileContext) -> Iterator[Hit]:
    """``params = SamplingParams(...)`` never read, while a generate() call passes no sampling params."""
    py = module_of(ctx)
    loaded = {n.id for n in ast.walk(py.tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    unused = []
    for call in py.calls_to("SamplingParams", vllm_only=True):
        parent = py.parents.get(id(call))
        if isinstance(parent, ast.Assign) and all(isinstance(t, ast.Name) and t.id not in loaded
                                                  for t in parent.targets):
            unused.append(parent)
    if not unused:
        return
    for call in py.calls:
        if isinstance(call.func, ast.Attribute) and call.func.attr == "generate" and \
                py.is_offline_llm_receiver(call) and len(call.args) <= 1 and \
                not any(kw.arg in ("sampling_params", None) for kw in call.keywords):
            name = unused[0].targets[0].id  # type: ignore[attr-defined]
            yield at(call, f"generate() gets no sampling params and runs with the defaults (max_tokens 16, "
                           f"temperature 1.0); `{name}` built on line {unused[0].lineno} is never passed")


HVD020 = Rule(
    id="HVD020", name="sampling-settings-never-applied", severity=Severity.ERROR, applies_to=PY,
    summary="Sampling settings that never reach the request: inside a prompt dict, or built and not passed.",
    why="A vLLM prompt is a TypedDict (`prompt`/`prompt_token_ids`, `multi_modal_data`, ...); other keys "
        "are not read. Settings put there, or a SamplingParams that is built but never passed to generate(), "
        "are silently ignored and the request runs with the default SamplingParams: 16 tokens, temperature 1.0.",
    fix="Keep the prompt dict to prompt fields and pass `sampling_params` as generate()'s second argument "
        "(a list of them for per-prompt settings).",
    bad=Example.of("vl.py", """\
from vllm import LLM, SamplingParams

llm = LLM(model="Qwen/Qwen2-VL-2B-Instruct")
request = {"prompt": prompt, "multi_modal_data": {"image": image},
           "sampling_params": SamplingParams(max_tokens=256)}
outputs = llm.generate([request])
"""),
    good=Example.of("vl.py", """\
from vllm import LLM, SamplingParams

llm = LLM(model="Qwen/Qwen2-VL-2B-Instruct")
request = {"prompt": prompt, "multi_modal_data": {"image": image}}
outputs = llm.generate([request], SamplingParams(max_tokens=256))
"""),
    check=check_sampling_settings_never_applied,
)
