"""Prompt-identity rules (HVD006-HVD008): placeholders, generation prompts, hand-made chat formats."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hf2vllm.doctor.context import FileContext
from hf2vllm.doctor.knowledge import (
    CHAT_MARKERS,
    MULTIMODAL_PLACEHOLDERS,
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
def check_handwritten_placeholder(ctx: FileContext) -> Iterator[Hit]:
    py = module_of(ctx)
    for node, text in py.string_sites:
        found = next((p for p in MULTIMODAL_PLACEHOLDERS if p in text), None)
        if found is None or not _builds_prompt(py, node, text, MULTIMODAL_PLACEHOLDERS + CHAT_MARKERS):
            continue
        yield at(node, f"multimodal placeholder `{found}` typed into a prompt string: let the processor's "
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
