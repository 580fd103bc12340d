"""Helpers shared by the Python rules: where a finding points, which calls are which."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from hf2vllm.doctor.context import FileContext
from hf2vllm.doctor.dataflow import PassedKeyword, call_keywords
from hf2vllm.doctor.model import Hit
from hf2vllm.doctor.python_source import PythonModule

PY = ("python",)


def at(node: ast.AST, message: str, fixable: bool = False) -> Hit:
    return Hit(line=node.lineno, column=node.col_offset + 1, message=message,  # type: ignore[attr-defined]
               end_line=getattr(node, "end_lineno", None),
               end_column=(node.end_col_offset + 1) if getattr(node, "end_col_offset", None) is not None else None,  # type: ignore[attr-defined]
               fixable=fixable)


def module_of(ctx: FileContext) -> PythonModule:
    assert ctx.python is not None
    return ctx.python


def sampling_params_calls(py: PythonModule) -> Iterator[ast.Call]:
    yield from py.calls_to("SamplingParams", vllm_only=True)



def hf_generation_calls(py: PythonModule) -> list[ast.Call]:
    """Transformers generate() calls and GenerationConfig(...) constructions."""
    return list(py.hf_generate_calls) + [c for c in py.calls_to("GenerationConfig") if not py.is_vllm_receiver(c)]


def passed_keywords(ctx: FileContext, call: ast.Call) -> list[PassedKeyword]:
    """Keywords ``call`` receives, written in it or splatted in (``**kwargs`` built elsewhere in the scan)."""
    return call_keywords(ctx.resolver, call)


def at_passed(ctx: FileContext, call: ast.Call, passed: PassedKeyword, message: str, fixable: bool = False) -> Hit:
    """A finding on a passed keyword: at the key itself when it is written in this file, else at the splat."""
    if passed.direct:
        return at(passed.where.node, message, fixable=fixable)
    here = passed.where.module is ctx.python
    node = passed.where.node if here else next((kw for kw in call.keywords if kw.arg is None), call)
    where = f"line {passed.where.line}" if here else f"{passed.where.path}:{passed.where.line}"
    return at(node, f"{message} [set at {where}, reaches the call through {passed.via}]")
