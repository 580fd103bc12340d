"""Generate ``docs/report-schema.md`` from the Pydantic models of ``report.schema``.

Regenerate after changing the schema::

    python -m hf2vllm.report.schema_doc > docs/report-schema.md

A test compares the committed file with this output, so the doc cannot drift from the code.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from hf2vllm.report.schema import SCHEMA_VERSION, CompareReport


def _type_name(annotation: Any, seen: list[type[BaseModel]]) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        if annotation not in seen:
            seen.append(annotation)
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if origin is Literal:
        return " \\| ".join(f'`"{a}"`' for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a, seen) for a in args)
    if origin in (list, tuple, set):
        return f"list[{_type_name(args[0], seen)}]" if args else "list"
    if origin is dict:
        return f"dict[{_type_name(args[0], seen)}, {_type_name(args[1], seen)}]" if args else "dict"
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _model_section(model: type[BaseModel], seen: list[type[BaseModel]]) -> list[str]:
    doc = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    lines = [f"## {model.__name__}", ""]
    if doc:
        lines += [doc, ""]
    lines += ["| field | type | required | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        kind = _type_name(field.annotation, seen)
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        required = "yes" if field.is_required() else "no"
        lines.append(f"| `{name}` | {kind} | {required} | {description} |")
    return [*lines, ""]


def model_sections(*roots: type[BaseModel]) -> list[str]:
    """One table per model, ``roots`` first, then every model they reference (first-reference order)."""
    seen: list[type[BaseModel]] = list(roots)
    sections: list[str] = []
    index = 0
    while index < len(seen):
        sections += _model_section(seen[index], seen)
        index += 1
    return sections


def render_schema_doc() -> str:
    """The whole Markdown document (deterministic: models in first-reference order)."""
    sections = model_sections(CompareReport)
    header = [
        "# report.json schema",
        "",
        f"Schema version **{SCHEMA_VERSION}** (`schema_version` in every report). A minor bump only adds "
        "fields; a major bump renames or removes one. Generated from `src/hf2vllm/report/schema.py` by "
        "`python -m hf2vllm.report.schema_doc`; do not edit by hand.",
        "",
        "Changes: 1.1 added verdicts (`match`/`near_tie`/`mismatch`), divergence diagnoses, named causes with "
        "evidence, per-step logprobs, teacher-forced logprob statistics, batch probes, text similarity, "
        "per-side setups and `token_strings`. 1.2 added `verdict_method` (teacher forcing), `noise` (the "
        "reference measured against itself), `run_verdict` (survival curve, collapse check), `wall_seconds`, "
        "`stage_seconds`, per-step `top_logits`, per-request forks and degenerate flags; `logprobs_mode` now "
        "holds the candidate engine's own mode (`raw_logprobs`; 1.1 wrote `raw`). 1.3 added `group_by` and "
        "`groups` (per-group summaries by a request metadata key such as `domain`, worst first), `reference_record` "
        "and `verdict_method` `record` (`compare --against`: the reference read from a record). 1.4 added "
        "`reference_record.ray_workers`, `recorded_by_this_run` and `kept` (`compare --ray-workers`: the "
        "reference recorded on Ray workers by the run itself).",
        "",
    ]
    return "\n".join(header + sections).rstrip() + "\n"


if __name__ == "__main__":
    print(render_schema_doc(), end="")
