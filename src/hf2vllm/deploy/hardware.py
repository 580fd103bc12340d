"""Accelerators the planner knows by name, with the memory their driver reports."""

from __future__ import annotations

from pydantic import BaseModel

from hf2vllm.errors import InputError

GIB = 1024**3


class Accelerator(BaseModel):
    """One device model: total memory in GiB as ``torch.cuda.mem_get_info`` reports it."""

    name: str
    memory_gib: float
    vendor: str = "nvidia"


# Memory is what the driver exposes (nvidia-smi "Total"), which is a little under the marketing
# figure; vLLM's --gpu-memory-utilization is a fraction of this number.
ACCELERATORS: dict[str, Accelerator] = {
    a.name: a
    for a in [
        Accelerator(name="H100-80GB", memory_gib=79.65),
        Accelerator(name="H200", memory_gib=139.8),
        Accelerator(name="B200", memory_gib=178.4),
        Accelerator(name="A100-80GB", memory_gib=79.15),
        Accelerator(name="A100-40GB", memory_gib=39.39),
        Accelerator(name="L40S", memory_gib=44.39),
        Accelerator(name="L4", memory_gib=22.03),
        Accelerator(name="A10G", memory_gib=21.99),
        Accelerator(name="RTX-4090", memory_gib=23.99),
        Accelerator(name="MI300X", memory_gib=191.98, vendor="amd"),
    ]
}


def resolve_accelerator(name: str | None, memory_gib: float | None) -> Accelerator:
    """``--gpu NAME`` from the table, or ``--gpu-memory-gib`` for anything else."""
    if memory_gib is not None:
        if not memory_gib > 0:
            raise InputError(f"--gpu-memory-gib: got {memory_gib:g}; give the memory of one accelerator in GiB, e.g. 80")
        return Accelerator(name=name or f"custom-{memory_gib:g}GiB", memory_gib=memory_gib)
    if name is None:
        local = local_gpu()
        if local is not None:
            return local
        raise InputError(
            "no GPU here to measure: give --gpu NAME (see `hf2vllm plan --list-gpus`), --gpu-memory-gib N, "
            "or --device cpu"
        )
    import difflib
    import re

    def bare(text: str) -> str:  # "rtx4090", "RTX 4090" and "RTX-4090" name one card
        return re.sub(r"[^a-z0-9]", "", text.lower())

    by_bare = {bare(key): key for key in ACCELERATORS}
    if bare(name) in by_bare:
        return ACCELERATORS[by_bare[bare(name)]]
    # "H100" means one of the H100 entries; only then the closest spelling.
    close = [key for b, key in by_bare.items() if bare(name) and b.startswith(bare(name))]
    close = close or [by_bare[b] for b in difflib.get_close_matches(bare(name), by_bare, n=1, cutoff=0.5)]
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise InputError(
        f"--gpu {name!r}: unknown accelerator; {hint}known: {', '.join(ACCELERATORS)} "
        "(for another one give its memory: --gpu-memory-gib N)"
    )


def local_gpu() -> Accelerator | None:
    """The GPU of this machine, when there is one (used when neither --gpu nor a size is given)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    total = torch.cuda.mem_get_info()[1]
    return Accelerator(name=torch.cuda.get_device_name(0), memory_gib=round(total / GIB, 2))
