"""The reference's head start: its prompts prefilled on the core that vLLM's engine load leaves idle.

On a CPU, vLLM's load (engine process start, weights, KV cache, warm-up) runs on one core for ~15 s
while the others wait. Teacher forcing must run the reference over every prompt anyway; done during that
load, the prompt part costs no wall time, and after vLLM's generation only the answers remain to score
(bundled set: 7,402 prompt tokens of 10,100). On a GPU there is no head start: the reference's
allocations would skew vLLM's memory profiling, and the pass is fast there.

vLLM starts its engine with ``spawn`` on a CPU (fork + exec at once), so a thread doing tensor work in
this process cannot leave a lock held in the child, which a plain fork could.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from hf2vllm.backends.hf import HFBackend, PromptPrefix
from hf2vllm.requests import PreparedRequest


def head_start_applies(reference_kind: str, reference_options: dict[str, Any], candidate_kind: str,
                       candidate_loads_here: bool) -> bool:
    """An HF reference on the CPU beside a vLLM engine that this run loads on the CPU."""
    if reference_kind != "hf" or candidate_kind != "vllm" or not candidate_loads_here:
        return False
    if not str(reference_options.get("device", "cpu")).startswith("cpu"):
        return False
    from hf2vllm.backends.vllm_offline import running_on_cpu

    return running_on_cpu()


class PromptHeadStart:
    """``HFBackend.prefill_prompts`` on a thread, with one intra-op thread fewer than the process has
    (the engine load keeps one core busy), until ``stop``. ``on_done(seconds)`` reports how long it ran."""

    def __init__(self, reference: HFBackend, requests: Sequence[PreparedRequest], *, max_model_len: int | None,
                 on_done: Callable[[float], None] | None = None) -> None:
        import torch

        self._stop = threading.Event()
        self._prefixes: dict[str, PromptPrefix] = {}
        threads = max(1, torch.get_num_threads() - 1)
        # A first tiny pass here, on the caller's thread: the model's lazy imports must not run on a
        # thread beside the engine load's own imports (two threads importing Transformers' modules at
        # once can see them half-initialised).
        with torch.inference_mode():
            reference.model(input_ids=torch.tensor([[reference.pad_token_id]], device=reference.device))

        def work() -> None:
            import os
            import time

            # The lowest scheduling priority, for this thread only (Linux: a thread id is a process id
            # to setpriority): whenever the engine's load wants every core it gets them, and the
            # prefill runs on what it leaves (on this machine, at normal priority the load took 3 s longer).
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            except (AttributeError, OSError):
                pass
            started = time.perf_counter()
            self._prefixes = reference.prefill_prompts(requests, stop=self._stop, threads=threads,
                                                       max_model_len=max_model_len)
            if on_done:
                on_done(time.perf_counter() - started)

        self._thread = threading.Thread(target=work, name="hf2vllm-prefill", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the chunk in progress and stop (the engine is loaded: its generation needs every core)."""
        self._stop.set()

    def result(self) -> dict[str, PromptPrefix]:
        self.stop()
        self._thread.join()
        return self._prefixes
