"""SARIF 2.1.0 view of a ``DoctorReport``, for code-scanning tools (GitHub, GitLab, VS Code SARIF viewer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from hf2vllm.doctor.model import DoctorReport, Rule, Severity
from hf2vllm.doctor.rules import RULES

SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _rule_descriptor(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.why},
        "help": {"text": rule.fix, "markdown": f"**Why.** {rule.why}\n\n**Fix.** {rule.fix}"},
        "defaultConfiguration": {"level": _LEVEL[rule.severity]},
        "properties": {"tags": ["hf2vllm", "migration", *rule.applies_to], "fixable": rule.fixable},
    }


def to_sarif(report: DoctorReport, rules: tuple[Rule, ...] = RULES) -> dict[str, Any]:
    """The SARIF log as a JSON-ready dict (one run, every known rule in ``tool.driver.rules``)."""
    index = {rule.id: i for i, rule in enumerate(rules)}
    results = []
    for finding in report.findings:
        region: dict[str, Any] = {"startLine": finding.line, "startColumn": finding.column}
        if finding.end_line is not None:
            region["endLine"] = max(finding.end_line, finding.line)
        if finding.end_column is not None and (finding.end_line or finding.line) >= finding.line:
            end_col = finding.end_column
            if (finding.end_line or finding.line) == finding.line:
                end_col = max(end_col, finding.column)
            region["endColumn"] = end_col
        if finding.source_line:
            region["snippet"] = {"text": finding.source_line}
        results.append({
            "ruleId": finding.rule_id,
            "ruleIndex": index[finding.rule_id],
            "level": _LEVEL[finding.severity],
            "message": {"text": finding.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": quote(finding.path), "uriBaseId": "SRCROOT"},
                    "region": region,
                }
            }],
        })
    notifications = [
        {"level": "error", "message": {"text": error}} for error in report.parse_errors
    ]
    root_uri = Path(report.root).resolve().as_uri().rstrip("/") + "/"
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "hf2vllm doctor",
                "semanticVersion": report.version,
                "version": report.version,
                "rules": [_rule_descriptor(rule) for rule in rules],
            }},
            "originalUriBaseIds": {"SRCROOT": {"uri": root_uri}},
            "invocations": [{
                "executionSuccessful": True,
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    }
