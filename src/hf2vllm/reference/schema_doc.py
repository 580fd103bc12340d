"""Generate ``docs/reference-format.md`` from the Pydantic models of ``reference.schema``.

Regenerate after changing the format::

    python -m hf2vllm.reference.schema_doc > docs/reference-format.md

A test compares the committed file with this output, so the doc cannot drift from the code.
"""

from __future__ import annotations

from hf2vllm.reference.schema import FORMAT_VERSION, MANIFEST, REQUESTS, RecordedRequest, ReferenceManifest
from hf2vllm.report.schema_doc import model_sections


def render_format_doc() -> str:
    header = [
        "# Reference directory format",
        "",
        f"Format version **{FORMAT_VERSION}** (`format_version` in `{MANIFEST}`). A minor bump only adds fields; a "
        "major bump renames or removes one, and this hf2vllm refuses a major version it does not know. Generated "
        "from `src/hf2vllm/reference/schema.py` by `python -m hf2vllm.reference.schema_doc`; do not edit by hand.",
        "",
        "`hf2vllm record --out REF` writes:",
        "",
        f"- `REF/{MANIFEST}`: one `ReferenceManifest` (below), rewritten atomically; `complete` is false until every "
        "request and the noise measurement are written.",
        f"- `REF/{REQUESTS}`: a journal. Line 1 is `{{\"journal\": 1, \"run_key\": ...}}` (the manifest's `run_key`); "
        "every later line is `{\"id\": ..., \"payload\": RecordedRequest}`, appended and fsync'd as each batch "
        "finishes. A crash can tear only the last line, which readers skip; an id's first line wins.",
        "",
        "`hf2vllm compare --against REF` refuses a run whose model (config and weight hashes), tokenizer, chat "
        "template, prompt file or settings differ from the manifest's, naming each difference.",
        "",
    ]
    return "\n".join(header + model_sections(ReferenceManifest, RecordedRequest)).rstrip() + "\n"


if __name__ == "__main__":
    print(render_format_doc(), end="")
