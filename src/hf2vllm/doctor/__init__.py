"""``hf2vllm doctor``: a linter for HF -> vLLM migration bugs in Python, launch scripts and YAML.

Usage::

    from hf2vllm.doctor import DoctorSettings, scan
    report = scan([Path(".")], DoctorSettings())

Rules live in ``hf2vllm.doctor.rules`` (one ``Rule`` each, with the bad and good examples that
docs/rules.md shows and the tests run); ``engine`` parses and applies them; ``output`` renders.
"""

from hf2vllm.doctor.context import DoctorSettings
from hf2vllm.doctor.engine import scan, select_rules
from hf2vllm.doctor.model import DoctorReport, Finding, Rule, Severity
from hf2vllm.doctor.rules import RULES, RULES_BY_ID

__all__ = ["RULES", "RULES_BY_ID", "DoctorReport", "DoctorSettings", "Finding", "Rule", "Severity", "scan",
           "select_rules"]
