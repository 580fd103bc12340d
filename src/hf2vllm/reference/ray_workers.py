"""The HF reference on a Ray cluster: one HF replica per worker, the driver keeps the journal.

vLLM distributes its own side (tensor/pipeline/data parallel); the HF reference is not distributed by
anyone, so ``hf2vllm record --ray-workers N`` puts it on Ray (DESIGN §4) rather than on processes of our
own. The lifecycle::

    pool = RayReference.start(model_path, "float32", {"batch_size": 32}, workers=2)   # N actors, each loads HF
    pool.generate(chunks, spec, context, keep=journal_append, on_status=print)          # results as they arrive
    noise = pool.measure_noise(requests, results, spec, count=16)                       # on one replica
    pool.close()                                                                        # actors killed

- **Same numbers as one process.** The driver cuts the work exactly where a single-process record cuts it:
  the same journaled chunks, each split along the ``generate()`` batches the HF backend itself would make
  (``HFBackend.generate_batches``). A worker runs each such batch as one ``generate()`` call, so every
  request sees the same batch composition and padding as in a single-process run.
- **One writer.** Workers return results; only the driver appends to the journal, as results arrive.
- **A worker dies** (killed, out of memory, its node lost): the batch it held goes back to the queue and
  another worker takes it; answers already journaled stay. The record fails only when no worker is left.
- **The driver dies:** the journal holds every batch that arrived; ``--resume`` continues, with any number
  of workers (or none: the run key does not depend on how the work was spread).

Ray is an optional extra (``pip install -e '.[ray]'``); without it nothing here is imported.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from typing import Any

from hf2vllm.backends.base import GenerationResult
from hf2vllm.errors import BackendUnavailableError, HF2VLLMError, InputError
from hf2vllm.requests import PreparedRequest
from hf2vllm.spec import GenerationSpec

INSTALL_HINT = "pip install -e '.[ray]' (or: pip install 'hf2vllm[ray]')"
MISSING = f"--ray-workers needs Ray, an optional extra: {INSTALL_HINT}"


class RayWorkersLostError(HF2VLLMError):
    """Every Ray worker died before the reference was complete (what arrived is journaled)."""


def import_ray() -> Any:
    """The ``ray`` module, or ``BackendUnavailableError`` saying how to install it."""
    try:
        import ray
    except ImportError as err:
        raise BackendUnavailableError(MISSING) from err
    return ray


class ReferenceWorker:
    """One HF replica in a Ray actor (wrapped by ``ray.remote`` in ``RayReference.start``)."""

    def __init__(self, model: str, dtype: str, options: dict[str, Any]) -> None:
        from hf2vllm.backends.base import create_backend
        from hf2vllm.commands.quiet import quiet_model_libraries

        quiet_model_libraries(False)
        self.backend = create_backend("hf", model=model, dtype=dtype, **options)

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def pid(self) -> int:
        return os.getpid()

    def plan(self, chunks: list[list[PreparedRequest]], spec: GenerationSpec, context: int | None) -> list[list[str]]:
        """Each chunk cut into the ``generate()`` batches a single-process record makes of it (ids); prompts
        over the context form a batch of their own (answered ``context_length`` with no model call)."""
        from hf2vllm.parity.diagnose import fits

        units: list[list[str]] = []
        for chunk in chunks:
            runnable = [r for r in chunk if fits(r, context)]
            units += [[runnable[i].id for i in batch] for batch in self.backend.generate_batches(runnable, spec)]
            over = [r.id for r in chunk if not fits(r, context)]
            if over:
                units.append(over)
        return units

    def generate(self, unit: list[PreparedRequest], spec: GenerationSpec, context: int | None) -> list[GenerationResult]:
        from hf2vllm.parity.diagnose import generate_fitting

        return generate_fitting(self.backend, unit, spec, context, None)

    def measure_noise(
        self, requests: list[PreparedRequest], results: list[GenerationResult], spec: GenerationSpec, count: int,
    ) -> Any:
        from hf2vllm.reference.record import measure_noise

        return measure_noise(self.backend, requests, results, spec, count=count)


class RayReference:
    """See the module docstring. Build with ``start``; ``close`` kills the actors and, when ``start`` joined
    Ray itself, leaves it (a local cluster it started stops)."""

    def __init__(self, ray: Any, workers: list[Any], started_ray: bool) -> None:
        self._ray = ray
        self.workers = workers
        self._started_ray = started_ray

    @classmethod
    def start(
        cls, model: str | Path, dtype: str, options: dict[str, Any], *, workers: int, address: str | None = None,
        cpus_per_worker: float = 1, gpus_per_worker: float | None = None,
    ) -> RayReference:
        """Connect to the cluster at ``address`` (None: the one this process already joined, else a local one
        started here) and start ``workers`` replicas. A GPU reference (``device`` cuda, or a device map) takes
        one GPU per worker unless ``gpus_per_worker`` says otherwise; a CPU one ``cpus_per_worker`` cores,
        which Ray also gives it as its thread count (``OMP_NUM_THREADS``)."""
        ray = import_ray()
        started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                kwargs["address"] = address
            ray.init(**kwargs)
            started = True  # shutdown() later stops a local cluster, or only disconnects from a remote one
        if gpus_per_worker is None:
            placed = options.get("device_map") is not None or options.get("max_memory") is not None
            wants_gpu = str(options.get("device", "cpu")).startswith("cuda") or placed
            gpus_per_worker = 1 if wants_gpu and ray.cluster_resources().get("GPU") else 0
        have = ray.cluster_resources()
        for name, each in (("CPU", cpus_per_worker), ("GPU", gpus_per_worker)):
            if each and have.get(name, 0) < each * workers:
                if started:
                    ray.shutdown()
                raise InputError(
                    f"--ray-workers {workers}: each worker takes {each:g} {name}, the cluster has {have.get(name, 0):g}; "
                    "use fewer workers, or add nodes (`ray start --address ...`, docs/scale.md)"
                )
        actor = ray.remote(ReferenceWorker).options(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or 0)
        handles = [actor.remote(str(model), dtype, dict(options)) for _ in range(workers)]
        pool = cls(ray, handles, started)
        try:
            ray.get([h.pid.remote() for h in handles])  # every replica loaded (or its load error, raised here)
        except Exception:
            pool.close()
            raise
        return pool

    def describe(self) -> dict[str, Any]:
        described = self._call(lambda w: w.describe.remote())
        return {**described, "ray_workers": len(self.workers)}

    def generate(
        self, chunks: Sequence[Sequence[PreparedRequest]], spec: GenerationSpec, context: int | None,
        keep: Callable[[list[GenerationResult]], None], on_status: Callable[[str], None] | None = None,
        done: Container[str] = (),
    ) -> None:
        """Answer every request of ``chunks``, calling ``keep`` (on this thread) with each batch's results as
        it arrives; a batch whose worker died goes to another worker. Batches whose requests are all in
        ``done`` (answers a resumed journal holds) are not run again."""
        ray = self._ray
        by_id = {r.id: r for chunk in chunks for r in chunk}
        plan = self._call(lambda w: w.plan.remote([list(c) for c in chunks], spec, context))
        todo = deque([by_id[i] for i in unit] for unit in plan if any(i not in done for i in unit))
        idle = list(self.workers)
        running: dict[Any, tuple[Any, list[PreparedRequest]]] = {}
        while todo or running:
            while idle and todo:
                worker, unit = idle.pop(), todo.popleft()
                running[worker.generate.remote(unit, spec, context)] = (worker, unit)
            if not running:
                self._lost()
            [ref], _ = ray.wait(list(running), num_returns=1)
            worker, unit = running.pop(ref)
            try:
                results = ray.get(ref)
            except ray.exceptions.RayActorError:
                self.workers.remove(worker)
                todo.appendleft(unit)
                if on_status:
                    on_status(f"a Ray worker died; its batch of {len(unit)} goes to one of the {len(self.workers)} left")
                continue
            except ray.exceptions.RayTaskError as err:
                raise err.as_instanceof_cause() from None
            keep(results)
            idle.append(worker)

    def measure_noise(
        self, requests: Sequence[PreparedRequest], results: Sequence[GenerationResult], spec: GenerationSpec, *,
        count: int,
    ) -> Any:
        """The reference's own noise (``record.measure_noise``) on one replica."""
        return self._call(lambda w: w.measure_noise.remote(list(requests), list(results), spec, count))

    def _call(self, call: Callable[[Any], Any]) -> Any:
        """``call`` on the first live worker, trying the next when one has died."""
        ray = self._ray
        while self.workers:
            try:
                return ray.get(call(self.workers[0]))
            except ray.exceptions.RayActorError:
                self.workers.pop(0)
            except ray.exceptions.RayTaskError as err:
                raise err.as_instanceof_cause() from None
        self._lost()

    def _lost(self) -> Any:
        raise RayWorkersLostError(
            "record: every Ray worker died (the answers that arrived are journaled); run the same command with "
            "--resume to continue (any --ray-workers, or none)"
        )

    def close(self) -> None:
        ray = self._ray
        for worker in self.workers:
            try:
                ray.kill(worker)
            except Exception:  # noqa: BLE001 - an actor already gone is what close wants
                pass
        self.workers = []
        if self._started_ray and ray.is_initialized():
            ray.shutdown()

    def __enter__(self) -> RayReference:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
