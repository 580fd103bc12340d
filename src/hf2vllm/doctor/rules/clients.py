"""Client-side rules (HVD015-HVD017): throttling, gold-label comparison, reasoning parsing."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hf2vllm.doctor.context import FileContext
from hf2vllm.doctor.knowledge import (
    RATE_LIMITER_CALLS,
    SELF_HOSTED_URL,
    THINK_TAGS,
)
from hf2vllm.doctor.model import Example, Hit, Rule, Severity
from hf2vllm.doctor.python_source import PythonModule, dotted
from hf2vllm.doctor.rules.common import PY, at, module_of

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
    py = module_of(ctx)
    urls = _base_urls(py)
    if not urls or not all(SELF_HOSTED_URL.match(u) for u in urls):
        return
    for call in py.calls:
        name = (py.qualname(call.func) or "").rsplit(".", 1)[-1]
        if name in RATE_LIMITER_CALLS:
            yield at(call, f"rate limiter `{name}` on requests to a self-hosted endpoint ({urls[0]}): it caps "
                            "the batch vLLM can form; limit concurrency only for external APIs")
    senders = _request_senders(py)
    for node in ast.walk(py.tree):
        if not isinstance(node, ast.For | ast.While | ast.AsyncFor) or not _sends_requests(node, senders):
            continue
        handlers = {id(n) for h in ast.walk(node) if isinstance(h, ast.ExceptHandler) for n in ast.walk(h)}
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and id(call) not in handlers and \
                    (py.qualname(call.func) or "") in ("time.sleep", "asyncio.sleep"):
                yield at(call, f"sleep between requests to a self-hosted endpoint ({urls[0]}): vLLM batches "
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
    py = module_of(ctx)
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
            model_is_decoded = _decoded_expr(model_side) or (
                isinstance(model_side, ast.Name) and model_side.id in names)
            gold_is_raw = _is_chain(gold_side) and not (isinstance(gold_side, ast.Name) and gold_side.id in names)
            if model_is_decoded and gold_is_raw and _gold_words(gold_side):
                yield at(node, "decoded model text compared as a raw string with a gold label: tokenise the gold "
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
    py = module_of(ctx)
    for node, text in py.string_sites:
        tag = next((t for t in THINK_TAGS if t in text), None)
        if tag is not None:
            yield at(node, f"client parses `{tag}` while the server runs `--reasoning-parser {server.detail}` "
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
