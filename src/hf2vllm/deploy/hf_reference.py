"""Where the HF reference of a comparison goes on the planned hardware (``hf2vllm plan``).

vLLM splits its own model (tensor/pipeline parallel, ``deploy/plan.py``); the HF reference is loaded by
Transformers, placed by Accelerate (``--hf-option device_map=auto``, ``max_memory``) and spread over
replicas by Ray (``hf2vllm record --ray-workers``, docs/scale.md). The rule, on weights alone plus a
headroom for ``generate()``'s activations and KV cache:

- weights fit one device: one replica per GPU (``device=cuda``), one Ray worker per GPU beyond one;
- weights fit one node's GPUs together: ``device_map=auto`` across them, one Ray worker per node;
- otherwise Accelerate offloads what does not fit to CPU memory (a per-GPU ``max_memory`` cap): the
  same numbers, but every forward pass streams those weights to the GPU; plan warns.

Usage::

    hf_reference_placement(weights_bytes=16 * 2**30, device="gpu", device_memory_bytes=80 * 2**30, gpus=8, nodes=2)
"""

from __future__ import annotations

import json
import shlex
from typing import Literal

from pydantic import BaseModel, Field

HF_HEADROOM = 0.8
"""Share of a device's memory the reference's weights may take: ``generate()`` needs the rest for
activations and its KV cache (batches of 32 short prompts on the bundled model; more for long prompts)."""


class HFReferencePlacement(BaseModel):
    """How to run the HF reference of a comparison on the planned hardware."""

    placement: Literal["one_device", "one_node", "offload", "cpu"] = Field(
        description="one_device: a replica per GPU; one_node: device_map across a node's GPUs; offload: layers "
        "beyond the GPUs go to CPU memory; cpu: the CPU build."
    )
    weights_bytes: int
    hf_options: list[str] = Field(description="The --hf-option values for compare/record.")
    ray_workers: int | None = Field(None, description="Replicas to run with record --ray-workers (None: one process).")
    ray_worker_gpus: int | None = None
    record_command: str = Field(description="The record command (then: hf2vllm compare --against REF ...).")
    reason: str
    warning: str | None = None


def hf_reference_placement(
    *, weights_bytes: int, device: str, device_memory_bytes: int | None, gpus: int, nodes: int,
) -> HFReferencePlacement:
    """The placement rule of the module docstring (pure: sizes in, advice out)."""
    record = ["hf2vllm", "record", "--out", "REF"]
    ray_address = ["--ray-address", "HEAD_IP:6379"] if nodes > 1 else []
    if device == "cpu" or not device_memory_bytes:
        workers = nodes if nodes > 1 else None
        command = record + (["--ray-workers", str(workers), *ray_address] if workers else [])
        return HFReferencePlacement(
            placement="cpu", weights_bytes=weights_bytes, hf_options=[], ray_workers=workers,
            record_command=shlex.join(command),
            reason="CPU: the reference runs where vLLM's CPU build does"
            + (f"; one Ray worker per node ({nodes} nodes)" if workers else ""),
        )
    usable = int(device_memory_bytes * HF_HEADROOM)
    total = gpus * nodes
    if weights_bytes <= usable:
        workers = total if total > 1 else None
        options = ["device=cuda"]
        command = record + [f"--hf-option={o}" for o in options]
        command += ["--ray-workers", str(workers), *ray_address] if workers else []
        return HFReferencePlacement(
            placement="one_device", weights_bytes=weights_bytes, hf_options=options, ray_workers=workers,
            ray_worker_gpus=1 if workers else None, record_command=shlex.join(command),
            reason=f"HF weights {_gib(weights_bytes)} fit one GPU ({_gib(usable)} of {_gib(device_memory_bytes)} "
            "left for weights beside generate()'s activations)"
            + (f": one replica per GPU, {workers} Ray workers; record before the candidate takes the GPUs"
               if workers else ""),
        )
    if weights_bytes <= usable * gpus:
        workers = nodes if nodes > 1 else None
        options = ["device_map=auto"]
        command = record + [f"--hf-option={o}" for o in options]
        command += ["--ray-workers", str(workers), "--ray-worker-gpus", str(gpus), *ray_address] if workers else []
        return HFReferencePlacement(
            placement="one_node", weights_bytes=weights_bytes, hf_options=options, ray_workers=workers,
            ray_worker_gpus=gpus if workers else None, record_command=shlex.join(command),
            reason=f"HF weights {_gib(weights_bytes)} need {-(-weights_bytes // usable)} of a node's {gpus} GPUs: "
            "Accelerate's device_map=auto splits the layers across them (one GPU computes at a time)"
            + (f"; one replica per node, {workers} Ray workers" if workers else ""),
        )
    cap = {str(g): f"{usable // 2**20}MiB" for g in range(gpus)} | {"cpu": f"{-(-(weights_bytes - usable * gpus) // 2**30) + 8}GiB"}
    options = ["device_map=auto", f"max_memory={json.dumps(cap, separators=(',', ':'))}"]
    command = record + [f"--hf-option={o}" for o in options]
    return HFReferencePlacement(
        placement="offload", weights_bytes=weights_bytes, hf_options=options, record_command=shlex.join(command),
        reason=f"HF weights {_gib(weights_bytes)} exceed a node's GPUs ({gpus} x {_gib(usable)} for weights)",
        warning=f"the HF reference does not fit one node's GPU memory ({_gib(weights_bytes)} of weights, "
        f"{_gib(usable * gpus)} usable): with max_memory Accelerate offloads {_gib(weights_bytes - usable * gpus)} "
        "to CPU memory and streams it to the GPU on every forward pass (same numbers, much slower; "
        "docs/gpu-validation.md measures the cost); or record the reference on a larger node",
    )


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"
