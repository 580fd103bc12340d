"""hf2vllm: move inference from Hugging Face Transformers to vLLM, and prove the move kept results.

Story of the package, in the order data flows:
``requests`` (prompts in) -> ``backends`` (HF, offline vLLM, OpenAI server) -> ``parity`` (compare and
explain) -> ``report`` (terminal, JSON, HTML). ``spec`` translates generation settings between the two
worlds; ``deploy``, ``bench`` and ``doctor`` cover serving, speed and source-code checks. ``api`` is the
front door (``hf2vllm.record``, ``hf2vllm.compare``, ``hf2vllm.translate``); the commands are thin shells over it.

Usage::

    import hf2vllm
    report = hf2vllm.compare(limit=4, max_new_tokens=16)
    print(report.summary.exact_match_rate)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The Python API (docs/api.md), imported on first use so that ``import hf2vllm`` (and ``hf2vllm --help``)
# never loads torch, Transformers or vLLM: ``hf2vllm.compare(...)``, ``hf2vllm.translate(...)``,
# ``hf2vllm.GenerationSpec.from_hf(...).to_vllm()``.
_LAZY = {
    "compare": "hf2vllm.api",
    "translate": "hf2vllm.api",
    "record": "hf2vllm.api",
    "GenerationSpec": "hf2vllm.spec",
    "CompareOptions": "hf2vllm.parity.run",
    "CompareReport": "hf2vllm.report.schema",
    "Translation": "hf2vllm.translation",
}

__all__ = [
    "CompareOptions", "CompareReport", "GenerationSpec", "Translation", "__version__", "compare", "record", "translate",
]

if TYPE_CHECKING:
    from hf2vllm.api import compare, record, translate
    from hf2vllm.parity.run import CompareOptions
    from hf2vllm.report.schema import CompareReport
    from hf2vllm.spec import GenerationSpec
    from hf2vllm.translation import Translation


def __getattr__(name: str) -> Any:
    # Not cached in globals(): each access reads the defining module's current attribute.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hf2vllm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
