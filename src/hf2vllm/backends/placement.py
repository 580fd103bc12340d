"""Where the HF reference's layers live when one device is not enough: Accelerate's ``device_map``.

hf2vllm does not place layers itself (DESIGN §4): it passes ``device_map``, ``max_memory`` and
``offload_folder`` to ``from_pretrained``, and Accelerate fills the GPUs in order, then CPU memory, then
disk. Layers placed on "cpu" or "disk" are *offloaded*: on a machine with a GPU Accelerate streams their
weights to the first GPU for each forward pass (the same arithmetic, slower); on a CPU-only machine
"disk" layers are read from memory-mapped files. Either way the numbers are those of the unsplit model
(tests/scale/test_device_map.py checks the tokens on the bundled set).

Usage::

    kwargs = from_pretrained_placement("auto", {"cpu": "300MiB"}, None)   # -> device_map, max_memory, offload_folder
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    placement_summary(model.hf_device_map)   # {"cpu": ["model.embed_tokens", "model.layers.0-13"], "disk": [...]}
"""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from hf2vllm.errors import InputError

OFFLOADED = ("cpu", "disk")


def from_pretrained_placement(
    device_map: str | dict[str, Any] | None, max_memory: Mapping[str, Any] | None, offload_folder: str | None,
) -> dict[str, Any]:
    """The ``from_pretrained`` keywords for a placement (empty when neither option is given).

    ``max_memory`` alone means ``device_map="auto"`` (Accelerate needs a map to apply a cap). Its keys are
    GPU indices (``"0"`` or ``0``), ``"cpu"`` or ``"disk"``; values are bytes or sizes such as ``"300MiB"``.
    Disk offload needs a folder: without ``offload_folder`` a fresh temporary one is used (removed at exit).
    """
    if device_map is None and max_memory is None:
        return {}
    if device_map is None:
        device_map = "auto"
    if isinstance(device_map, str) and device_map not in ("auto", "balanced", "balanced_low_0", "sequential"):
        if not re.fullmatch(r"cpu|cuda(:\d+)?|\d+|mps|xpu(:\d+)?", device_map):
            raise InputError(
                f"--hf-option device_map={device_map!r}: expected auto, balanced, balanced_low_0, sequential, a device "
                "(cpu, cuda:0) or a JSON object {module: device}"
            )
    kwargs: dict[str, Any] = {"device_map": device_map}
    if max_memory is not None:
        if not isinstance(max_memory, Mapping) or not max_memory:
            raise InputError('--hf-option max_memory: expected a JSON object such as {"0": "20GiB", "cpu": "60GiB"}')
        kwargs["max_memory"] = {_memory_key(key): _memory_value(key, value) for key, value in max_memory.items()}
    if offload_folder is None:
        offload_folder = tempfile.mkdtemp(prefix="hf2vllm-offload-")
        atexit.register(shutil.rmtree, offload_folder, ignore_errors=True)
    kwargs["offload_folder"] = offload_folder
    return kwargs


def _memory_key(key: Any) -> int | str:
    text = str(key)
    if text.isdigit():
        return int(text)
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    if text in ("cpu", "disk", "mps") or re.fullmatch(r"xpu:\d+", text):
        return text
    raise InputError(f"--hf-option max_memory: unknown device {text!r} (expected a GPU index such as 0, cpu or disk)")


def _memory_value(key: Any, value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*([KMGT]i?B|B)?\s*", value, re.IGNORECASE):
        return value.strip()
    raise InputError(f"--hf-option max_memory {key}={value!r}: expected a size such as \"300MiB\" or a byte count")


def execution_device(device_map: Mapping[str, Any], fallback: str) -> str:
    """The device inputs go to: the first accelerator in the map (offloaded layers run there too), else CPU."""
    for where in device_map.values():
        text = str(where)
        if text not in OFFLOADED:
            return f"cuda:{text}" if text.isdigit() else text
    return "cpu" if any(str(w) in OFFLOADED for w in device_map.values()) else fallback


def placement_summary(device_map: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{device: modules}`` with runs of numbered layers folded (``model.layers.0-13``), in map order.

    >>> placement_summary({"model.embed_tokens": 0, "model.layers.0": 0, "model.layers.1": 0, "model.layers.2": "cpu",
    ...                    "model.norm": "cpu", "lm_head": "cpu"})
    {'0': ['model.embed_tokens', 'model.layers.0-1'], 'cpu': ['model.layers.2', 'model.norm', 'lm_head']}
    """
    summary: dict[str, list[str]] = {}
    for name, where in device_map.items():
        modules = summary.setdefault(str(where), [])
        match = re.fullmatch(r"(.*\.)(\d+)", name)
        if match and modules:
            last = re.fullmatch(r"(.*\.)(\d+)(?:-(\d+))?", modules[-1])
            if last and last.group(1) == match.group(1) and int(last.group(3) or last.group(2)) + 1 == int(match.group(2)):
                modules[-1] = f"{last.group(1)}{last.group(2)}-{match.group(2)}"
                continue
        modules.append(name)
    return summary
