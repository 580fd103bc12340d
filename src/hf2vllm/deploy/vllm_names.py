"""Names the installed vLLM accepts (quantisation methods, KV-cache and model dtypes), read from its
source instead of importing it: ``import vllm`` takes seconds, and a typo must be refused before that.

Each list is the ``Literal`` vLLM itself validates against (vllm 0.32):

* ``--quantization``: ``QuantizationMethods`` in ``vllm/model_executor/layers/quantization/__init__.py``
  (``QUANTIZATION_METHODS = list(get_args(QuantizationMethods))``)
* ``--kv-cache-dtype``: ``CacheDType`` in ``vllm/config/cache.py``
* ``--dtype``: ``ModelDType`` in ``vllm/config/model.py``

When vLLM is not installed, or a file moved, the fallback lists below (vLLM 0.32's) are used.

Usage::

    checks.choice(args.quantization, "--quantization", quantization_methods())
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

FALLBACK_QUANTIZATION = (
    "awq", "auto_awq", "fp8", "fbgemm_fp8", "fp_quant", "modelopt", "modelopt_fp4", "modelopt_mxfp8",
    "modelopt_mixed", "auto_gptq", "gptq", "gptq_marlin", "awq_marlin", "compressed-tensors", "experts_int8",
    "quark", "moe_wna16", "torchao", "inc", "mxfp4", "gpt_oss_mxfp4",
)
FALLBACK_KV_CACHE_DTYPES = ("auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc")
FALLBACK_MODEL_DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")


def vllm_source(relative: str) -> Path | None:
    """The installed vLLM's source file ``relative`` (e.g. ``"config/model.py"``), or None; imports nothing."""
    spec = importlib.util.find_spec("vllm")  # a top-level lookup imports nothing
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), relative)
    return path if path.is_file() else None


@functools.cache
def _literal(relative: str, name: str) -> tuple[str, ...] | None:
    """The string values of ``name = Literal[...]`` in vLLM's ``relative`` source file, or None."""
    path = vllm_source(relative)
    if path is None:
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
            node.target if isinstance(node, ast.AnnAssign) else None)
        if not (isinstance(target, ast.Name) and target.id == name and isinstance(node.value, ast.Subscript)):
            continue
        values = node.value.slice.elts if isinstance(node.value.slice, ast.Tuple) else [node.value.slice]
        names = tuple(v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str))
        return names or None
    return None


def quantization_methods() -> tuple[str, ...]:
    """``--quantization`` values the installed vLLM knows."""
    return _literal("model_executor/layers/quantization/__init__.py", "QuantizationMethods") or FALLBACK_QUANTIZATION


def kv_cache_dtypes() -> tuple[str, ...]:
    """``--kv-cache-dtype`` values the installed vLLM knows."""
    return _literal("config/cache.py", "CacheDType") or FALLBACK_KV_CACHE_DTYPES


def model_dtypes() -> tuple[str, ...]:
    """``--dtype`` values the installed vLLM knows."""
    return _literal("config/model.py", "ModelDType") or FALLBACK_MODEL_DTYPES
