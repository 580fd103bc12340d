"""A stopped run leaves nothing behind: SIGTERM, SIGHUP and SIGINT end a command the way Ctrl-C does,
the processes it started (vLLM's engine core and workers, a ``vllm serve``) go with it, and one line
says what was interrupted and what is on disk.

Usage (``cli.main`` does this for every command)::

    interrupt.install()
    try:
        app()
    except SystemExit as err:                       # Typer ends every run with one; so does Interrupted
        sys.exit(interrupt.settle(err.code))        # after a signal: 128 + signum, and the line

    interrupt.doing("loading the vLLM engine")      # commands: what the line says was running
    interrupt.saves(journal, "{lines} answers in {path}")   # ... and what the run writes as it goes

Lifecycle of a signal:

1. The handler raises :class:`Interrupted` in the main thread, once: the run's ``finally:`` blocks
   close its engines and servers as they do on Ctrl-C. A second signal does not raise again (it would
   break that clean-up); it cuts the grace period short instead.
2. ``settle`` (called by ``cli.main`` once the command has unwound) stops whatever descendant process
   is left (SIGTERM, then SIGKILL), prints the line and ends the process with ``128 + signum``.
3. A watcher thread, woken by the C-level signal handler (``signal.set_wakeup_fd``) even while the main
   thread is stuck in native code, re-sends the signal to the main thread (a blocking C call returns
   to Python only when a signal interrupts it) and is the last resort: ``GRACE_S`` after the signal,
   if the run has not settled, it does step 2 itself.

vLLM's engine core survives its parent (its own SIGTERM handler does not stop it once orphaned), and a
worker whose engine core died is re-parented away from this process; so the process is made a child
subreaper (Linux), which keeps every process it started in its tree, where ``psutil`` finds it.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What a terminal (Ctrl-C), ``timeout``/CI runners/systemd/Kubernetes and a closed terminal send."""

GRACE_S = 5.0
"""Seconds the run gets to close its own engines before the watcher stops them."""

TERM_WAIT_S = 2.0
"""Seconds leftover processes get to exit on SIGTERM before SIGKILL."""

_PR_SET_CHILD_SUBREAPER = 36


class Interrupted(SystemExit):
    """Raised in the main thread by a SIGINT, SIGTERM or SIGHUP, with exit code ``128 + signum``: unwinds
    as Ctrl-C does (``finally:`` blocks and context managers run; ``except Exception`` does not catch it).

    Not a ``KeyboardInterrupt``: vLLM swallows those while it waits for its engine core's handshake
    (``vllm.utils.network_utils.zmq_socket_ctx``), then waits up to ten minutes for the engine. A
    ``SystemExit``, because asyncio re-raises one from whichever task was running (``compare --server``)
    where it would keep any other exception in that task, and Typer passes it through."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()  # the handler may run in the main thread while it settles
        self.installed = False
        self.groups: set[str] = set()
        self.signum: int | None = None
        self.at = 0.0
        self.raised = False
        self.echo = False  # the watcher re-sent the signal to the main thread (see _watch)
        self.hurry = threading.Event()
        self.doing: str | None = None
        self.saved: list[tuple[Path, str | Callable[[Path], str]]] = []
        self.snapshot: list[Any] = []  # psutil.Process objects: the descendants when the signal came
        self.wakeup: tuple[socket.socket, socket.socket] | None = None  # kept open for the whole process


_state = _State()


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def install(command_groups: Collection[str] = ()) -> None:
    """Handle SIGINT, SIGTERM and SIGHUP as described above (main thread only; once per process).
    ``command_groups``: commands whose subcommand the line names too (``bench`` -> ``bench offline``)."""
    if _state.installed or threading.current_thread() is not threading.main_thread():
        return
    _state.installed = True
    _state.groups = set(command_groups)
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    _become_subreaper()
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    _state.wakeup = (reader, writer)
    try:
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except (ValueError, OSError):  # no wake-up fd: the Python-level handler starts the watcher's clock
        pass
    threading.Thread(target=_watch, args=(reader,), name="hf2vllm-interrupt", daemon=True).start()


def doing(what: str) -> None:
    """What the run is doing now, for the interrupted line (``"loading vllm backend"``)."""
    _state.doing = what


def tracked(on_status: Callable[[str], None]) -> Callable[[str], None]:
    """``on_status`` that also records each status message with ``doing``."""

    def status(message: str) -> None:
        doing(message)
        on_status(message)

    return status


def saves(path: Path | str, what: str | Callable[[Path], str]) -> None:
    """Name a file the run writes as it goes: the interrupted line reports it when it exists and is not
    empty. ``what`` may use ``{path}`` and ``{lines}`` (its line count), e.g. ``"the vLLM log {path}"``,
    or be a function of the path (``lambda p: f"{count(p)} answers in {p}"``)."""
    _state.saved.append((Path(path), what))


def received() -> int | None:
    """The first SIGINT/SIGTERM/SIGHUP this process handled, if any."""
    return _state.signum


def settle(code: int | str | None) -> int | str | None:
    """After the command unwound: without a signal, ``code`` unchanged. After one, the process ends
    here: leftover descendant processes are stopped, and unless the command took the signal as its
    normal end (exit 0: ``hf2vllm monitor`` stops on Ctrl-C) the interrupted line is printed and the
    exit code is ``128 + signum``."""
    signum = _state.signum
    if signum is None:
        return code
    with _state.lock:  # held by the watcher if its last resort is already ending the process
        stopped = stop_descendants()
        exit_code = 0 if code in (0, None) else 128 + signum
        if exit_code:
            _print_line(signum, stopped, forced=False)
        _end(exit_code)
    return exit_code  # not reached


def interrupted_line(signum: int, stopped: int, *, forced: bool) -> str:
    """The one line an interrupted run ends with: the signal, what was running, what is on disk."""
    command = " ".join(_command_words())
    during = f"hf2vllm {command}" if command else "hf2vllm"
    if _state.doing:
        during += f" ({_state.doing})"
    parts = [f"interrupted by {signal_name(signum)} during {during}"]
    if stopped:
        parts.append(f"stopped {stopped} leftover process{'es' if stopped != 1 else ''}"
                     + (" (the run did not stop in time)" if forced else ""))
    saved = [text for text in (_describe(path, what) for path, what in _state.saved) if text]
    parts.append("saved " + "; ".join(saved) if saved else "nothing saved")
    return "; ".join(parts)


def stop_descendants(term_wait_s: float = TERM_WAIT_S) -> int:
    """SIGTERM every process this one started (and the ones they started) that is still running,
    SIGKILL what is left after ``term_wait_s``; returns how many there were. Zombies count as gone (they
    are reaped by their owner or at exit); multiprocessing's resource tracker is left to exit with us
    (it ignores SIGTERM, and cleans up the shared memory of the processes that died)."""
    try:
        import psutil
    except ImportError:
        return 0
    found: dict[int, Any] = {}
    for proc in [*_state.snapshot, *_descendants()]:
        found.setdefault(proc.pid, proc)
    alive = [p for p in found.values() if _running(p) and not _is_resource_tracker(p)]
    stopped = len(alive)
    for sig, wait in ((signal.SIGTERM, term_wait_s), (signal.SIGKILL, 1.0)):
        for proc in alive:
            try:
                proc.send_signal(sig)
            except psutil.Error:
                pass
        deadline = time.monotonic() + wait
        while any(_running(p) for p in alive) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Started, or re-parented to us (subreaper), meanwhile: straight to SIGKILL.
        late = [p for p in _descendants() if p.pid not in found and _running(p) and not _is_resource_tracker(p)]
        for proc in late:
            found[proc.pid] = proc
            try:
                proc.kill()
            except psutil.Error:
                pass
        stopped += len(late)
        alive = [p for p in alive if _running(p)] + late
        if not alive:
            break
    return stopped


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _note(signum)
    if _state.raised:
        if _state.echo:
            _state.echo = False
        else:
            _state.hurry.set()
        return
    _state.raised = True
    raise Interrupted(signum)


def _note(signum: int) -> None:
    """Record the first signal (the watcher, or the handler when there is no wake-up fd)."""
    with _state.lock:
        if _state.signum is None:
            _state.signum, _state.at = signum, time.monotonic()
            _state.snapshot = _descendants()


def _watch(reader: socket.socket) -> None:
    seen = 0  # our signals the wake-up fd reported: a second one cuts the grace period short
    echoes = 0  # bytes our own re-sent signals will write to the wake-up fd
    while True:
        if _state.signum is None:
            reader.settimeout(1.0)  # also notices a signal the handler noted without the wake-up fd
        else:
            reader.settimeout(max(0.01, min(0.25, _state.at + GRACE_S - time.monotonic())))
        try:
            data = reader.recv(64)
        except (TimeoutError, BlockingIOError, InterruptedError):
            data = b""
        for signum in data:
            # A signal a command handles itself (``hf2vllm serve``'s SIGTERM) is not ours to act on.
            if signum in SIGNALS and signal.getsignal(signum) is _on_signal:
                if echoes:
                    echoes -= 1
                    continue
                seen += 1
                if seen > 1:
                    _state.hurry.set()
                _note(signum)
                echoes += _resend_to_main_thread(signum)
        if _state.signum is not None and (time.monotonic() - _state.at >= GRACE_S or _state.hurry.is_set()):
            _last_resort(_state.signum)


def _resend_to_main_thread(signum: int) -> int:
    """The kernel hands a process's signal to any of its threads; the Python handler runs only when the
    main thread next runs bytecode, which a thread blocked in a C call (vLLM waiting for its engine in
    ``zmq_poll``) does only when a signal interrupts that call. Sent to the main thread, it does.
    Returns 1 when re-sent (its byte on the wake-up fd is not a second signal)."""
    deadline = time.monotonic() + 0.1
    while not _state.raised and time.monotonic() < deadline:
        time.sleep(0.01)
    _state.echo = True
    if _state.raised:  # the main thread got it
        _state.echo = False
        return 0
    try:
        signal.pthread_kill(threading.main_thread().ident or 0, signum)
    except (OSError, ValueError):
        _state.echo = False
        return 0
    return 1


def _last_resort(signum: int) -> None:
    """The main thread did not settle in time: stop the processes, print the line, end the process."""
    with _state.lock:
        stopped = stop_descendants(term_wait_s=1.0)
        _print_line(signum, stopped, forced=True)
        _end(128 + signum)


def _end(exit_code: int) -> None:
    """End the process now. Not a normal interpreter exit: the run's own clean-up has run (or is stuck),
    and a daemon thread still inside a C++ library (the prompt head start in torch) would abort the
    exit ("terminate called without an active exception", SIGABRT); atexit hooks that wait on the
    engine are moot once its processes are gone."""
    import logging

    _flush()
    try:
        logging.shutdown()
    except Exception:  # noqa: BLE001 - a handler failing to flush must not keep the process alive
        pass
    _flush()
    os._exit(exit_code)


def _print_line(signum: int, stopped: int, *, forced: bool) -> None:
    from hf2vllm.backends.engine_log import terminal_stderr

    try:
        sys.stderr.flush()
        # Straight to the terminal's stderr: while an engine starts, fd 2 points at its log (engine_log).
        os.write(terminal_stderr(), (interrupted_line(signum, stopped, forced=forced) + "\n").encode())
    except (OSError, ValueError):  # stderr closed (the terminal went away with SIGHUP)
        pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _describe(path: Path, what: str | Callable[[Path], str]) -> str | None:
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return None
        if callable(what):
            return what(path)
        lines = sum(1 for _ in path.open("rb")) if "{lines}" in what else 0
    except (OSError, ValueError):  # unreadable or half-written: not worth naming
        return None
    return what.format(path=path, lines=lines)


def _command_words() -> list[str]:
    """The command of this run's command line (``compare``, ``bench offline``); never its arguments."""
    words = list(sys.argv[1:3])
    if not words or words[0].startswith("-"):
        return []
    return words if words[0] in _state.groups and len(words) == 2 and not words[1].startswith("-") else words[:1]


def _descendants() -> list[Any]:
    try:
        import psutil

        return psutil.Process().children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing or /proc unreadable: nothing to add
        return []


def _running(proc: Any) -> bool:
    import psutil

    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _is_resource_tracker(proc: Any) -> bool:
    import psutil

    try:
        return any("resource_tracker" in part for part in proc.cmdline())
    except psutil.Error:
        return False


def _become_subreaper() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass
