"""Rich progress bars for the library's ``progress`` / ``on_status`` callbacks (compare, bench verdict)."""

from __future__ import annotations

from collections.abc import Callable

from rich.progress import Progress


def progress_callbacks(
    bars: Progress,
) -> tuple[Callable[[str], None], Callable[[str, int], Callable[[int], None]]]:
    """``(on_status, progress)``: a status line replaced by each new message, and a bar per labelled stage
    (a new bar hides the status line, since the bar says what runs). Each also tells ``interrupt.doing``."""
    from hf2vllm import interrupt

    status_task = None

    def on_status(message: str) -> None:
        nonlocal status_task
        interrupt.doing(message)  # what a signal's line says was running
        if status_task is not None:
            bars.remove_task(status_task)
        status_task = bars.add_task(message, total=None)

    def progress(label: str, total: int) -> Callable[[int], None]:
        interrupt.doing(label)
        if status_task is not None:
            bars.update(status_task, visible=False)
        task = bars.add_task(label, total=total)
        return lambda n: bars.advance(task, n)

    return on_status, progress
