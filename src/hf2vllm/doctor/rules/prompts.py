"""Prompt-identity rules (HVD006-HVD008): placeholders, generation prompts, hand-made chat formats."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from hf2vllm.doctor.context import FileContext
from hf2vllm.doctor.knowledge import (
    CHAT_MARKERS,
    MULTIMODAL_PLACEHOLDERS,
    PLACEHOLDERS_BY_FAMILY,
    VL_MODEL_PATTERN,
)
from hf2vllm.doctor.model import Example, Hit, Rule, Severity
from hf2vllm.doctor.python_source import PythonModule, constant, dotted, keyword
from hf2vllm.doctor.rules.common import PY, at, module_of

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
def _vl_family(py: PythonModule, prompt: ast.AST) -> tuple[str, tuple[str, ...]] | None:
    """(model id, its processor's placeholders) for the vision-language model the prompt is written for: the
    one named in the prompt's own function, else the only one the module names (files often hold one
    prompt builder per model, each next to its own ``LLM(...)``)."""
    def family_models(nodes: list[ast.Constant]) -> list[tuple[str, tuple[str, ...]]]:
        found = []
        for node in nodes:
            if "/" not in node.value or len(node.value) >= 120 or " " in node.value:
                continue
            match = next((ph for pattern, ph in PLACEHOLDERS_BY_FAMILY if pattern.search(node.value)), None)
            if match is not None:
                found.append((node.value, match))
            elif VL_MODEL_PATTERN.search(node.value):
                found.append((node.value, ()))  # a VL model whose placeholders the doctor does not know
        return found

    scope = py.scopes.get(id(prompt), py.tree)
    if scope is not py.tree:
        local = family_models([n for n in py.string_literals if py.scopes.get(id(n), py.tree) is scope])
        if local:
            return local[0] if local[0][1] else None
    everywhere = family_models(py.string_literals)
    if len({model for model, _ in everywhere}) == 1 and everywhere[0][1]:
        return everywhere[0]
    return None


_FIELD = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")


def _unfilled_field(py: PythonModule, node: ast.AST, text: str) -> str | None:
    """A ``{name}`` field in a plain string that no ``.format``/``.format_map``/``.replace`` ever fills."""
    if isinstance(node, ast.JoinedStr) or (match := _FIELD.search(text)) is None:
        return None
    parent = py.parents.get(id(node))
    if isinstance(parent, ast.Attribute) and parent.attr in ("format", "format_map", "replace"):
        return None
    names = {dotted(t) for t in parent.targets} if isinstance(parent, ast.Assign) else set()
    for call in py.method_calls("format", "format_map", "replace", "substitute", "render"):
        if dotted(call.func.value) in names or any(dotted(a) in names for a in call.args):  # type: ignore[attr-defined]
            return None
    if not _reaches_prompt(py, node, names):
        return None
    return match.group(0)


def _holders(py: PythonModule, node: ast.AST) -> set[str]:
    """Names through which a literal travels: the names it is assigned to, and the function that returns it."""
    holders: set[str] = set()
    parent = py.parents.get(id(node))
    while isinstance(parent, ast.BinOp | ast.JoinedStr | ast.FormattedValue | ast.Call | ast.Attribute):
        parent = py.parents.get(id(parent))
    if isinstance(parent, ast.Assign | ast.AnnAssign):
        targets = parent.targets if isinstance(parent, ast.Assign) else [parent.target]
        holders |= {name for t in targets if (name := dotted(t)) is not None}
    elif isinstance(parent, ast.Return):
        scope = py.scopes.get(id(parent))
        if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            holders.add(scope.name)
    return holders


def _reaches_prompt(py: PythonModule, node: ast.AST, names: set[str | None]) -> bool:
    """The literal (or a name or function holding it) is a ``"prompt"`` value, a prompt-named variable, or an
    argument of generate()/chat()."""
    names = {n for n in names | _holders(py, node) if n}
    if any("prompt" in n.lower() for n in names):
        return True

    def mentions(expr: ast.AST) -> bool:
        return any(sub is node or (isinstance(sub, ast.Name) and sub.id in names) or
                   (isinstance(sub, ast.Call) and dotted(sub.func) in names) for sub in ast.walk(expr))

    for call in py.method_calls("generate", "chat"):
        if any(mentions(arg) for arg in [*call.args, *(kw.value for kw in call.keywords)]):
            return True
    for d in ast.walk(py.tree):
        if isinstance(d, ast.Dict):
            for key, value in zip(d.keys, d.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "prompt" and mentions(value):
                    return True
    return False


def check_handwritten_placeholder(ctx: FileContext) -> Iterator[Hit]:
    py = module_of(ctx)
    # vLLM's documented offline prompts type one placeholder and pass the image in ``multi_modal_data``:
    # its processor expands it to the image's patch count, so that is not a bug by itself.
    passes_media = "multi_modal_data" in {n.value for n in py.string_literals} or "multi_modal_data" in py.identifiers
    for node, text in py.string_sites:
        found = next((p for p in MULTIMODAL_PLACEHOLDERS if p in text), None)
        if found is None or not _builds_prompt(py, node, text, MULTIMODAL_PLACEHOLDERS + CHAT_MARKERS):
            continue
        family = _vl_family(py, node)
        if family is not None and not any(p in text for p in family[1]):
            yield at(node, f"placeholder `{found}` typed into a prompt for `{family[0]}`, whose processor uses "
                            f"{', '.join(f'`{p}`' for p in family[1][:2])}: the image is never attached (or vLLM "
                            "refuses the prompt); build it with the processor's chat template")
        elif (field := _unfilled_field(py, node, text)) is not None:
            yield at(node, f"prompt with `{found}` keeps the unfilled field `{field}`: it reaches the model as "
                            "literal text")
        elif not passes_media and _reaches_prompt(py, node, set()):
            yield at(node, f"multimodal placeholder `{found}` typed into a prompt string that no image is passed "
                            "with: let the processor's chat template insert it, or pass `multi_modal_data`")


HVD006 = Rule(
    id="HVD006", name="handwritten-multimodal-placeholder", severity=Severity.WARNING, applies_to=PY,
    summary="A hand-typed image placeholder that the model's processor will not expand.",
    why="vLLM expands one placeholder per image to the image's patch count, but only the placeholder "
        "of the model's own processor, and only when the image comes with the prompt "
        "(`multi_modal_data`). A LLaVA-style `<image>` typed into a Qwen2-VL prompt, a template with an "
        "unfilled `{question}` field, or a placeholder in a raw prompt sent without any image gives the "
        "model a different prompt on each backend (or a refused request). A bare placeholder used as a split "
        "marker, or vLLM's documented single placeholder with `multi_modal_data`, is fine and not reported.",
    fix="Build messages with `{\"type\": \"image\"}` content parts and call "
        "`processor.apply_chat_template(messages, add_generation_prompt=True)`, or use `LLM.chat`; when typing "
        "the prompt for vLLM, use the model's own placeholder and pass the image via `multi_modal_data`.",
    bad=Example.of("vl_prompt.py", """\
from vllm import LLM

llm = LLM(model="Qwen/Qwen2-VL-2B-Instruct")
prompt = "USER: <image>\\nWhat is in the picture? ASSISTANT:"
outputs = llm.generate({"prompt": prompt, "multi_modal_data": {"image": image}})
"""),
    good=Example.of("vl_prompt.py", """\
from vllm import LLM

llm = LLM(model="llava-hf/llava-1.5-7b-hf")
prompt = "USER: <image>\\nWhat is in the picture? ASSISTANT:"
outputs = llm.generate({"prompt": prompt, "multi_modal_data": {"image": image}})
"""),
    check=check_handwritten_placeholder,
)


# -- HVD007 -------------------------------------------------------------------------------------------
def check_chat_template_without_generation_prompt(ctx: FileContext) -> Iterator[Hit]:
    py = module_of(ctx)
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
            yield at(call, "apply_chat_template() feeds generation without `add_generation_prompt=True`: the "
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
    py = module_of(ctx)
    if not _has_templated_tokenizer(py):
        return
    for node, text in py.string_sites:
        found = next((m for m in _OPENING_MARKERS if m in text), None)
        if found is None or not _builds_prompt(py, node, text, MULTIMODAL_PLACEHOLDERS + CHAT_MARKERS):
            continue
        yield at(node, f"chat turn marker `{found}` formatted by hand next to a tokenizer that has a chat "
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
