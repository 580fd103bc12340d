"""Follow values the way real bridges pass them: through assignments, dicts, ``**`` splats, function
returns and parameters, simple constants, and imports between the scanned files.

Real HF -> vLLM code rarely writes ``SamplingParams(max_new_tokens=128)``; it writes
``kwargs = dict(max_new_tokens=128, do_sample=False)`` in one function (or file) and
``SamplingParams(**kwargs)`` in another. The rules ask this module "which keywords does this call really
receive?" and "what constant does this expression hold?".

The analysis is flow-insensitive and deliberately small: every assignment to a name in a scope counts (so
a key set on one branch counts), unknown parts are skipped rather than guessed, and recursion stops after
a few hops.

Usage::

    for kw in call_keywords(ctx.project.index, module, call):
        kw.name, kw.value, kw.where  # "max_new_tokens", <ast.Constant 128>, Origin(path, line, ...)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePosixPath

from hf2vllm.doctor.python_source import PythonModule, dotted

_MAX_DEPTH = 6


@dataclass(frozen=True)
class Origin:
    """Where a value is written: the module that holds it and the node."""

    path: str
    module: PythonModule
    node: ast.AST

    @property
    def line(self) -> int:
        return getattr(self.node, "lineno", 1)


@dataclass(frozen=True)
class PassedKeyword:
    """A keyword a call receives, directly or through ``**`` splats of dicts built elsewhere."""

    name: str
    value: ast.expr
    where: Origin
    direct: bool  # written as ``name=value`` in the call itself (safe for --fix)
    via: str = ""  # ``**gen_kwargs`` when it came through a splat


@dataclass
class ProjectIndex:
    """Every parsed Python module of the scan, findable by the dotted names an import could use."""

    modules: dict[str, tuple[str, PythonModule]] = field(default_factory=dict)
    by_path: dict[str, PythonModule] = field(default_factory=dict)
    _resolvers: dict[int, Resolver] = field(default_factory=dict, repr=False)

    def resolver(self, module: PythonModule, path: str | None = None) -> Resolver:
        """One Resolver per module for the whole run, so its assignment tables are built once."""
        found = self._resolvers.get(id(module))
        if found is None:
            found = self._resolvers[id(module)] = Resolver(self, module, path)
        return found

    def add(self, display_path: str, module: PythonModule) -> None:
        self.by_path[display_path] = module
        parts = list(PurePosixPath(display_path).with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts = parts[:-1]
        for start in range(len(parts)):  # "src/pkg/mod.py" answers to pkg.mod and mod as well
            self.modules.setdefault(".".join(parts[start:]), (display_path, module))

    def path_of(self, module: PythonModule) -> str:
        return next((p for p, m in self.by_path.items() if m is module), "<unknown>")

    def find(self, dotted_name: str) -> tuple[str, PythonModule] | None:
        return self.modules.get(dotted_name)


class Resolver:
    """Answers value questions about one module, looking into the others of the scan when imports say so."""

    def __init__(self, index: ProjectIndex, module: PythonModule, path: str | None = None) -> None:
        self.index = index
        self.module = module
        self.path = path or index.path_of(module)

    # -- scopes and assignments ------------------------------------------------------------------------
    def scope_of(self, node: ast.AST) -> ast.AST:
        return self.module.scopes.get(id(node), self.module.tree)

    @cached_property
    def _stores(self) -> dict[tuple[int, str], list[ast.AST]]:
        """(scope id, dotted target) -> statements that store into it (assignments, item sets, updates)."""
        out: dict[tuple[int, str], list[ast.AST]] = {}
        for node in ast.walk(self.module.tree):
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
                targets = [node.target]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("update", "setdefault"):
                targets = [node.func.value]
            for target in targets:
                if isinstance(target, ast.Subscript):
                    target = target.value
                name = dotted(target)
                if name is None:
                    continue
                scope = self.scope_of(node)
                # ``self.x`` lives on the instance: one bucket per module, whatever the method.
                key = (0, name) if name.startswith("self.") else (id(scope), name)
                out.setdefault(key, []).append(node)
        return out

    def stores(self, name: str, scope: ast.AST) -> list[ast.AST]:
        if name.startswith("self."):
            return self._stores.get((0, name), [])
        found = self._stores.get((id(scope), name), [])
        if not found and scope is not self.module.tree:
            found = self._stores.get((id(self.module.tree), name), [])
        return found

    def function(self, name: str) -> tuple[Resolver, ast.FunctionDef | ast.AsyncFunctionDef] | None:
        """A function defined in this module or imported from a scanned one."""
        for node in ast.walk(self.module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                return self, node
        imported = self.imported(name)
        if imported is not None:
            other, remote = imported
            return other.function(remote)
        return None

    def imported(self, name: str) -> tuple[Resolver, str] | None:
        """(resolver of the scanned module, name there) for ``from pkg.mod import name``."""
        qualified = self.module.aliases.get(name)
        if qualified is None or "." not in qualified:
            return None
        module_name, _, remote = qualified.rpartition(".")
        found = self.index.find(module_name)
        if found is None or found[1] is self.module:
            return None
        return self.index.resolver(found[1], found[0]), remote

    # -- constants ---------------------------------------------------------------------------------------
    def constant(self, node: ast.AST | None, depth: int = 0) -> object | None:
        """The literal an expression holds (through names, imports, ``+`` of strings/lists), or None."""
        if node is None or depth > _MAX_DEPTH:
            return None
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = self.constant(node.operand, depth + 1)
            return -value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if isinstance(node, ast.List | ast.Tuple):
            values = [self.constant(e, depth + 1) for e in node.elts]
            return None if any(v is None for v in values) else values
        if isinstance(node, ast.Name):
            stores = [s for s in self.stores(node.id, self.scope_of(node)) if isinstance(s, ast.Assign | ast.AnnAssign)]
            if len(stores) == 1:
                return self.constant(stores[0].value, depth + 1)  # type: ignore[attr-defined]
            if not stores and (imported := self.imported(node.id)) is not None:
                other, remote = imported
                return other.constant(ast.Name(id=remote, ctx=ast.Load()), depth + 1)
        return None

    # -- dicts -------------------------------------------------------------------------------------------
    def dict_entries(self, node: ast.AST, depth: int = 0, via: str = "") -> Iterator[PassedKeyword]:
        """Keys a dict-valued expression is known to hold, with where each value is written."""
        if depth > _MAX_DEPTH:
            return
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    yield from self.dict_entries(value, depth + 1, via)
                elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                    yield PassedKeyword(key.value, value, Origin(self.path, self.module, key), False, via)
        elif isinstance(node, ast.Call) and dotted(node.func) == "dict":
            for arg in node.args[:1]:
                yield from self.dict_entries(arg, depth + 1, via)
            for kw in node.keywords:
                if kw.arg is None:
                    yield from self.dict_entries(kw.value, depth + 1, via)
                else:
                    yield PassedKeyword(kw.arg, kw.value, Origin(self.path, self.module, kw), False, via)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            yield from self.dict_entries(node.left, depth + 1, via)
            yield from self.dict_entries(node.right, depth + 1, via)
        elif isinstance(node, ast.Name | ast.Attribute) and (name := dotted(node)) is not None:
            yield from self._entries_of_name(name, node, depth, via)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            found = self.function(node.func.id)
            if found is not None:
                resolver, func = found
                for ret in ast.walk(func):
                    if isinstance(ret, ast.Return) and ret.value is not None and \
                            resolver.scope_of(ret) is func:
                        yield from resolver.dict_entries(ret.value, depth + 1, via)

    def _entries_of_name(self, name: str, node: ast.AST, depth: int, via: str) -> Iterator[PassedKeyword]:
        scope = self.scope_of(node)
        stores = self.stores(name, scope)
        for store in stores:
            if isinstance(store, ast.Assign | ast.AnnAssign):
                if isinstance(store, ast.Assign) and any(isinstance(t, ast.Subscript) for t in store.targets):
                    target = next(t for t in store.targets if isinstance(t, ast.Subscript))
                    key = target.slice
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        yield PassedKeyword(key.value, store.value, Origin(self.path, self.module, target), False, via)
                    continue
                yield from self.dict_entries(store.value, depth + 1, via)  # type: ignore[arg-type]
            elif isinstance(store, ast.Call):  # name.update(...) / name.setdefault("k", v)
                if store.func.attr == "setdefault" and len(store.args) == 2:  # type: ignore[attr-defined]
                    key = store.args[0]
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        yield PassedKeyword(key.value, store.args[1], Origin(self.path, self.module, key), False, via)
                else:
                    for arg in store.args[:1]:
                        yield from self.dict_entries(arg, depth + 1, via)
                    for kw in store.keywords:
                        if kw.arg is not None:
                            yield PassedKeyword(kw.arg, kw.value, Origin(self.path, self.module, kw), False, via)
        if stores or "." in name:
            return
        if (imported := self.imported(name)) is not None:
            other, remote = imported
            yield from other._entries_of_name(remote, other.module.tree, depth + 1, via)
            return
        yield from self._entries_from_callers(name, scope, depth, via)

    def _entries_from_callers(self, name: str, scope: ast.AST, depth: int, via: str) -> Iterator[PassedKeyword]:
        """``def make(**gen_kwargs): SamplingParams(**gen_kwargs)``: what the callers of ``make`` pass."""
        if not isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            return
        args = scope.args
        is_var_kw = args.kwarg is not None and args.kwarg.arg == name
        positional = [a.arg for a in [*args.posonlyargs, *args.args]]
        if not is_var_kw and name not in positional and name not in [a.arg for a in args.kwonlyargs]:
            return
        method = bool(positional) and positional[0] in ("self", "cls")
        owner = self._class_of(scope) if method else None
        named = {*positional, *(a.arg for a in args.kwonlyargs)}
        for resolver in self._all_resolvers():
            for call in resolver.module.calls:
                if not self._calls(call, scope, owner, resolver is self):
                    continue
                if is_var_kw:
                    for kw in call.keywords:
                        if kw.arg is None:  # keys that bind a named parameter never reach **kwargs
                            yield from (e for e in resolver.dict_entries(kw.value, depth + 1, via)
                                        if e.name not in named)
                        elif kw.arg not in named:
                            yield PassedKeyword(kw.arg, kw.value, Origin(resolver.path, resolver.module, kw), False,
                                                via)
                    continue
                value = next((kw.value for kw in call.keywords if kw.arg == name), None)
                if value is None and name in positional:
                    index = positional.index(name) - (1 if method and isinstance(call.func, ast.Attribute) else 0)
                    if 0 <= index < len(call.args):
                        value = call.args[index]
                if value is not None:
                    yield from resolver.dict_entries(value, depth + 1, via)

    def _class_of(self, function: ast.AST) -> ast.ClassDef | None:
        parent = self.module.parents.get(id(function))
        return parent if isinstance(parent, ast.ClassDef) else None

    def _calls(self, call: ast.Call, function: ast.FunctionDef | ast.AsyncFunctionDef, owner: ast.ClassDef | None,
               same_module: bool) -> bool:
        """Whether ``call`` calls ``function``: ``name(...)`` for a function; for a method, ``self.name(...)``
        inside its class, or ``Class(...)`` for ``__init__`` (never ``super().__init__``, never another
        class's method of the same name)."""
        func = call.func
        if owner is None:
            return isinstance(func, ast.Name) and func.id == function.name
        if function.name == "__init__":
            return isinstance(func, ast.Name) and func.id == owner.name
        return same_module and isinstance(func, ast.Attribute) and func.attr == function.name and \
            isinstance(func.value, ast.Name) and func.value.id in ("self", "cls") and \
            self._class_of(self.scope_of(call)) is owner

    def _all_resolvers(self) -> Iterator[Resolver]:
        yield self
        for path, module in self.index.by_path.items():
            if module is not self.module:
                yield self.index.resolver(module, path)


def call_keywords(resolver: Resolver, call: ast.Call) -> list[PassedKeyword]:
    """Every keyword ``call`` is known to receive: written in the call, or splatted in with ``**``."""
    out: list[PassedKeyword] = []
    for kw in call.keywords:
        if kw.arg is not None:
            out.append(PassedKeyword(kw.arg, kw.value, Origin(resolver.path, resolver.module, kw), True))
        else:
            label = ast.unparse(kw.value)
            via = f"**{label if len(label) <= 40 else label[:37] + '...'}"
            out.extend(resolver.dict_entries(kw.value, via=via))
    return out
