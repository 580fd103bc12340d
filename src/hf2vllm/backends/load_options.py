"""Which load options each backend accepts, checked before any model loads (``--hf-option``/``--vllm-option``).

vLLM's own names are read from the installed vLLM: every field of ``EngineArgs`` plus the keyword
arguments of ``LLM.__init__``. They are read from vLLM's source with ``ast`` rather than by importing
``vllm.engine.arg_utils``: that import pulls in torch and vLLM's config tree (8-10 s on a CPU), and a
check at the edge has to answer in milliseconds. Should the source ever not parse, the import is used.

Usage::

    check_load_options("vllm", {"max_num_seqs": 8}, "--vllm-option")   # fine
    check_load_options("vllm", {"max_num_seq": 8}, "--vllm-option")    # InputError: did you mean 'max_num_seqs'?
"""

from __future__ import annotations

import ast
import functools
import inspect
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hf2vllm.deploy.vllm_names import vllm_source
from hf2vllm.errors import InputError

# Set by hf2vllm itself from --model/--vllm-model: an option of the same name would be a second value.
_OWN_KEYS = {"model": "--model (or --vllm-model)"}
# Annotations simple enough to check a value against (the rest are left to vLLM).
_SIMPLE_TYPES = {"int": ((int,), "an integer"), "float": ((int, float), "a number"), "bool": ((bool,), "true or false")}


def _class_node(path: Path, name: str) -> ast.ClassDef | None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)


@functools.lru_cache(maxsize=1)
def vllm_engine_arguments() -> dict[str, str] | None:
    """``{name: annotation}`` for every keyword ``vllm.LLM(...)`` accepts; None without vLLM."""
    found: dict[str, str] = {}
    try:
        arg_utils = vllm_source("engine/arg_utils.py")
        engine_args = _class_node(arg_utils, "EngineArgs") if arg_utils else None
        if engine_args is not None:
            for node in engine_args.body:
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    found[node.target.id] = ast.unparse(node.annotation).strip("'\"")
        llm_file = vllm_source("entrypoints/llm.py")
        llm = _class_node(llm_file, "LLM") if llm_file else None
        init = next((n for n in (llm.body if llm else []) if isinstance(n, ast.FunctionDef) and n.name == "__init__"),
                    None)
        if init is not None:
            for arg in [*init.args.args, *init.args.kwonlyargs]:
                if arg.arg != "self":
                    found.setdefault(arg.arg, ast.unparse(arg.annotation) if arg.annotation else "")
    except (OSError, SyntaxError, UnicodeDecodeError):
        found = {}
    if found:
        return found
    try:  # the slow, certain way
        import dataclasses

        from vllm.engine.arg_utils import EngineArgs
    except ImportError:
        return None
    return {f.name: str(f.type) for f in dataclasses.fields(EngineArgs)}


@functools.lru_cache(maxsize=1)
def vllm_max_logprobs_default() -> int:
    """vLLM's default ``max_logprobs`` (the most top-k logprobs a request may ask for): ``ModelConfig``'s."""
    path = vllm_source("config/model.py")
    node = _class_node(path, "ModelConfig") if path else None
    for item in node.body if node else []:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.target.id == "max_logprobs":
            value = item.value
            if isinstance(value, ast.Call):  # Field(default=20, ...)
                value = next((k.value for k in value.keywords if k.arg == "default"), None)
            if isinstance(value, ast.Constant) and isinstance(value.value, int):
                return value.value
    return 20


def backend_load_options(kind: str) -> dict[str, str]:
    """``{name: annotation}`` of the load options a backend kind takes (its constructor, and for vLLM the
    engine's own arguments); empty when unknown."""
    from hf2vllm.backends.base import backend_class

    try:
        cls = backend_class(kind)
    except InputError:
        return {}
    params = inspect.signature(cls.__init__).parameters
    names = {n: str(p.annotation) for n, p in params.items()
             if n not in {"self", "model"} and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    if kind == "vllm":
        engine = vllm_engine_arguments()
        if engine is None:
            return {}
        names = {**engine, **names}
        names.pop("model", None)
    return names


def check_load_options(kind: str, options: dict[str, Any], flag: str, also: Iterable[str] = ()) -> None:
    """Refuse a load option the ``kind`` backend does not take (with the closest name, among ``also``:
    the generation, prompt and decode keys the flag accepts too) or a value of the wrong simple type."""
    for key, owner in _OWN_KEYS.items():
        if key in options:
            raise InputError(f"{flag} {key}=...: the {key} is set by {owner}, not by {flag}")
    known = backend_load_options(kind)
    if not known:
        return  # vLLM missing (check_available says so next) or a backend without named options
    from hf2vllm.checks import known_keys

    what = "engine argument or setting" if kind == "vllm" else "load option or setting"
    known_keys(options, flag, [*known, *also], what=what,
               fix=f"see `hf2vllm compare --help` ({flag} takes generation settings, prompt options and "
               + ("vLLM EngineArgs fields)" if kind == "vllm" else "the HF backend's load options)"))
    for key, value in options.items():
        _check_type(key, value, known.get(key, ""), flag)


def _check_type(key: str, value: Any, annotation: str, flag: str) -> None:
    parts = [p.strip() for p in annotation.replace("Optional[", "").rstrip("]").split("|")]
    optional = "None" in parts
    kinds = [p for p in parts if p != "None"]
    if len(kinds) != 1 or kinds[0] not in _SIMPLE_TYPES:
        return
    want, words = _SIMPLE_TYPES[kinds[0]]
    if value is None and optional:
        return
    if not isinstance(value, want) or (isinstance(value, bool) and bool not in want):
        raise InputError(f"{flag} {key}={value!r}: expected {words}{' (or null)' if optional else ''}")
