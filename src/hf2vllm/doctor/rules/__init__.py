"""Every rule the doctor knows, in id order: ``RULES`` is the single list docs, CLI and tests read.

One module per theme: ``sampling`` (HVD001-005, 021), ``prompts`` (006-008), ``pooling`` (009-011),
``consistency`` (012-014), ``clients`` (015-017), ``drift`` (018-020, API drift against the
installed/pinned vLLM), ``serving`` (HVD1xx, launch commands).
"""

from __future__ import annotations

from hf2vllm.doctor.model import Rule
from hf2vllm.doctor.rules import clients, consistency, drift, pooling, prompts, sampling, serving

RULES: tuple[Rule, ...] = tuple(sorted(
    (obj for module in (sampling, prompts, pooling, consistency, clients, drift, serving)
     for obj in vars(module).values() if isinstance(obj, Rule)),
    key=lambda rule: rule.id,
))
RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}

__all__ = ["RULES", "RULES_BY_ID"]
