"""vLLM's engine logs go to a file, and an engine that fails to start becomes one line: the root cause
read from that file, and the file's path.

vLLM configures logging in each of its processes (engine core, workers) from the environment it
inherits, at import: ``VLLM_LOGGING_CONFIG_PATH`` names a ``logging.config.dictConfig`` JSON. Without it,
a failed engine start prints the engine core's traceback on the terminal and raises in this process a
``RuntimeError`` that only says "See root cause above" (with ``--verbose`` that stays so: the user asked
for the logs).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hf2vllm.errors import HF2VLLMError

KEEP_LOGS = 20
"""Engine logs kept in the logs folder (the oldest go first)."""

_EXCEPTION_LINE = re.compile(r"\b((?:[A-Za-z_][\w]*\.)*[A-Z]\w*(?:Error|Exception|Exit)): (.+?)\s*$")


class EngineStartError(HF2VLLMError):
    """vLLM's engine did not start: the root cause from its log, and the log's path (exit code 1)."""

    exit_code = 1


def logs_folder() -> Path:
    from hf2vllm.models import state_dir

    return state_dir() / "logs"


def root_cause(log_text: str) -> str | None:
    """The first exception line (``SomeError: message``) that ends a traceback in a log (later ones are
    usually its consequences: "Worker failed with error ..."), else the first exception line at all.

    >>> root_cause("Traceback:\\n  File x\\nRuntimeError: head_dim=16\\nRuntimeError: Worker failed with error")
    'RuntimeError: head_dim=16'
    >>> root_cause("12:00 ERROR [core.py:1] EngineCore failed: ValueError: bad")
    'ValueError: bad'
    >>> root_cause("all good") is None
    True
    """
    found = None
    previous = ""
    for line in log_text.splitlines():
        match = _EXCEPTION_LINE.search(line)
        if match and not match.group(1).endswith("SystemExit"):
            here = f"{match.group(1)}: {match.group(2)}"
            if previous.startswith((" ", "\t")):  # ends a traceback: the first such is the root cause
                return here
            found = found or here
        if line.strip():
            previous = line
    return found


@contextmanager
def engine_log(label: str = "vllm-engine") -> Iterator[Path | None]:
    """While vLLM's engine starts (its processes inherit the environment then): its logs, at INFO, go
    to a new file under ``logs_folder()`` instead of the terminal. Yields the file's path, or None when
    the user chose vLLM's logging (``--verbose``, or their own ``VLLM_LOGGING_CONFIG_PATH``)."""
    quiet = os.environ.get("VLLM_LOGGING_LEVEL") == "ERROR" and not os.environ.get("VLLM_LOGGING_CONFIG_PATH")
    if not quiet:
        yield None
        return
    folder = logs_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        yield None
        return
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = folder / f"{label}-{stamp}-{os.getpid()}.log"
    config = folder / f".{path.stem}.logging.json"
    config.write_text(json.dumps({
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d] %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(path), "level": "INFO",
                              "formatter": "plain", "encoding": "utf-8"}},
        "loggers": {"vllm": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }), encoding="utf-8")
    os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config)
    global _LAST
    _LAST = path
    # The engine's processes also write to stderr outside logging (progress bars, library warnings,
    # C++ warnings, a dying process's traceback): they inherit this process's stderr when they start,
    # so it points at the log for that moment. Progress and results go to stdout and stay.
    global _TERMINAL_FD
    sys.stderr.flush()
    saved = os.dup(2)
    _TERMINAL_FD = saved
    with path.open("ab") as sink:
        os.dup2(sink.fileno(), 2)
    try:
        yield path
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        _TERMINAL_FD = None
        os.close(saved)
        # Every engine process has read it by now (they configure logging at import, during the start).
        os.environ.pop("VLLM_LOGGING_CONFIG_PATH", None)
        config.unlink(missing_ok=True)
        _prune(folder)


_LAST: Path | None = None
_TERMINAL_FD: int | None = None


def terminal_stderr() -> int:
    """The file descriptor of the terminal's stderr, also while ``engine_log`` points fd 2 at a log."""
    return _TERMINAL_FD if _TERMINAL_FD is not None else 2


def explain_engine_failure(err: BaseException) -> EngineStartError | None:
    """One line for a failure raised by vLLM (its exception types, or an engine that died) when this
    process's latest engine log names a root cause; None otherwise."""
    module = type(err).__module__ or ""
    if not module.startswith("vllm") and "EngineCore" not in str(err) and "Engine core" not in str(err):
        return None
    if _LAST is None or not _LAST.exists():
        return None
    cause = root_cause(_LAST.read_text(encoding="utf-8", errors="replace"))
    return EngineStartError(f"vLLM's engine failed: {cause} (full log: {_LAST})") if cause else None


def _prune(folder: Path) -> None:
    logs = sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime)
    for old in logs[:-KEEP_LOGS]:
        old.unlink(missing_ok=True)
