"""Peak resident memory of this process and its children (vLLM's engine core runs in a child process).

Usage::

    with PeakMemory() as peak:
        run_the_mode()
    print(peak.peak_mib)
"""

from __future__ import annotations

import threading
import time


def tree_rss_bytes(children: list | None = None) -> int:
    """RSS of this process plus its descendants (``children``: a cached list; None = look them up)."""
    import psutil

    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True) if children is None else children:
        try:
            total += child.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


class PeakMemory:
    """Samples ``tree_rss_bytes()`` on a background thread; ``peak_mib`` is the largest value seen.

    Finding children scans every process on the machine, so the child list is refreshed only every
    ``refresh_s``; engine processes live for the whole mode, so nothing that matters is missed.
    """

    def __init__(self, interval_s: float = 0.2, refresh_s: float = 2.0) -> None:
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        children = me.children(recursive=True)
        last_refresh = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_refresh > self.refresh_s:
                children = me.children(recursive=True)
                last_refresh = time.monotonic()
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(children))
            self._stop.wait(self.interval_s)

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / (1 << 20)

    def __enter__(self) -> PeakMemory:
        self.peak_bytes = tree_rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, tree_rss_bytes())
