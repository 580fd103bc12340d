"""Reading and writing a reference directory (layout in ``reference.schema``).

Writing goes through ``server.journal.Journal``: every finished request is one fsync'd line, a crash
tears at most the last one, and a resumed run skips the ids already there. The manifest is rewritten
atomically (temp file + rename), so it is never half-written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from hf2vllm.errors import InputError
from hf2vllm.reference.schema import FORMAT_VERSION, MANIFEST, REQUESTS, RecordedRequest, ReferenceManifest


def write_manifest(folder: Path, manifest: ReferenceManifest) -> Path:
    path = folder / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(manifest.model_dump_json(indent=2))
    os.replace(tmp, path)
    return path


def read_manifest(folder: Path) -> ReferenceManifest:
    """The manifest of ``folder``; a clear error for a folder that is not a reference, or a newer format."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"reference {folder} does not exist (make one with `hf2vllm record --out {folder}`)")
    if not folder.is_dir():
        raise InputError(f"reference {folder} is a file; give the directory `hf2vllm record --out` wrote")
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder} is not a reference directory: it has no {MANIFEST} (`hf2vllm record --out DIR` writes one)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not valid JSON ({err}); the reference is damaged: record it again") from err
    version = str(raw.get("format_version", "")) if isinstance(raw, dict) else ""
    if version.split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise InputError(
            f"{path}: reference format {version or '(none)'} is not readable by this hf2vllm (reads {FORMAT_VERSION}); "
            "record it again with this version"
        )
    try:
        return ReferenceManifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"{path}: {where}: {first['msg']}; the reference is damaged: record it again") from err


def read_requests(folder: Path, run_key: str) -> dict[str, RecordedRequest]:
    """Recorded requests by id (journal order), checked against the manifest's run key."""
    from hf2vllm.server.journal import read_journal

    path = Path(folder) / REQUESTS
    if not path.is_file():
        return {}
    header, done, _torn = read_journal(path)
    if header.run_key != run_key:
        raise InputError(f"{path} belongs to another recording than {Path(folder) / MANIFEST}: record it again")
    recorded = {}
    for rid, payload in done.items():
        try:
            recorded[rid] = RecordedRequest.model_validate(payload)
        except ValidationError as err:
            raise InputError(f"{path}: request {rid!r} is damaged ({err.errors()[0]['msg']}): record it again") from err
    return recorded
