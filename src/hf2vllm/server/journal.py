"""An append-only JSONL journal of finished requests, so a long run can resume after any crash.

Usage::

    journal = Journal.open(path, run_key="compare:abc123", resume=True)
    todo = [r for r in requests if r.id not in journal.done]
    for result in run(todo):
        journal.append(result.request_id, result.model_dump())   # fsync'd before returning
    answers = journal.done          # request id -> record payload, first answer wins

Line 1 is a header naming the run (``run_key``: a fingerprint of model, settings and request set);
resuming with a different run refuses instead of mixing answers of two runs. Each later line is one
finished request. A crash can tear only the last line (one ``write`` per record, fsync after it):
loading ignores a torn final line and the next append starts on a fresh line. A record for an id
already in the journal is ignored on load, so every id has exactly one answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from hf2vllm.errors import InputError

JOURNAL_FORMAT = 1


class JournalHeader(BaseModel):
    """First line of a journal file."""

    journal: int = JOURNAL_FORMAT
    run_key: str = Field(description="Fingerprint of the run; resume refuses a different one.")


class JournalRecord(BaseModel):
    """One finished request."""

    id: str
    payload: dict[str, Any]


def run_fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts (model, spec, request ids...) naming one run."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Journal:
    """See the module docstring. Thread-safe appends; one writer process at a time."""

    def __init__(self, path: Path, run_key: str, done: dict[str, dict[str, Any]], torn_lines: int) -> None:
        self.path = path
        self.run_key = run_key
        self.done = done
        self.torn_lines = torn_lines
        self.resumed = len(done)
        self._lock = threading.Lock()
        self._fh: Any = None

    @classmethod
    def open(cls, path: str | Path, *, run_key: str, resume: bool) -> Journal:
        """Start a new journal (refuses to overwrite one unless it is empty) or resume an existing one."""
        path = Path(path)
        exists = path.is_file() and path.stat().st_size > 0
        if exists and not resume:
            raise InputError(f"journal {path} already exists: pass --resume to continue that run, or remove it")
        if not exists:
            path.parent.mkdir(parents=True, exist_ok=True)
            journal = cls(path, run_key, {}, 0)
            journal._write_line(JournalHeader(run_key=run_key).model_dump_json())
            return journal
        header, done, torn = read_journal(path)
        if header.run_key != run_key:
            raise InputError(
                f"journal {path} belongs to another run (run key {header.run_key}, this run {run_key}): the model, "
                "settings or prompts changed; use a new --journal path"
            )
        return cls(path, run_key, done, torn)

    def append(self, request_id: str, payload: dict[str, Any]) -> bool:
        """Record a finished request (durably); False when the id was already recorded (nothing written)."""
        with self._lock:
            if request_id in self.done:
                return False
            self._write_line(JournalRecord(id=request_id, payload=payload).model_dump_json())
            self.done[request_id] = payload
            return True

    def _write_line(self, line: str) -> None:
        if self._fh is None:
            self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open for the run, closed in close()
            # After a torn last line, start on a fresh line so the torn fragment stays isolated.
            if self._fh.tell() > 0 and not _ends_with_newline(self.path):
                self._fh.write(b"\n")
        self._fh.write(line.encode() + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_journal(path: Path) -> tuple[JournalHeader, dict[str, dict[str, Any]], int]:
    """Header, id -> payload (first record wins) and the number of unreadable (torn) lines."""
    done: dict[str, dict[str, Any]] = {}
    torn = 0
    header: JournalHeader | None = None
    with path.open("rb") as fh:
        lines = fh.read().split(b"\n")
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            torn += 1
            continue
        if header is None:
            if "run_key" not in data:
                raise InputError(f"{path}:{lineno}: not an hf2vllm journal (no header line)")
            header = JournalHeader.model_validate(data)
            continue
        if not isinstance(data, dict) or "id" not in data or "payload" not in data:
            torn += 1
            continue
        done.setdefault(str(data["id"]), data["payload"])
    if header is None:
        raise InputError(f"{path}: not an hf2vllm journal (no header line)")
    return header, done, torn


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
