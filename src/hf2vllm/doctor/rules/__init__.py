"""Every rule the doctor knows, in id order: ``RULES`` is the single list docs, CLI and tests read."""

from __future__ import annotations

from hf2vllm.doctor.model import Rule
from hf2vllm.doctor.rules.python_rules import PYTHON_RULES
from hf2vllm.doctor.rules.server_rules import SERVER_RULES

RULES: tuple[Rule, ...] = tuple(sorted(PYTHON_RULES + SERVER_RULES, key=lambda r: r.id))
RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in RULES}

__all__ = ["RULES", "RULES_BY_ID"]
