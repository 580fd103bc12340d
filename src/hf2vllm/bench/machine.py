"""Facts about the machine a benchmark ran on, load included: numbers from a busy machine say so."""

from __future__ import annotations

import os
import platform
import socket
from datetime import UTC, datetime

from hf2vllm.bench.schema import MachineInfo


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def collect_machine() -> MachineInfo:
    import psutil

    from hf2vllm.environment import package_versions

    return MachineInfo(
        hostname=socket.gethostname(),
        platform=platform.platform(),
        cpu_model=_cpu_model(),
        logical_cpus=os.cpu_count(),
        memory_gib=round(psutil.virtual_memory().total / (1 << 30), 1),
        load_average_start=load_average(),
        packages=package_versions(),
        started_at=utc_now(),
    )


def finish_machine(machine: MachineInfo) -> MachineInfo:
    return machine.model_copy(update={"load_average_end": load_average(), "finished_at": utc_now()})
