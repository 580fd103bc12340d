"""A parsed Python module with the few facts the rules ask about: what each call resolves to
(through imports), which names hold a vLLM ``LLM``, which string literals are real strings (not
docstrings), and the ``vllm serve`` command lines spelt as argument lists.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from hf2vllm.doctor.serve import FlagValue, ServeInvocation, Token, find_serve_start, parse_serve_args


def dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None (calls and subscripts break the chain)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def root_name(node: ast.AST) -> str | None:
    """The variable a Name/Attribute/Subscript/Call chain starts from (``out`` in ``out[0].text``)."""
    while True:
        if isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            break
    return node.id if isinstance(node, ast.Name) else None


def keyword(call: ast.Call, name: str) -> ast.keyword | None:
    for kw in call.keywords:
        if kw.arg == name:
            return kw
    return None


_MISSING = object()


def constant(node: ast.AST | None, default: object = _MISSING) -> object:
    """The literal value of a constant (also ``-1``), or ``default``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, int | float):
            return -value
    return default


def is_truthy_constant(node: ast.AST | None) -> bool:
    value = constant(node, None)
    return value is True


@dataclass
class PythonModule:
    """One parsed source file; the rules query it, never re-walk the raw text."""

    tree: ast.Module
    lines: list[str]
    aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, filename: str = "<source>") -> PythonModule:
        tree = ast.parse(text, filename=filename)
        module = cls(tree=tree, lines=text.splitlines())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module.aliases[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
            elif isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    module.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        return module

    # -- calls ---------------------------------------------------------------------------------------
    def qualname(self, func: ast.AST) -> str | None:
        """Dotted name of a call target with its root resolved through the imports."""
        name = dotted(func)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        resolved = self.aliases.get(head, head)
        return f"{resolved}.{rest}" if rest else resolved

    @cached_property
    def calls(self) -> list[ast.Call]:
        return [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)]

    def calls_to(self, *names: str, vllm_only: bool = False) -> Iterator[ast.Call]:
        """Calls whose resolved name ends with one of ``names`` (``SamplingParams`` matches
        ``vllm.SamplingParams`` and ``vllm.sampling_params.SamplingParams``)."""
        for call in self.calls:
            qn = self.qualname(call.func)
            if qn is None:
                continue
            last = qn.rsplit(".", 1)[-1]
            if last not in names:
                continue
            if vllm_only and "." in qn and not qn.startswith("vllm"):
                continue
            yield call

    def method_calls(self, *attrs: str) -> Iterator[ast.Call]:
        for call in self.calls:
            if isinstance(call.func, ast.Attribute) and call.func.attr in attrs:
                yield call

    @cached_property
    def vllm_llm_calls(self) -> list[ast.Call]:
        return [c for c in self.calls_to("LLM", "AsyncLLMEngine", "LLMEngine") if self._is_vllm(c.func)]

    def _is_vllm(self, func: ast.AST) -> bool:
        qn = self.qualname(func) or ""
        return qn.startswith("vllm")

    @cached_property
    def vllm_llm_names(self) -> set[str]:
        """Dotted targets (``llm``, ``self.engine``) assigned from a vLLM ``LLM(...)`` (or its engines), and
        parameters annotated with one (``def run(llm: LLM)``)."""
        return self._engine_names(("LLM", "AsyncLLMEngine", "LLMEngine"))

    @cached_property
    def offline_llm_names(self) -> set[str]:
        """Like ``vllm_llm_names``, for ``vllm.LLM`` only (the offline API whose methods HVD019 checks)."""
        return self._engine_names(("LLM",))

    def _engine_names(self, classes: tuple[str, ...]) -> set[str]:
        names: set[str] = set()
        llm_calls = {id(c) for c in self.vllm_llm_calls
                     if (self.qualname(c.func) or "").rsplit(".", 1)[-1] in classes}
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None and id(node.value) in llm_calls:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if (name := dotted(target)) is not None:
                        names.add(name)
            elif isinstance(node, ast.arg) and node.annotation is not None:
                qn = self.qualname(node.annotation) or ""
                if qn.startswith("vllm") and qn.rsplit(".", 1)[-1] in classes:
                    names.add(node.arg)
        return names

    def is_offline_llm_receiver(self, call: ast.Call) -> bool:
        """True when ``call`` is a method call on a ``vllm.LLM`` (not on an engine class)."""
        if not isinstance(call.func, ast.Attribute):
            return False
        receiver = call.func.value
        if isinstance(receiver, ast.Call) and (self.qualname(receiver.func) or "") in ("vllm.LLM",
                                                                                      "vllm.entrypoints.llm.LLM"):
            return True
        return dotted(receiver) in self.offline_llm_names

    def is_vllm_receiver(self, call: ast.Call) -> bool:
        """True when ``call`` is a method call on a vLLM engine (``llm.generate(...)``)."""
        if not isinstance(call.func, ast.Attribute):
            return False
        receiver = call.func.value
        if isinstance(receiver, ast.Call) and id(receiver) in {id(c) for c in self.vllm_llm_calls}:
            return True
        return dotted(receiver) in self.vllm_llm_names

    @cached_property
    def hf_generate_calls(self) -> list[ast.Call]:
        """``something.generate(...)`` calls that are not on a vLLM engine: Transformers' generate."""
        return [c for c in self.method_calls("generate") if not self.is_vllm_receiver(c)]

    @cached_property
    def hf_model_loads(self) -> list[ast.Call]:
        """``from_pretrained`` calls that load a model (not a tokenizer, processor or config)."""
        out = []
        for call in self.method_calls("from_pretrained"):
            owner = dotted(call.func.value) or ""  # type: ignore[attr-defined]
            last = owner.rsplit(".", 1)[-1]
            if any(s in last for s in ("Tokenizer", "Processor", "Config", "FeatureExtractor")):
                continue
            if "Model" in last or "For" in last or last.startswith("Peft"):
                out.append(call)
        return out

    @cached_property
    def parents(self) -> dict[int, ast.AST]:
        out: dict[int, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                out[id(child)] = node
        return out

    @cached_property
    def scopes(self) -> dict[int, ast.AST]:
        return enclosing_scopes(self.tree)

    def module_constant(self, node: ast.AST | None) -> object:
        """A literal, or the literal a module-level name is assigned once (``MODEL = "org/m"``), else None."""
        value = constant(node, None)
        if value is not None or not isinstance(node, ast.Name):
            return value
        stores = [s for s in self.tree.body if isinstance(s, ast.Assign) and any(dotted(t) == node.id
                                                                                 for t in s.targets)]
        return constant(stores[0].value, None) if len(stores) == 1 else None

    # -- strings -------------------------------------------------------------------------------------
    @cached_property
    def docstring_ids(self) -> set[int]:
        ids: set[int] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                body = node.body
                if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                    ids.add(id(body[0].value))
        return ids

    @cached_property
    def string_literals(self) -> list[ast.Constant]:
        """String constants that are data (docstrings left out), f-string parts included."""
        return [
            n
            for n in ast.walk(self.tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in self.docstring_ids
        ]

    @cached_property
    def string_sites(self) -> list[tuple[ast.expr, str]]:
        """Each string expression once, with its literal text: an f-string (implicit concatenations
        included) is one site located at its start, so positions do not depend on the Python version."""
        sites: list[tuple[ast.expr, str]] = []
        for node in self.string_literals:
            parent = self.parents.get(id(node))
            if isinstance(parent, ast.JoinedStr):
                continue
            sites.append((node, node.value))
        for node in ast.walk(self.tree):
            if isinstance(node, ast.JoinedStr) and not isinstance(self.parents.get(id(node)), ast.FormattedValue):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
                sites.append((node, text))
        return sorted(sites, key=lambda site: (site[0].lineno, site[0].col_offset))

    @cached_property
    def identifiers(self) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
        return names

    @cached_property
    def serve_invocations(self) -> list[ServeInvocation]:
        """``subprocess`` argument lists such as ``["vllm", "serve", model, "--enforce-eager"]``."""
        out: list[ServeInvocation] = []
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.List | ast.Tuple):
                continue
            tokens = [
                Token(str(elt.value), elt.lineno, elt.col_offset + 1)
                if isinstance(elt, ast.Constant)
                else Token("<expr>", elt.lineno, elt.col_offset + 1)
                for elt in node.elts
            ]
            start = find_serve_start([t.text for t in tokens])
            if start is None:
                continue
            inv = ServeInvocation(line=node.lineno, column=node.col_offset + 1,
                                  end_line=node.end_lineno or node.lineno, origin="python")
            parse_serve_args(tokens, start, inv)
            if inv.model == "<expr>":
                inv.model = None
            out.append(inv)
        return out


# ``LLM(...)`` keywords that size a deployment, as the serve flags the HVD1xx rules read.
_LLM_SIZING_KEYWORDS = {"tensor_parallel_size": "tensor-parallel-size", "gpu_memory_utilization":
                        "gpu-memory-utilization", "dtype": "dtype", "limit_mm_per_prompt": "limit-mm-per-prompt"}


def llm_invocations(module: PythonModule) -> list[ServeInvocation]:
    """Each offline ``vllm.LLM(...)`` as a ServeInvocation (origin ``python-llm``) carrying the model and the
    sizing keywords written as literals (or module constants), so launch-size rules apply to it too."""
    out: list[ServeInvocation] = []
    for call in module.vllm_llm_calls:
        if (module.qualname(call.func) or "").rsplit(".", 1)[-1] != "LLM":
            continue
        inv = ServeInvocation(line=call.lineno, column=call.col_offset + 1, end_line=call.end_lineno or call.lineno,
                              origin="python-llm")
        model_node = call.args[0] if call.args else (kw.value if (kw := keyword(call, "model")) else None)
        model = module.module_constant(model_node)
        if isinstance(model, str):
            inv.model, inv.model_line = model, model_node.lineno  # type: ignore[union-attr]
        for kw in call.keywords:
            flag = _LLM_SIZING_KEYWORDS.get(kw.arg or "")
            value = module.module_constant(kw.value)
            if flag is not None and isinstance(value, int | float | str) and not isinstance(value, bool):
                inv.flags[flag] = FlagValue(str(value), kw.lineno, kw.col_offset + 1)
        out.append(inv)
    return out


def enclosing_scopes(tree: ast.Module) -> dict[int, ast.AST]:
    """Map ``id(node)`` -> the innermost function (or the module) that contains it."""
    scope_of: dict[int, ast.AST] = {}

    def visit(node: ast.AST, scope: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope
            scope_of[id(child)] = inner
            visit(child, inner)

    visit(tree, tree)
    return scope_of
